"""Hostile layouts: paired files whose names differ, and manifests that escape their folder,
name one file twice, carry a byte-order mark, short rows or another encoding."""
import numpy as np
import pytest
from helpers import face_like, write_folders_dataset, write_paired_dataset
from PIL import Image

from facediag.data.index import index_dataset
from facediag.data.protocol import build_protocol
from facediag.errors import DataError, FacediagError
from facediag.session import Session, SessionConfig


def write_mismatched_paired(root, subjects=2, images=4, suffix="_lr", mismatched=None):
    """hr_images/p1_1.png ... + vlr_images_16x16/p1_1_lr.png ...: the names differ."""
    hr, lr = root / "hr_images", root / "vlr_images_16x16"
    hr.mkdir(parents=True)
    lr.mkdir()
    for s in range(1, subjects + 1):
        for i in range(1, images + 1):
            img = Image.fromarray(face_like(100 * s + i))
            img.save(hr / f"p{s}_{i}.png")
            odd = mismatched is None or (s, i) in mismatched
            img.resize((16, 16), Image.BOX).save(lr / f"p{s}_{i}{suffix if odd else ''}.png")
    return root


def test_vlr_copies_of_enrolled_images_never_become_probes(tmp_path):
    root = write_mismatched_paired(tmp_path / "split")
    index = index_dataset(root)
    assert index.vlr == []  # no VLR file has an HR twin: none is used
    why = dict(index.problems)
    lr_problem = why[str(root / "vlr_images_16x16" / "p1_1_lr.png")]
    assert "without an HR twin" in lr_problem and "hr_images/p1_1.png looks like its twin" in lr_problem
    assert "without a VLR twin in vlr_images_16x16/" in why[str(root / "hr_images" / "p1_1.png")]
    assert len(index.problems) == 2 * 4 + 2 * 4
    proto = build_protocol(index, gallery_per_subject=1, vlr_size=16)
    enrolled = {r.path.stem for r in proto.gallery}
    assert all(p.vlr is None for p in proto.probes)  # probes degraded from their own HR images
    assert not any(p.source.path.stem.removesuffix("_lr") in enrolled for p in proto.probes)
    assert len(proto.probes) == 2 * 3


def test_one_mismatched_name_is_reported_the_rest_pair(tmp_path):
    root = write_mismatched_paired(tmp_path / "split", mismatched={(1, 2)})
    index = index_dataset(root)
    assert [p for p, _ in index.problems] == [str(root / "vlr_images_16x16" / "p1_2_lr.png"),
                                              str(root / "hr_images" / "p1_2.png")]
    proto = build_protocol(index, gallery_per_subject=1, vlr_size=16)
    assert sum(p.vlr is not None for p in proto.probes) == 5  # 6 probes, p1_2 has no real VLR file
    for p in proto.probes:
        assert p.vlr is None or p.vlr.path.name == p.hr.path.name


def test_extension_mismatch_gets_a_hint(tmp_path):
    root = write_paired_dataset(tmp_path / "split", subjects=1, images=2)
    vlr = root / "vlr_images_16x16" / "001_00_crop_128.png"
    vlr.rename(vlr.with_suffix(".jpg"))
    why = dict(index_dataset(root).problems)[str(vlr.with_suffix(".jpg"))]
    assert "hr_images/001_00_crop_128.png looks like its twin" in why


def test_vlr_only_probe_root_is_still_probed(tmp_path):
    gallery = write_paired_dataset(tmp_path / "train", subjects=2, images=2)
    probes = write_paired_dataset(tmp_path / "val", subjects=2, images=3)
    for f in (probes / "hr_images").iterdir():
        f.unlink()
    pindex = index_dataset(probes)
    assert pindex.problems == [] and len(pindex.vlr) == 6
    proto = build_protocol(index_dataset(gallery), probe_index=pindex, vlr_size=16)
    assert len(proto.probes) == 6 and all(p.hr is None for p in proto.probes)


def test_manifest_vlr_without_hr_capture_is_not_probed_in_one_root(tmp_path):
    write_folders_dataset(tmp_path / "faces", subjects=2, images=3)
    csv = tmp_path / "m.csv"
    Image.fromarray(face_like(9, (16, 16))).save(tmp_path / "faces" / "p1" / "lr_of_1.png")
    csv.write_text("path,subject,role\n" + "".join(f"faces/p{s}/{i}.png,p{s},hr\n" for s in (1, 2) for i in (1, 2, 3))
                   + "faces/p1/lr_of_1.png,p1,vlr\n")
    proto = build_protocol(index_dataset(csv), gallery_per_subject=1, vlr_size=16)
    assert all(p.vlr is None for p in proto.probes) and len(proto.probes) == 4
    assert "1 VLR file(s) without an HR image of the same capture not probed" in proto.description
    assert proto.notes and "copies of enrolled images" in proto.notes[0]


def test_mismatch_problems_reach_the_dataset_info(tmp_path):
    root = write_mismatched_paired(tmp_path / "split", mismatched={(2, 4)})
    info = Session(SessionConfig(data=root, progress=False, device="cpu", gallery_per_subject=1)).dataset_info()
    reasons = {p["path"]: p["reason"] for p in info["problems"]}
    assert "without an HR twin" in reasons[str(root / "vlr_images_16x16" / "p2_4_lr.png")]
    assert info["counts"]["problems"] == 2


