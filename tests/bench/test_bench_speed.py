"""bench speed: the EdgeFace paper's parameters and FLOPs, timing fields, quantised on CPU, the CLI."""
import json

import pytest
import torch
from click.testing import CliRunner

from facediag.bench import PAPER, bench_speed
from facediag.bench.speed import QUANT_REASON, _prepare
from facediag.cli import cli
from facediag.errors import FacediagError
from facediag.models import build_edgeface


def test_paper_parameters_and_flops_for_every_float_variant():
    report = bench_speed(variants=list(PAPER), timing=False)
    assert [r["variant"] for r in report.rows] == list(PAPER)
    for row in report.rows:
        params_m, mflops = PAPER[row["variant"]]
        assert row["parameters"] / 1e6 == pytest.approx(params_m, rel=0.02), row["variant"]
        assert row["flops"] / 1e6 == pytest.approx(mflops, rel=0.02), row["variant"]
        assert abs(row["paper_deviation_pct"]) < 2
        assert "latency_ms" not in row


def test_timing_fields_on_cpu():
    report = bench_speed(variants=["xxs"], device="cpu", batch_sizes=[2, 1], threads=1,
                         warmup=1, iters=3, min_seconds=0.05)
    (row,) = report.rows
    assert row["device"] == "cpu" and row["dtype"] == "fp32" and row["threads"] == 1
    lat = row["latency_ms"]
    assert lat["n"] == 3 and 0 < lat["median"] <= lat["p95"]
    assert [t["batch_size"] for t in row["throughput"]] == [1, 2]
    for t in row["throughput"]:
        assert t["images_per_s"] > 0 and t["runs"] >= 3 and t["peak_memory_mb"] >= 0
    assert "resident set" in report.settings["memory_method"]
    assert torch.get_num_threads() >= 1  # restored after the run


def test_bf16_channels_last_leaves_the_callers_model_as_it_was(float_weights):
    from facediag.models import load_checkpoint

    loaded = load_checkpoint(float_weights)
    report = bench_speed([loaded], device="cpu", dtype="bf16", channels_last=True, batch_sizes=[1],
                         warmup=0, iters=1, min_seconds=0.01)
    (row,) = report.rows
    assert row["dtype"] == "bf16" and row["channels_last"] and row["throughput"][0]["images_per_s"] > 0
    weight = next(loaded.model.parameters())
    assert weight.dtype == torch.float32 and weight.device.type == "cpu"


def test_quantised_runs_on_cpu_with_the_reason():
    model = build_edgeface("edgeface_xxs_q")
    notes = []
    _, device, dtype = _prepare(model, "edgeface_xxs_q", torch.device("cuda"), "bf16", False, False, notes)
    assert device.type == "cpu" and dtype == "fp32"
    assert any(QUANT_REASON in n for n in notes)


def test_quantised_checkpoint(quant_weights):
    report = bench_speed([quant_weights], timing=False)
    (row,) = report.rows
    assert row["variant"] == "edgeface_xxs_q" and row["device"] == "cpu"
    assert row["flops"] / 1e6 == pytest.approx(94.72, rel=0.02)  # counted on the float twin, said so
    assert any("float twin" in n for n in row["notes"])
    assert report.checkpoints["edgeface_xxs_q"]["sha256"]


def test_bad_input():
    with pytest.raises(FacediagError):
        bench_speed()
    with pytest.raises(FacediagError):
        bench_speed(variants=["xxs"], dtype="int4")
    with pytest.raises(FacediagError):
        bench_speed(variants=["nope"])


def test_cli_bench_speed(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["bench", "speed", "--variant", "xxs", "--no-timing", "--json",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "bench-speed" and data["rows"][0]["flops"] > 9e7
    assert {p.name for p in tmp_path.iterdir()} == {"bench-speed.json", "bench-speed.html", "bench-speed.md",
                                                     "bench-speed.junit.xml"}
    result = runner.invoke(cli, ["bench", "speed", "--variant", "xxs", "--device", "cpu", "--batch-sizes", "1",
                                 "--iters", "2", "--warmup", "1", "--min-seconds", "0.01", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "Speed" in result.stdout and "img/s @1" in result.stdout
    assert runner.invoke(cli, ["bench", "speed"]).exit_code == 2
    assert runner.invoke(cli, ["bench", "speed", "--variant", "xxs", "--batch-sizes", "0"]).exit_code == 2
