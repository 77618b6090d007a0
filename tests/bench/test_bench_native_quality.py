"""bench accuracy over a folder of real low-resolution crops: accuracy by native size, blur and norm (EDC)."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from facediag.bench import bench_accuracy
from facediag.bench.native_quality import native_measures
from facediag.errors import DataError
from facediag.metrics.edc import laplacian_variance
from facediag.render import render

SHORT_SIDES = (8, 11, 14, 20, 28, 40, 56)   # ORL is 92×112: width is the shorter side


@pytest.fixture(scope="module")
def crops(orl_root, tmp_path_factory):
    """Gallery: ORL s1–s10, images 1–3 (HR). Probes: images 4–10 of the same people as real
    low-resolution files, each at a short side from SHORT_SIDES: a paired probe root whose
    hr_images/ is empty (VLR files only)."""
    root = tmp_path_factory.mktemp("crops")
    gallery, probes = root / "gallery", root / "probes" / "vlr_images"
    sizes = {}
    (root / "probes" / "hr_images").mkdir(parents=True)
    for s in range(1, 11):
        (gallery / f"s{s}").mkdir(parents=True)
        for i in range(1, 11):
            img = Image.open(orl_root / f"s{s}" / f"{i}.pgm")
            if i <= 3:
                img.save(gallery / f"s{s}" / f"{i}.png")
                continue
            w = SHORT_SIDES[(s + i) % len(SHORT_SIDES)]
            probes.mkdir(parents=True, exist_ok=True)
            name = f"s{s}_{i}.png"
            img.resize((w, round(w * 112 / 92)), Image.BOX).save(probes / name)
            sizes[name] = w
    return gallery, probes.parent, sizes


def test_native_measures_reads_the_file_as_it_is(crops, tmp_path):
    _, probes, sizes = crops
    name, w = next(iter(sizes.items()))
    size, blur = native_measures(probes / "vlr_images" / name)
    grey = np.asarray(Image.open(probes / "vlr_images" / name).convert("RGB").convert("L"), dtype=np.float64)
    assert size == w and blur == pytest.approx(laplacian_variance(grey), rel=0.02)   # PIL rounds its luma
    sharp = Image.open(probes / "vlr_images" / name)
    sharp.resize((64, 78)).save(tmp_path / "sharp.png")
    sharp.resize((64, 78)).filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "blurred.png")
    assert native_measures(tmp_path / "sharp.png")[1] > native_measures(tmp_path / "blurred.png")[1]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        native_measures(tmp_path / "bad.png")


def test_bench_accuracy_on_real_crops_reports_size_bins_and_edc(crops, float_weights):
    gallery, probes, sizes = crops
    report = bench_accuracy([float_weights], gallery_root=gallery, probe_root=probes, resolutions="16,24",
                            use_cache=False, progress=False, n_boot=50)
    carrying = [r for r in report.rows if "by_quality" in r]
    assert [r["resolution"] for r in carrying] == [16]          # the files are the same at 24: once
    q = carrying[0]["by_quality"]
    assert q["n"] == 70 and q["probes"] == "70 mated probes read from real low-resolution files"
    bins = {b["label"]: b for b in q["size_bins"]}
    # each short side is used by 10 probes: 8, 11 and 14 px fall below 16
    assert {k: b["n"] for k, b in bins.items()} == {"< 16 px": 30, "16–24 px": 10, "24–32 px": 10,
                                                     "32–48 px": 10, "≥ 48 px": 10}
    # the real model: faces 8–14 px wide score far lower against their mates than 56 px ones
    # (measured: rank-1 0.73 vs 0.90, genuine mean 0.25 vs 0.56)
    assert bins["< 16 px"]["rank1"] < bins["≥ 48 px"]["rank1"]
    assert bins["< 16 px"]["genuine_mean"] < bins["≥ 48 px"]["genuine_mean"] - 0.2
    assert carrying[0]["rank1"] == pytest.approx(
        sum(b["rank1"] * b["n"] for b in q["size_bins"]) / 70)     # the bins add up to the row
    size_edc = q["edc"]["size"]["rank1_error"]
    assert size_edc["error"][0] == pytest.approx(1 - carrying[0]["rank1"])
    assert size_edc["discard"][1] == pytest.approx(10 / 70)     # the ten 8 px probes go first, together
    for curve in (size_edc, q["edc"]["size"]["fnmr"]):           # dropping the smallest faces helps
        assert curve["error"][2] < curve["error"][0]
    assert set(q["edc"]) == {"size", "blur", "norm"} and q["edc"]["norm"]["fnmr"]["n"] == 70
    md = render(report, "md")
    assert "## Accuracy by native face size" in md and "| 16 px | size | rank-1 error |" not in md
    assert md.count("| edgeface_xxs_fp32_dequantized | size |") == 2     # rank-1 error and FNMR
    assert "- edgeface_xxs_fp32_dequantized: 70 mated probes read from real low-resolution files" in md
    assert render(report, "html").count("error vs discard (EDC)") >= 1
