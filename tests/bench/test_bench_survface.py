"""bench survface end to end: a miniature QMUL-SurvFace test release in the archive's layout and
file formats (.mat lists written by scipy.io.savemat as MATLAB cell arrays), built from ORL faces
(AT&T / ORL) shrunk to surveillance sizes and small synthetic images, run through the CLI with
the real EdgeFace-xxs float weights; a watch list whose identities are scrambled must fail; a
hostile or malformed list is one line, exit 2, nothing run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from cli_helpers import invoke, one_line_exit_2
from helpers import face_like

from facediag.data.survface import read_survface
from facediag.errors import DataError
from facediag.render import render
from facediag.results import BenchReport, load_result

# Watch list: ORL s1–s10; gallery = their images 1–3, mated probes = images 4–6 (widths cycled).
WATCH = range(1, 11)
GALLERY = [(s, i) for s in WATCH for i in (1, 2, 3)]
MATED = [(s, i) for s in WATCH for i in (4, 5, 6)]
# Unmated: ORL s11–s40, images 4 and 5 (people the watch list does not hold), and six synthetic
# "distractors_<n>.jpg" as the release names its unlabelled ones: 66 searches (FPIR 0.1 needs 100).
UNMATED = [(s, i) for s in range(11, 41) for i in (4, 5)]
N_DISTRACTORS = 6
PROBE_WIDTHS = (14, 18, 22, 26, 30, 36, 44)
# Verification: ORL s21–s40; positive pairs (1, 2) and (3, 4) of each person, negative pairs
# image 5 of person k against image 6 of person k + 1: 40 + 40 pairs.
VER_PEOPLE = list(range(21, 41))
POSITIVE = [((s, a), (s, b)) for s in VER_PEOPLE for a, b in ((1, 2), (3, 4))]
NEGATIVE = [((s, 5), (VER_PEOPLE[(k + 1) % 20], 6)) for k, s in enumerate(VER_PEOPLE)]
NEGATIVE += [((s, 7), (VER_PEOPLE[(k + 3) % 20], 8)) for k, s in enumerate(VER_PEOPLE)]


def shrunk(orl: Path, person: int, image: int, width: int) -> Image.Image:
    """ORL's 92×112 face shrunk to ``width`` wide (aspect kept): a native low-resolution original."""
    im = Image.open(orl / f"s{person}" / f"{image}.pgm").convert("RGB")
    return im.resize((width, round(width * 112 / 92)), Image.BICUBIC)


def name(person: int, image: int) -> str:
    return f"{person}_cam{1 + image % 3}_{image}.jpg"  # the release's {person}_cam{c}_{n}.jpg


def cell(names: list) -> np.ndarray:
    """A MATLAB cell array (N×1, or N×2 for pairs) as savemat writes it from an object array."""
    arr = np.array(names, dtype=object)
    out = np.empty(arr.shape if arr.ndim == 2 else (len(arr), 1), dtype=object)
    out[...] = arr.reshape(out.shape)
    return out


def write_survface(root: Path, orl: Path, *, scramble: bool = False) -> Path:
    test = root / "QMUL-SurvFace" / "Face_Identification_Test_Set"
    for part in ("gallery", "mated_probe", "unmated_probe"):
        (test / part).mkdir(parents=True)
    for s, i in GALLERY:
        shrunk(orl, s, i, 40).save(test / "gallery" / name(s, i), quality=92)
    for k, (s, i) in enumerate(MATED):
        shrunk(orl, s, i, PROBE_WIDTHS[k % len(PROBE_WIDTHS)]).save(test / "mated_probe" / name(s, i), quality=92)
    for k, (s, i) in enumerate(UNMATED):
        shrunk(orl, s, i, PROBE_WIDTHS[k % len(PROBE_WIDTHS)]).save(test / "unmated_probe" / name(s, i), quality=92)
    for n in range(N_DISTRACTORS):
        Image.fromarray(face_like(500 + n, (30, 24))).save(test / "unmated_probe" / f"distractors_{n + 1}.jpg")
    gallery_ids = np.array([[s] for s, _ in GALLERY], dtype=np.float64)   # MATLAB doubles, N×1
    if scramble:  # a planted fault: every gallery image filed under the next person
        gallery_ids = np.array([[s % 10 + 1] for s, _ in GALLERY], dtype=np.float64)
    savemat(test / "gallery_img_ID_pairs.mat",
            {"gallery_set": cell([name(s, i) for s, i in GALLERY]), "gallery_ids": gallery_ids})
    savemat(test / "mated_probe_img_ID_pairs.mat",
            {"mated_probe_set": cell([name(s, i) for s, i in MATED]),
             "mated_probe_ids": np.array([[s] for s, _ in MATED], dtype=np.uint16)})
    (root / "QMUL-SurvFace" / "Face_Identification_Evaluation").mkdir()   # the MATLAB code's folder

    ver = root / "QMUL-SurvFace" / "Face_Verification_Test_Set"
    (ver / "verification_images").mkdir(parents=True)
    for k, (s, i) in enumerate(sorted({p for pair in POSITIVE + NEGATIVE for p in pair})):
        shrunk(orl, s, i, PROBE_WIDTHS[k % len(PROBE_WIDTHS)]).save(ver / "verification_images" / name(s, i),
                                                                   quality=92)
    for key, pairs in (("positive_pairs_names", POSITIVE), ("negative_pairs_names", NEGATIVE)):
        savemat(ver / f"{key}.mat", {key: cell([[name(*a), name(*b)] for a, b in pairs])})
    return root


