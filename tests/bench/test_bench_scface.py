"""bench scface end to end: a miniature SCface in the release's folder layout and file names, built
from ORL faces (AT&T / ORL): a frontal mugshot per person, five cameras at three distances whose
shots are other photographs of the person shrunk to 16 / 24 / 40 px wide (the nearer, the larger),
copies of some files in a second folder, and files the protocol ignores (infrared cameras,
rotation mugshots). Run through the CLI with the real EdgeFace-xxs float weights; the lookup rules
and refusals without a model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import invoke, one_line_exit_2

from facediag.data.scface import find_scface
from facediag.errors import DataError
from facediag.render import render
from facediag.results import BenchReport, load_result

PEOPLE = range(1, 13)
WIDTH = {1: 16, 2: 24, 3: 40}    # distance 1 = 4.20 m: the smallest faces


def orl(orl_root: Path, person: int, image: int, width: int | None = None) -> Image.Image:
    im = Image.open(orl_root / f"s{person}" / f"{image}.pgm").convert("RGB")
    return im if width is None else im.resize((width, round(width * 112 / 92)), Image.BICUBIC)


def write_scface(root: Path, orl_root: Path) -> Path:
    mug = root / "mugshot_frontal_cropped_all"
    mug.mkdir(parents=True)
    (root / "mugshot_rotation_all").mkdir()
    for p in PEOPLE:
        orl(orl_root, p, 1).resize((184, 224), Image.BICUBIC).save(mug / f"{p:03d}_frontal.JPG", quality=95)
        orl(orl_root, p, 1).save(root / "mugshot_rotation_all" / f"{p:03d}_L1.JPG")   # not a frontal: ignored
    for d, width in WIDTH.items():
        for c in range(1, 6):
            folder = root / f"surveillance_cameras_distance_{d}" / f"cam{c}"
            folder.mkdir(parents=True)
            for p in PEOPLE:   # camera c shows ORL image c + 1 of the person
                orl(orl_root, p, c + 1, width).save(folder / f"{p:03d}_cam{c}_{d}.jpg", quality=90)
    # the release's second copy of camera shots (same bytes: counted once), an infrared camera
    # (cam6: not one of the five visible cameras), and a person with shots but no mugshot
    allcams = root / "surveillance_cameras_all"
    allcams.mkdir()
    for p in PEOPLE:
        shutil.copy(root / "surveillance_cameras_distance_1" / "cam1" / f"{p:03d}_cam1_1.jpg", allcams)
        orl(orl_root, p, 9, 16).save(allcams / f"{p:03d}_cam6_1.jpg")
    orl(orl_root, 13, 2, 24).save(allcams / "013_cam1_2.jpg")
    return root


@pytest.fixture(scope="module")
def tree(orl_root, tmp_path_factory):
    return write_scface(tmp_path_factory.mktemp("scface") / "SCface", orl_root)


@pytest.fixture(scope="module")
def run(float_weights, tree, tmp_path_factory):
    d = tmp_path_factory.mktemp("scface_run")
    res = invoke("bench", "scface", "-w", float_weights, "--root", tree, "--per-camera", "--cache-dir", d / "cache",
                 "--quiet", "--json", "--out", d / "out")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout), d / "out"


# ------------------------------------------------------------------------------ finding the files
def test_finds_mugshots_and_camera_shots_anywhere_below_root(tree):
    meta = find_scface(tree)
    assert list(meta.mugshots) == [str(p) for p in PEOPLE]       # "001" and "1" are one person
    assert len(meta.probes) == 12 * 5 * 3 and meta.merged_copies == 12
    assert [(p.distance, p.camera, p.subject) for p in meta.probes[:2]] == [(1, 1, "1"), (1, 1, "2")]
    assert {p.camera for p in meta.probes} == {1, 2, 3, 4, 5}    # cam6 (infrared) left alone
    assert [(p.subject, p.camera, p.distance) for p in meta.left_out] == [("13", 1, 2)]
    assert meta.describe()["per_distance"]["1"] == {"distance_m": 4.2, "probes": 60}


def test_differing_copies_are_refused_and_a_folder_chooses(tree, tmp_path):
    root = tmp_path / "SCface"
    shutil.copytree(tree, root)
    original = root / "mugshot_frontal_original_all"
    original.mkdir()
    Image.new("RGB", (300, 400), (90, 80, 70)).save(original / "001_frontal.JPG")  # not the cropped one's bytes
    with pytest.raises(DataError, match=r"mugshot of person 1 has 2 different files .* give --mugshots FOLDER"):
        find_scface(root)
    assert find_scface(root, mugshots=root / "mugshot_frontal_cropped_all").mugshots["1"].parent.name == (
        "mugshot_frontal_cropped_all")
    res = invoke("bench", "scface", "-w", "unused.pt", "--root", root, "--no-cache", "--quiet")
    one_line_exit_2(res, "different files", "--mugshots")


def test_nothing_to_match_is_one_line(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "a" / "001_frontal.jpg")
    with pytest.raises(DataError, match="no camera shot named"):
        find_scface(tmp_path)
    res = invoke("bench", "scface", "-w", "unused.pt", "--root", tmp_path / "missing", "--no-cache", "--quiet")
    one_line_exit_2(res, "no such folder")


# ------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_per_distance_rows_and_face_sizes(run):
    report, _ = run
    d = report["dataset"]
    assert {k: v["median_size"] for k, v in d["per_distance"].items()} == {"1": 16.0, "2": 24.0, "3": 40.0}
    native = {r["distance"]: r for r in report["rows"] if r["probes"] == "native" and r["camera"] == "all"}
    assert sorted(native, key=str) == [1, 2, 3, "all"]
    assert [native[k]["n_probes"] for k in (1, 2, 3, "all")] == [60, 60, 60, 180]
    assert native[1]["distance_m"] == 4.2 and native[3]["median_size"] == 40.0 and native["all"]["n_gallery"] == 12
    # nearer means larger faces and better recognition; all far above chance (1/12)
    assert native[3]["rank1"] >= native[1]["rank1"] - 0.05 and native[3]["rank1"] > 0.6 and native[1]["rank1"] > 0.3
    # impostor pairs: 60 × 11 per distance support FAR 0.1 only; 180 × 11 also 0.01
    assert native[1]["tar_at_far"]["0.1"] is not None and native[1]["tar_at_far"]["0.01"] is None
    assert native["all"]["tar_at_far"]["0.01"] is not None and native["all"]["tar_at_far"]["0.001"] is None
    cams = [r for r in report["rows"] if r["probes"] == "native" and r["camera"] != "all"]
    assert len(cams) == 15 and all(r["n_probes"] == 12 for r in cams)
    q = native["all"]["by_quality"]
    assert q["n"] == 180 and [b["n"] for b in q["size_bins"]] == [0, 60, 60, 60, 0]
    assert report["notes"] == ["1 camera shot(s) of 1 person(s) without a mugshot left out",
                               "12 identical copies of files found in more than one folder counted once"]


@pytest.mark.slow
def test_the_gap_between_native_and_synthetic(run):
    report, _ = run
    gap = {c["distance"]: c for c in report["comparisons"]}
    assert sorted(gap) == [1, 2, 3]
    native = {r["distance"]: r["rank1"] for r in report["rows"] if r["probes"] == "native" and r["camera"] == "all"}
    for d, size in ((1, 16), (2, 24), (3, 40)):
        c = gap[d]
        assert c["size"] == size and c["native_rank1"] == native[d]
        assert c["gap_bicubic"] == pytest.approx(c["bicubic_rank1"] - native[d])
        assert c["gap_realistic"] == pytest.approx(c["realistic_rank1"] - native[d])
    synthetic = [r for r in report["rows"] if r["probes"] == "synthetic"]
    assert sorted((r["distance"], r["degrade"]) for r in synthetic) == [
        (d, m) for d in (1, 2, 3) for m in ("bicubic", "realistic")]
    assert all(r["n_probes"] == 12 for r in synthetic)
    # a degraded copy of the gallery image is found far more easily than another photograph at the
    # same size: synthetic degradation overstates accuracy
    assert gap[3]["bicubic_rank1"] == 1.0 and gap[2]["gap_bicubic"] > 0.1 and gap[3]["gap_bicubic"] > 0.1
    realistic = report["settings"]["degradation"]["realistic"]
    assert [s["step"] for s in realistic["steps"]][:2] == ["blur", "downsample"]


@pytest.mark.slow
def test_every_format_renders_and_reads_back(run):
    report, out = run
    assert sorted(p.name for p in out.iterdir()) == ["bench-scface.html", "bench-scface.json",
                                                   "bench-scface.junit.xml", "bench-scface.md"]
    back = load_result(out / "bench-scface.json", BenchReport)
    assert back.kind == "scface" and back.comparisons == report["comparisons"]
    md = render(back, "md")
    assert "SCface: surveillance cameras against the mugshots" in md and "| median face px |" in md
    assert "SCface: native against synthetic low resolution (the gap)" in md and "| gap realistic pp |" in md
    assert "1 (4.20 m)" in md and "distance 1 (4.20 m): 60 probes, median face 16.0 px" in md
    assert "Error versus discard characteristic" in md
