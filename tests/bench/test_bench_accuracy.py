"""bench accuracy: the ORL resolution table, the shared gallery, DSR vs bicubic, the CLI."""
import json

import pytest
import torch
from click.testing import CliRunner

from facediag.bench import bench_accuracy, parse_resolutions
from facediag.cli import cli
from facediag.errors import FacediagError
from helpers import BlurDSR, script_dsr, write_folders_dataset

# Measured independently on ORL (float xxs; gallery = images 1-3 per person, the rest probe).
ORL_RANK1 = {12: 0.45, 16: 0.79, 24: 0.90, 32: 0.94, "hr": 0.93}


@pytest.fixture(scope="module")
def heavy_blur_dsr(tmp_path_factory):
    """Bicubic, then a 25×25 Gaussian blur (σ 4): far worse than bicubic."""
    return script_dsr(BlurDSR(sigma=4.0, size=25), tmp_path_factory.mktemp("dsr") / "blur_dsr.torchscript")


def test_parse_resolutions():
    assert parse_resolutions("hr,16, 12,16") == (12, 16, None)
    assert parse_resolutions([32, None]) == (32, None)
    for bad in ("abc", "2", "200", ""):
        with pytest.raises(FacediagError):
            parse_resolutions(bad)


def test_orl_resolution_table(float_weights, orl_root):
    # No disk cache: the gallery is shared across resolutions by the shared Embedder alone.
    report = bench_accuracy([float_weights], orl_root, use_cache=False, progress=False, n_boot=200)
    got = {r["resolution"]: r["rank1"] for r in report.rows}
    assert set(got) == set(ORL_RANK1)
    for res, want in ORL_RANK1.items():
        assert got[res] == pytest.approx(want, abs=0.03), f"rank-1 at {res}: {got[res]:.3f}, expected {want}"
    # 64 per batch: gallery 120 -> 2, own-HR images 280 -> 5, each of 4 LR probe sets -> 5; HR probes
    # are the own-HR images again. Any gallery re-embedding would add batches.
    assert report.settings["model_forward_batches"] == {"edgeface_xxs_fp32_dequantized": 2 + 5 + 4 * 5}
    row16 = report.rows_where(resolution=16)[0]
    assert row16["accuracy_at_threshold"] == pytest.approx(0.46, abs=0.03)
    assert 0 < row16["far_at_threshold"] < 0.01 and 0 < row16["eer"] < 0.5
    assert row16["genuine_mean"] > row16["impostor_mean"]
    assert row16["n_impostor"] == 280 * 39
    # 10,920 impostor pairs support FAR 1e-3 (>= 10 expected false accepts), not 1e-4.
    assert row16["tar_at_far"]["0.001"] is not None and row16["tar_at_far"]["0.0001"] is None
    assert "0.0001" in row16["tar_unsupported"]
    assert report.rows[0]["rank1_low"] <= report.rows[0]["rank1"] <= report.rows[0]["rank1_high"]


def test_blurring_dsr_is_significantly_worse_than_bicubic(float_weights, orl_root, heavy_blur_dsr, cache):
    report = bench_accuracy([float_weights], orl_root, resolutions="16", dsr=str(heavy_blur_dsr),
                            cache_dir=cache, progress=False, n_boot=500)
    assert [r["path"] for r in report.rows] == ["bicubic", "dsr"]
    assert report.rows[1]["upsampling"] == "blur_dsr.torchscript"
    (cmp,) = report.comparisons
    assert cmp["rank1_bicubic"] == pytest.approx(0.79, abs=0.03)
    assert cmp["n_probes"] == 280
    assert cmp["delta"] == pytest.approx(cmp["rank1_dsr"] - cmp["rank1_bicubic"])
    assert cmp["delta"] < -0.1 and cmp["ci_high"] < 0
    assert cmp["mcnemar"]["p_value"] < 0.01 and cmp["mcnemar"]["b10"] > cmp["mcnemar"]["b01"]
    assert cmp["significant"] and cmp["verdict"] == "DSR hurts"


def test_cli_bench_accuracy_writes_reports(float_weights, orl_root, heavy_blur_dsr, cache, tmp_path):
    # Same probes and cache as the test above: served from the cache when it ran first.
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "bench", "accuracy", "-w", str(float_weights), "--label", "xxs", "--data", str(orl_root),
        "--resolutions", "16,hr", "--dsr", str(heavy_blur_dsr), "--cache-dir", str(cache), "-q",
        "--n-boot", "200", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "bench-accuracy"
    assert [(r["resolution"], r["path"]) for r in data["rows"]] == [(16, "bicubic"), (16, "dsr"), ("hr", "hr")]
    assert data["comparisons"][0]["verdict"] == "DSR hurts"
    html = (out / "bench-accuracy.html").read_text()
    assert "data:image/png;base64," in html and "DSR hurts" in html
    assert "| 16 px | xxs | bicubic |" in (out / "bench-accuracy.md").read_text()


def test_synthetic_data_without_assets(tmp_path):
    """Runs in CI without the assets: random xxs on a tiny folder dataset, two checkpoints."""
    from facediag.models import build_edgeface, load_checkpoint, save_state_dict

    torch.manual_seed(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"m{i}.pt"
        save_state_dict(build_edgeface("edgeface_xxs"), p)
        paths.append(p)
    data = write_folders_dataset(tmp_path / "faces", subjects=4, images=5)
    report = bench_accuracy([load_checkpoint(p) for p in paths], data, resolutions="16,24,hr",
                            labels=["a", "b"], use_cache=False, progress=False, n_boot=100)
    assert [(r["resolution"], r["checkpoint"]) for r in report.rows] == [
        (16, "a"), (16, "b"), (24, "a"), (24, "b"), ("hr", "a"), ("hr", "b")]
    # Per model: gallery 12 images + own-HR 8 + two LR sets of 8, one batch each; HR probes from the memo.
    assert report.settings["model_forward_batches"] == {"a": 4, "b": 4}
    assert all(r["n_probes"] == 8 for r in report.rows)
    with pytest.raises(FacediagError):
        bench_accuracy(paths, data, labels=["same", "same"])
    with pytest.raises(FacediagError):
        bench_accuracy(paths, data, vlr_size=16)