@pytest.fixture(scope="module")
def tree(orl_root, tmp_path_factory):
    return write_survface(tmp_path_factory.mktemp("survface"), orl_root)


@pytest.fixture(scope="module")
def run(float_weights, tree, tmp_path_factory):
    d = tmp_path_factory.mktemp("survface_run")
    out = d / "out"
    res = invoke("bench", "survface", "-w", float_weights, "--root", tree, "--cache-dir", d / "cache", "--quiet",
                 "--json", "--out", out)
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout), out, d / "cache"


def test_reads_the_release_layout(tree):
    meta = read_survface(tree)   # the folder holding QMUL-SurvFace/
    wl, ver = meta.identification, meta.verification
    assert (len(wl.gallery), len(wl.mated), len(wl.unmated)) == (30, 30, 66)
    assert wl.gallery[0] == "1_cam2_1.jpg" and wl.gallery_ids[:4].tolist() == [1, 1, 1, 2]
    assert wl.unmated[-1] == "distractors_6.jpg" and wl.sources["gallery"].endswith(
        "Face_Identification_Test_Set/gallery_img_ID_pairs.mat")
    assert (int(ver.issame.sum()), int((~ver.issame).sum())) == (40, 40)
    # fold k = the k-th tenth of each list: every fold holds 4 positive and 4 negative pairs
    for k in range(10):
        assert ver.issame[ver.fold_ids == k].sum() == 4 and (~ver.issame[ver.fold_ids == k]).sum() == 4


def test_lists_are_also_found_in_the_evaluation_folder(tree, tmp_path):
    """The release keeps the two identification lists beside the images; some write-ups place them
    in Face_Identification_Evaluation/: read from there when the test set has none."""
    import shutil

    root = tmp_path / "QMUL-SurvFace"
    shutil.copytree(tree / "QMUL-SurvFace", root)
    for f in ("gallery_img_ID_pairs.mat", "mated_probe_img_ID_pairs.mat"):
        (root / "Face_Identification_Test_Set" / f).rename(root / "Face_Identification_Evaluation" / f)
    wl = read_survface(root, ("identification",)).identification
    assert wl.sources["gallery"].endswith("Face_Identification_Evaluation/gallery_img_ID_pairs.mat")
    assert len(wl.gallery) == 30 and read_survface(root).verification is not None
    (root / "Face_Identification_Evaluation" / "gallery_img_ID_pairs.mat").unlink()
    with pytest.raises(DataError, match=r"gallery_img_ID_pairs.mat: no such file \(nor in Face_Identification_Eval"):
        read_survface(root)


@pytest.mark.slow
def test_watch_list_figures(run):
    report, _, _ = run
    (row,) = [r for r in report["rows"] if r["task"] == "identification"]
    assert (row["n_gallery"], row["n_gallery_images"], row["n_mated"], row["n_unmated"]) == (10, 30, 30, 66)
    w20, w1 = row["watchlist"]["rank20"], row["watchlist"]["rank1"]
    # 66 unmated searches support FPIR 0.3 (19.8 false alarms expected) and 0.2 (13.2), not 0.1 (6.6)
    for w in (w20, w1):
        assert w["tpir_at_fpir"]["0.1"] is None
        assert w["tpir_unsupported"]["0.1"] == ("FPIR 0.1 needs >= 100 non-mated probes (n·FPIR >= 10); "
                                                "only 66 available")
        assert w["fpir_thresholds"]["0.3"]["fpir"] <= 0.3 and w["fpir_thresholds"]["0.2"]["fpir"] <= 0.2
    # ten identities: rank 20 holds every mate, so TPIR20 >= TPIR1 at every point; far above chance
    assert w20["tpir_at_fpir"]["0.3"] >= w1["tpir_at_fpir"]["0.3"] >= 0.5
    assert w20["tpir_at_fpir"]["0.2"] >= w1["tpir_at_fpir"]["0.2"] > 0.4
    assert w20["area"] >= w1["area"] > 0.5 and w1["area"] <= row["rank1"]   # the area is at most rank-k
    assert row["rank1"] > 0.7 and row["rank20"] == 1.0
    st = report["settings"]
    assert st["flip"] is True and st["fpirs"] == [0.3, 0.2, 0.1] and st["ranks"] == [20, 1]
    # per-probe quality over the 30 mated probes: native widths 14–44 px
    q = row["by_quality"]
    assert q["n"] == 30 and sum(b["n"] for b in q["size_bins"]) == 30
    assert set(q["edc"]) == {"size", "blur", "norm"}


