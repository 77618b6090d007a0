"""bench accuracy on paired data with real VLR files: native rank-1 beside the same probes made
synthetically from their HR images at the files' median size (bicubic and realistic)."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facediag.bench import bench_accuracy
from facediag.bench.native_gap import median_size
from facediag.render import render
from facediag.session import Session, SessionConfig

SIZES = (12, 14, 16, 18, 20)   # the real VLR files' sizes, assorted around 16 px
NO_VLR = "s10"                 # this subject's probes have no VLR file: they stay out of the comparison


def _real_vlr(img: Image.Image, size: int, k: int) -> Image.Image:
    """A capture-like low-resolution face: the ORL image on the 112×112 canvas the model sees
    (so native and synthetic probes frame the face alike), optical blur, bilinear resize, sensor
    noise and JPEG at a quality that varies per file."""
    canvas = Image.new("L", (112, 112))
    canvas.paste(img, ((112 - img.width) // 2, 0))
    small = canvas.filter(ImageFilter.GaussianBlur(1.0 + 0.5 * (k % 3))).resize((size, size), Image.BILINEAR)
    noisy = np.asarray(small, dtype=np.float64) + np.random.default_rng(k).normal(0, 3.0, (size, size))
    buf = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8)).save(buf, "JPEG", quality=55 + 5 * (k % 6))
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def paired(orl_root, tmp_path_factory):
    """ORL s1–s10 as a paired root (hr_images/ + vlr_images/, one name per capture): images 1–3
    enrol, 4–10 probe, each probe with a real VLR file except NO_VLR's. Beside it an HR-only copy
    (folders, the same files) of the gallery and of the probes that have a VLR file."""
    base = tmp_path_factory.mktemp("native-gap")
    root, copy = base / "paired", base / "hr_only"
    hr, vlr = root / "hr_images", root / "vlr_images"
    hr.mkdir(parents=True)
    vlr.mkdir()
    sizes = {}
    for s in range(1, 11):
        (copy / f"s{s}").mkdir(parents=True)
        for i in range(1, 11):
            name = f"s{s}_{i:02d}.png"
            img = Image.open(orl_root / f"s{s}" / f"{i}.pgm")
            img.save(hr / name)
            if i <= 3 or f"s{s}" != NO_VLR:
                shutil.copyfile(hr / name, copy / f"s{s}" / name)
            if i > 3 and f"s{s}" != NO_VLR:
                k = 10 * s + i
                sizes[name] = SIZES[k % len(SIZES)]
                _real_vlr(img, sizes[name], k).save(vlr / name)
    return root, copy, sizes


def test_synthetic_probes_ignore_the_vlr_files_and_key_as_an_hr_only_run(paired):
    root, copy, sizes = paired
    cfg = dict(vlr_size=16, use_cache=False, progress=False)
    native = Session(SessionConfig(data=root, **cfg))
    synthetic = Session(SessionConfig(data=root, probes_from_hr=True, **cfg))
    hr_only = Session(SessionConfig(data=copy, **cfg))
    assert sum(p.vlr is not None for p in native.protocol.probes) == len(sizes) == 63   # default: unchanged
    assert len(synthetic.protocol.probes) == 70 and all(p.vlr is None for p in synthetic.protocol.probes)
    assert "real VLR files ignored" in synthetic.protocol.description
    keys = {view: {p.hr.path.name: item.key for p, item in zip(s.protocol.probes, s.pixels.items("probe_dsr"))}
            for view, s in (("native", native), ("synthetic", synthetic), ("hr_only", hr_only))}
    # the synthetic probes are keyed as any run at 16 px keys the same HR files; never as the VLR files
    assert all(keys["synthetic"][n] == keys["hr_only"][n] for n in sizes)
    assert all("vlr-file" in keys["native"][n] and keys["native"][n] != keys["synthetic"][n] for n in sizes)


def test_native_vs_synthetic_on_orl(paired, float_weights, tmp_path):
    root, copy, sizes = paired
    report = bench_accuracy([float_weights], root, resolutions="16", use_cache=False, progress=False, n_boot=200)
    (row,) = report.rows_where(resolution=16)
    gap = row["native_vs_synthetic"]
    want = median_size(list(sizes.values()))
    assert want == int(np.floor(np.median([min(Image.open(root / "vlr_images" / n).size) for n in sizes]) + 0.5))
    assert gap["native_size_median"] == want and gap["native_size_range"] == [min(SIZES), max(SIZES)]
    assert gap["n_probes"] == gap["n_paired"] == 63 and row["n_probes"] == 70    # s10's probes left out
    # native: the row's probes read from the files, as its by_quality section counts them
    bins = row["by_quality"]["size_bins"]
    assert sum(b["n"] for b in bins) == 63
    assert gap["rank1_native"] == pytest.approx(sum(b["rank1"] * b["n"] for b in bins if b["n"]) / 63, abs=1e-12)
    for mode in ("bicubic", "realistic"):
        assert gap[f"gap_{mode}"]["delta"] == pytest.approx(gap[f"rank1_{mode}"] - gap["rank1_native"])
        assert gap[f"gap_{mode}"]["ci_low"] <= gap[f"gap_{mode}"]["delta"] <= gap[f"gap_{mode}"]["ci_high"]
    assert report.settings["native_vs_synthetic_degradations"]["realistic"]["mode"] == "realistic"
    # synthetic: what bench accuracy gives on an HR-only copy of the same probes at that size, run apart
    for mode in ("bicubic", "realistic"):
        alone = bench_accuracy([float_weights], copy, resolutions=str(want), degrade=mode, cache_dir=tmp_path / "c",
                               progress=False, n_boot=50)
        (other,) = alone.rows
        assert other["n_probes"] == 63 and "native_vs_synthetic" not in other       # no VLR files: no comparison
        assert "native_vs_synthetic_degradations" not in alone.settings
        assert gap[f"rank1_{mode}"] == other["rank1"], mode
    md = render(report, "md")
    assert "## Native vs synthetic low-resolution probes" in md
    assert (f"| 16 px | edgeface_xxs_fp32_dequantized | bicubic | {want} px ({min(SIZES)}–{max(SIZES)}) | 63 of 63 | "
            f"{gap['rank1_native']:.3f} | {gap['rank1_bicubic']:.3f} |") in md
    assert "synthetic realistic: low resolutions: realistic degradation v1" in md
    print({k: gap[k] for k in ("native_size_median", "rank1_native", "rank1_bicubic", "rank1_realistic")})
