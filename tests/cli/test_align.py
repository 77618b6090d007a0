"""facediag align: crops land on the template, in SRC's layout; resumable; SRC never touched."""
import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from align_extra import INSTALL_ALIGN, make_broken, make_missing, needs_extra
from cli_helpers import digest, invoke, one_line_exit_2
from helpers import misaligned_copy


def _rows(dst):
    with open(dst / "alignment.csv", newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def _landmark_error(folder):
    """Median NME of MTCNN's landmarks on the written crops (0 = exactly on the template)."""
    from facediag.data.detect import Detector
    from facediag.data.landmarks import nme

    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.rglob("*.png"))]
    dets = Detector(min_face_size=40).detect(imgs)
    return float(np.median([nme(d.points) for d in dets if d.found])), sum(d.found for d in dets), len(imgs)


@pytest.fixture(scope="module")
def pasted(orl_root, tmp_path_factory):
    """ORL faces at random places in a 250 px noise canvas: raw photos, not crops."""
    return misaligned_copy(orl_root, tmp_path_factory.mktemp("pasted"), "paste", subjects=range(1, 4), per_subject=3)


@needs_extra
def test_raw_photos_become_template_aligned_crops(pasted, tmp_path):
    before = {p: digest(p) for p in pasted.rglob("*") if p.is_file()}
    dst = tmp_path / "aligned"
    res = invoke("align", pasted, dst, "-q")
    assert res.exit_code == 0, res.output
    rows = _rows(dst)
    assert len(rows) == 9 and all(r["source"] == "mtcnn" and float(r["score"]) > 0.9 for r in rows.values())
    assert {p.relative_to(dst).as_posix() for p in dst.rglob("*.png")} == {f"s{s}/{i}.png" for s in (1, 2, 3)
                                                                       for i in (1, 2, 3)}
    error, found, n = _landmark_error(dst)
    assert found == n and error < 0.12, error  # the pasted originals: ~0.8
    assert {p: digest(p) for p in pasted.rglob("*") if p.is_file()} == before  # SRC untouched


@needs_extra
def test_a_second_run_skips_what_is_done_and_redoes_what_is_missing(pasted, tmp_path):
    dst = tmp_path / "aligned"
    assert invoke("align", pasted, dst, "-q").exit_code == 0
    kept = digest(dst / "s1" / "1.png")
    (dst / "s2" / "2.png").unlink()
    res = invoke("align", pasted, dst, "-q")
    assert res.exit_code == 0 and "aligned 1, already done 8" in res.output, res.output
    assert digest(dst / "s1" / "1.png") == kept and (dst / "s2" / "2.png").is_file()
    assert len(_rows(dst)) == 9


@needs_extra
def test_manifest_landmarks_are_used_instead_of_detection(orl_root, tmp_path, monkeypatch):
    from facediag.data.landmarks import TEMPLATE

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(orl_root / "s1" / "1.pgm", src / "a.pgm")
    pts = (TEMPLATE - 56) * 0.5 + [46, 56]  # where the data says the face is: half size, on the 92×112 file
    with open(src / "faces.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "subject", *[f"lm{i}{a}" for i in range(5) for a in "xy"]])
        w.writerow(["a.pgm", "s1", *pts.ravel().round(3)])
    monkeypatch.setattr("facediag.data.detect.Detector.detect", lambda *a: pytest.fail("detected anyway"))
    dst = tmp_path / "dst"
    res = invoke("align", src / "faces.csv", dst, "-q")
    assert res.exit_code == 0, res.output
    row = _rows(dst)["a.pgm"]
    assert row["source"] == "given" and float(row["scale"]) == pytest.approx(2.0, rel=1e-3)
    with open(dst / "faces.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"path": "a.png", "subject": "s1", "role": "hr", "capture": "a"}]


@needs_extra
def test_paired_vlr_files_follow_their_hr_twin(orl_root, tmp_path):
    src = tmp_path / "src"
    (src / "hr_images").mkdir(parents=True)
    (src / "vlr_images_16x16").mkdir()
    for i in (1, 2):
        face = Image.open(orl_root / "s1" / f"{i}.pgm").convert("RGB")
        big = Image.new("RGB", (200, 200), (40, 40, 40))
        big.paste(face, (70, 50))
        big.save(src / "hr_images" / f"001_{i}.png")
        big.resize((16, 16), Image.BOX).save(src / "vlr_images_16x16" / f"001_{i}.png")
    dst = tmp_path / "dst"
    assert invoke("align", src, dst, "-q").exit_code == 0
    rows = _rows(dst)
    assert rows["vlr_images_16x16/001_1.png"]["source"] == "hr-twin"
    hr = np.asarray(Image.open(dst / "hr_images" / "001_1.png"), dtype=float)
    vlr = np.asarray(Image.open(dst / "vlr_images_16x16" / "001_1.png"), dtype=float)
    assert vlr.shape == (16, 16, 3)
    shrunk = np.asarray(Image.fromarray(hr.astype(np.uint8)).resize((16, 16), Image.BOX), dtype=float)
    as_given = np.asarray(Image.open(src / "vlr_images_16x16" / "001_1.png"), dtype=float)
    # the same crop at low resolution: far closer to the aligned HR than the unaligned VLR file is
    assert np.abs(shrunk - vlr).mean() < 0.6 * np.abs(shrunk - as_given).mean()


@needs_extra  # the extra is asked for first: without it, the install line is the answer
def test_dst_inside_src_is_refused(tmp_path):
    src = tmp_path / "src" / "p1"
    src.mkdir(parents=True)
    Image.new("RGB", (112, 112)).save(src / "1.png")
    one_line_exit_2(invoke("align", tmp_path / "src", tmp_path / "src" / "out"), "inside")
    one_line_exit_2(invoke("align", tmp_path / "src", tmp_path), "SRC")


def test_missing_facenet_is_one_line_naming_the_install(tmp_path, monkeypatch):
    make_missing(monkeypatch)
    (tmp_path / "src" / "p1").mkdir(parents=True)
    line = one_line_exit_2(invoke("align", tmp_path / "src", tmp_path / "dst"), "not installed", INSTALL_ALIGN)
    assert "--no-deps" not in line
    assert not (tmp_path / "dst").exists()


def test_broken_facenet_is_one_line_naming_the_install(tmp_path, monkeypatch):
    # facenet-pytorch present, but its import of requests fails (as after pip install --no-deps):
    # one line naming what failed and the pip command that repairs it, exit 2, before any work.
    make_broken(monkeypatch, tmp_path)
    (tmp_path / "src" / "p1").mkdir(parents=True)
    Image.new("RGB", (112, 112), (90, 90, 90)).save(tmp_path / "src" / "p1" / "1.png")
    line = one_line_exit_2(invoke("align", tmp_path / "src", tmp_path / "dst"), "requests", INSTALL_ALIGN)
    assert "cannot be imported" in line and "bug" not in line
    assert not (tmp_path / "dst").exists()


def test_the_help_names_the_install_line():
    res = invoke("align", "--help")
    assert res.exit_code == 0 and "".join(INSTALL_ALIGN.split()) in "".join(res.output.split())  # wrapped anywhere