@pytest.mark.slow
def test_verification_figures(run):
    report, _, _ = run
    (row,) = [r for r in report["rows"] if r["task"] == "verification"]
    assert (row["n_pairs"], row["n_genuine"], row["n_impostor"], row["folds"]) == (80, 40, 40, 10)
    assert row["tar_at_far"]["0.3"] > 0.7 and row["auc"] > 0.85 and row["accuracy"] > 0.75
    # 40 negative pairs support FAR 0.3 only (0.1 needs 100)
    assert row["tar_at_far"]["0.1"] is None and "needs >= 100 impostor pairs" in row["tar_unsupported"]["0.1"]


@pytest.mark.slow
def test_every_format_renders_and_reads_back(run):
    report, out, _ = run
    assert sorted(p.name for p in out.iterdir()) == ["bench-survface.html", "bench-survface.json",
                                                   "bench-survface.junit.xml", "bench-survface.md"]
    back = load_result(out / "bench-survface.json", BenchReport)
    assert back.kind == "survface" and back.rows == report["rows"]
    md = render(back, "md")
    assert "QMUL-SurvFace open-set identification" in md and "| TPIR20@FPIR 0.3 % |" in md
    assert "QMUL-SurvFace verification" in md and "mean accuracy" in md
    assert "TPIR20 at FPIR 0.1: not reported (FPIR 0.1 needs" in md and "100 non-mated probes" in md
    assert "watch list 10 identities (30 images), 30 mated + 66 unmated probes" in md


@pytest.mark.slow
def test_a_scrambled_watch_list_fails(float_weights, orl_root, run, tmp_path):
    """The planted fault: gallery images filed under the wrong person. The same images (served
    from the cache), so only the lists differ; identification collapses."""
    _, _, cache = run
    root = write_survface(tmp_path / "bad", orl_root, scramble=True)
    res = invoke("bench", "survface", "-w", float_weights, "--root", root, "--task", "identification",
                 "--cache-dir", cache, "--quiet", "--json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["rows"]
    assert row["rank1"] < 0.2 and row["watchlist"]["rank1"]["tpir_at_fpir"]["0.3"] < 0.2


# ------------------------------------------------------------- hostile and malformed lists: one line, exit 2
HDF5_MAGIC = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."


def _break(test: Path, how: str) -> str:
    """Damage the miniature in one way; the words the one line must hold."""
    g = test / "gallery_img_ID_pairs.mat"
    if how == "v7.3":
        g.write_bytes(HDF5_MAGIC.ljust(128, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
        return "v7.3"
    if how == "wrong keys":
        savemat(g, {"gallery_names": cell(["1_cam2_1.jpg"]), "gallery_ids": np.ones((1, 1))})
        return "no variable 'gallery_set'"
    if how == "struct":
        savemat(g, {"gallery_set": {"name": "1_cam2_1.jpg"}, "gallery_ids": np.ones((1, 1))})
        return "is a MATLAB struct"
    if how == "path in a name":
        savemat(g, {"gallery_set": cell(["../../etc/passwd"]), "gallery_ids": np.ones((1, 1))})
        return "is not a plain file name"
    if how == "missing image":
        savemat(g, {"gallery_set": cell(["1_cam2_1.jpg", "nobody.jpg"]), "gallery_ids": np.ones((2, 1))})
        return "1 of the 2 images named in 'gallery_set' are not in"
    if how == "lengths":
        savemat(g, {"gallery_set": cell(["1_cam2_1.jpg", "1_cam3_2.jpg"]), "gallery_ids": np.ones((3, 1))})
        return "2 names in 'gallery_set' but 3 identities"
    if how == "unlisted identity":
        savemat(g, {"gallery_set": cell(["1_cam2_1.jpg"]), "gallery_ids": np.ones((1, 1))})
        return "identities of mated probes have no gallery image"
    if how == "pairs not N×2":
        v = test.parent / "Face_Verification_Test_Set" / "positive_pairs_names.mat"
        savemat(v, {"positive_pairs_names": cell([["a.jpg", "b.jpg", "c.jpg"]] * 12)})
        return "not N×2"
    if how == "garbage":
        g.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(109) + b"\x00\x01IM" + bytes(200))
        return "not a readable MATLAB v5 file"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["v7.3", "wrong keys", "struct", "path in a name", "missing image", "lengths",
                                 "unlisted identity", "pairs not N×2", "garbage"])
def test_hostile_or_malformed_lists_are_one_line_and_nothing_runs(how, float_weights, orl_root, tree, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tree, root)
    needle = _break(root / "QMUL-SurvFace" / "Face_Identification_Test_Set", how)
    out = tmp_path / "out"
    res = invoke("bench", "survface", "-w", float_weights, "--root", root, "--out", out, "--no-cache", "--quiet")
    one_line_exit_2(res, needle)
    assert not out.exists() or not any(out.iterdir())   # nothing was written: refused before any model ran