# --------------------------------------------------------------------------- manifests
@pytest.fixture
def faces(tmp_path):
    return write_folders_dataset(tmp_path / "data" / "faces", subjects=2, images=2)


def _manifest(tmp_path, text, encoding="utf-8"):
    path = tmp_path / "data" / "m.csv"
    path.write_bytes(text.encode(encoding))
    return path


def _one_line_error(path, match, **kw):
    with pytest.raises(DataError, match=match) as info:
        index_dataset(path, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_manifest_absolute_path_refused_unless_allowed(tmp_path, faces):
    csv = _manifest(tmp_path, f"path,subject\nfaces/p1/1.png,a\n{faces / 'p2' / '1.png'},b\n")
    _one_line_error(csv, r"line 3: path .* is outside the manifest's folder .*--allow-outside-root")
    assert len(index_dataset(csv, allow_outside_root=True).records) == 2


def test_manifest_dotdot_escape_refused_inside_dotdot_accepted(tmp_path, faces):
    outside = write_folders_dataset(tmp_path / "elsewhere", subjects=1, images=1)
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/../p1/1.png,a\n../elsewhere/p1/1.png,b\n")
    _one_line_error(csv, r"line 3: path '../elsewhere/p1/1.png' is outside")
    index = index_dataset(csv, allow_outside_root=True)
    assert [r.path for r in index.records] == [faces / "p1" / "1.png", (outside / "p1" / "1.png").resolve()]


def test_manifest_session_option_allows_outside(tmp_path, faces):
    write_folders_dataset(tmp_path / "elsewhere", subjects=1, images=1)
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,a\n../elsewhere/p1/1.png,b\n")
    with pytest.raises(FacediagError, match="outside"):
        Session(SessionConfig(data=csv)).index  # noqa: B018
    assert len(Session(SessionConfig(data=csv, allow_outside_root=True)).index.records) == 2


def test_manifest_one_file_two_subjects_refused(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,alice\nfaces/p1/2.png,alice\n"
                              "faces/./p1/1.png,bob\n")
    msg = _one_line_error(csv, r"line 4: 'faces/./p1/1.png' is listed under subject 'bob' and, on line 2, "
                               r"under 'alice'")
    assert "one file, one person" in msg


def test_manifest_same_file_twice_same_subject_is_a_problem(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,alice\nfaces/p1/1.png,alice\nfaces/p1/2.png,alice\n")
    index = index_dataset(csv)
    assert len(index.records) == 2
    why = "line 3: listed again (first on line 2); the repeat is ignored"
    assert index.problems == [(str(faces / "p1" / "1.png"), why)]


def test_manifest_with_a_byte_order_mark(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject,role\nfaces/p1/1.png,José,hr\nfaces/p2/1.png,b,hr\n", "utf-8-sig")
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    index = index_dataset(csv)
    assert index.subjects == ["b", "José"] and index.problems == []


def test_manifest_header_is_case_and_space_insensitive(tmp_path, faces):
    csv = _manifest(tmp_path, "Path , Subject\nfaces/p1/1.png,a\n")
    assert len(index_dataset(csv).records) == 1


def test_manifest_short_and_long_rows_refused(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject,role\nfaces/p1/1.png,a,hr\nfaces/p1/2.png\n")
    _one_line_error(csv, r"line 3 has 1 field\(s\), the header has 3 \(path,subject,role\)")
    csv = _manifest(tmp_path, "subject,path\nalice\n")  # once a TypeError: exit 3
    _one_line_error(csv, r"line 2 has 1 field")
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,a,b,c\n")
    _one_line_error(csv, r"line 2 has 4 field\(s\)")


def test_manifest_latin1_refused_naming_the_line(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,a\nfaces/p1/2.png,José\n", "latin-1")
    _one_line_error(csv, r"line 3 is not UTF-8 \(byte 0xe9\); save the manifest as UTF-8")


def test_manifest_nul_bytes_bad_csv_long_names_and_directories(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,a\nfaces/p1/2\x00.png,a\n")
    _one_line_error(csv, r"line 3 holds a NUL byte")
    csv = _manifest(tmp_path, 'path,subject\n"faces/p1/1.png,a\n')  # an unclosed quote
    _one_line_error(csv, r"line 2: not valid CSV")
    csv = _manifest(tmp_path, f"path,subject\n{'x' * 300}/1.png,a\nfaces/p1/1.png,a\n")
    index = index_dataset(csv)
    assert len(index.records) == 1 and "line 2: cannot read the path" in index.problems[0][1]
    (tmp_path / "d.csv").mkdir()
    _one_line_error(tmp_path / "d.csv", "must be a .csv file", layout="manifest")


def test_manifest_blank_lines_skipped(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\n\nfaces/p1/1.png,a\n,\n")
    index = index_dataset(csv)
    assert len(index.records) == 1 and index.problems == []


def test_manifest_record_paths_are_resolved(tmp_path, faces):
    csv = _manifest(tmp_path, "path,subject\nfaces/p1/1.png,a\n")
    rec = index_dataset(csv).records[0]
    assert rec.path == (faces / "p1" / "1.png").resolve() and rec.capture == "1"
    assert np.asarray(Image.open(rec.path)).shape == (112, 112, 3)
