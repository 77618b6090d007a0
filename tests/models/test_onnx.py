"""ONNX models and verified exports: the float xxs exported and checked against the checkpoint on
ORL, a planted broken export refused, inspect of a graph, malformed files, a non-EdgeFace graph."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

import facediag.export as export_mod  # noqa: E402
from facediag.checks.base import Status  # noqa: E402
from facediag.models.checkpoint import load_checkpoint, sha256_file  # noqa: E402
from facediag.runner import run_all  # noqa: E402

from cli_helpers import invoke, one_line_exit_2

CHECKS = ["weights-integrity", "arcface-head", "norm-sanity", "identification", "verification"]


@pytest.fixture(scope="module")
def orl_subset(orl_root, tmp_path_factory):
    """ORL s1-s10, all ten images each: enough for rank-1 to have something to decide."""
    from helpers import copy_orl_subset

    return copy_orl_subset(orl_root, tmp_path_factory.mktemp("orl10"))


@pytest.fixture(scope="module")
def exported(float_weights, orl_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "xxs.onnx"
    result = export_mod.export(float_weights, out, "onnx", data=orl_subset)
    return out, result


def test_float_export_matches_the_checkpoint_on_orl(exported):
    out, result = exported
    p = result.parity
    assert result.kept and out.is_file()
    assert p.images == 50 and p.cosine_min >= 0.99999 and p.rank1_changed == 0
    assert p.max_abs_diff < 1e-3


def _perturb_first_weight(real_export):
    """The real exporter, then one conv weight of the graph nudged by 1 % of its scale."""

    def planted(model, tmp, example, int8):
        real_export(model, tmp, example, int8)
        graph = onnx.load(str(tmp))
        init = next(t for t in graph.graph.initializer if t.name == "model.stem.0.weight")
        w = numpy_helper.to_array(init).copy()
        w += 0.05 * np.abs(w).mean() * np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype)
        init.CopyFrom(numpy_helper.from_array(w, init.name))
        onnx.save(graph, str(tmp))

    return planted


def test_planted_broken_export_is_refused_and_not_written(float_weights, orl_subset, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "_export_onnx", _perturb_first_weight(export_mod._export_onnx))
    out = tmp_path / "broken.onnx"
    res = invoke("export", float_weights, "--out", out, "--data", orl_subset, "--json", "-q")
    assert res.exit_code == 1, res.output
    figures = json.loads(res.stdout)
    assert not figures["kept"] and figures["parity"]["cosine_min"] < 0.99999
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no temporary file left either


def test_inspect_reads_the_graph(exported, float_weights):
    out, _ = exported
    res = invoke("inspect", out, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["variant"] == "edgeface_xxs" and info["format"] == "onnx" and info["opset"] == 17
    assert info["inputs"] == [{"name": "input", "shape": ["batch", 3, 112, 112], "dtype": "float32"}]
    assert info["outputs"] == [{"name": "embedding", "shape": ["batch", 512], "dtype": "float32"}]
    assert info["parameters"] == load_checkpoint(float_weights).parameters
    assert info["sha256"] == sha256_file(out)


@pytest.mark.parametrize("content", [b"hello", b"\x08\x08\x12\x07pytorch", "truncated"])
def test_malformed_onnx_is_one_line_exit_2(exported, tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(exported[0].read_bytes()[:4000] if content == "truncated" else content)
    one_line_exit_2(invoke("inspect", path), "bad.onnx", "ONNX")


def _metrics(report):
    return {(r.name, k): v for r in report.results for k, v in r.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def test_onnx_runs_through_the_checks_like_the_checkpoint(exported, float_weights, orl_subset, tmp_path):
    common = dict(suite="ci", checks=CHECKS, use_cache=False, progress=False, device="cpu")
    ref = run_all(float_weights, orl_subset, **common)
    got = run_all(exported[0], orl_subset, **common)
    statuses = {r.name: r.status for r in got.results}
    # No state_dict in a graph: weights-integrity judges it by separation alone, as the checkpoint's.
    integrity = got.result("weights-integrity")
    assert integrity.metrics["init_fraction"] is None and "ONNX" in integrity.summary
    assert integrity.metrics["dprime"] == pytest.approx(ref.metric("weights-integrity", "dprime"), abs=1e-3)
    assert statuses["arcface-head"] == Status.SKIP
    for name in ("weights-integrity", "norm-sanity", "identification", "verification"):
        assert statuses[name] == ref.result(name).status
    a, b = _metrics(ref), _metrics(got)
    compared = [k for k in a if k[0] in ("identification", "verification", "norm-sanity") and k in b]
    assert len(compared) > 10
    for key in compared:
        if a[key] is None or (isinstance(a[key], float) and math.isnan(a[key])):
            continue
        assert b[key] == pytest.approx(a[key], abs=1e-4), key


class _Tiny(torch.nn.Module):
    """Not an EdgeFace: a conv, a pool and a 512-d linear layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 7, stride=4)
        self.fc = torch.nn.Linear(16 * 3 * 3, 512)

    def forward(self, x):
        return self.fc(torch.nn.functional.avg_pool2d(torch.relu(self.conv(x)), 9).flatten(1))  # 27 px -> 3


def test_a_non_edgeface_graph_runs_with_edgeface_only_checks_skipped(orl_subset, tmp_path):
    path = tmp_path / "tiny.onnx"
    export_mod._export_onnx(_Tiny().eval(), path, torch.zeros(2, 3, 112, 112), int8=False)
    assert load_checkpoint(path, runtime=False).variant == "custom"
    report = run_all(path, orl_subset, suite="ci", checks=CHECKS, use_cache=False, progress=False, device="cpu")
    statuses = {r.name: r.status for r in report.results}
    assert statuses["arcface-head"] == Status.SKIP
    assert report.metric("weights-integrity", "matched_fraction") is None  # the EdgeFace part does not apply
    assert report.metric("weights-integrity", "dprime") is not None  # separation does
    assert Status.ERROR not in statuses.values()
    assert report.metric("identification", "rank1") is not None


def test_bench_speed_runs_the_graph_with_onnxruntime_beside_torch(exported, float_weights):
    """bench speed times the export with onnxruntime at torch's thread count, counts FLOPs on
    the float twin, and puts each timing beside the torch row of the same network."""
    from facediag.bench import bench_speed
    from facediag.bench.speed import _prepare
    from facediag.models import load_checkpoint

    out, _ = exported
    report = bench_speed([float_weights, out], device="cpu", batch_sizes=[1, 4], threads=1, warmup=1, iters=3,
                         min_seconds=0.05)
    torch_row, onnx_row = report.rows
    assert torch_row["runtime"] == "torch" and onnx_row["runtime"] == "onnxruntime"
    assert onnx_row["providers"][0] == "CPUExecutionProvider" and onnx_row["threads"] == 1
    assert onnx_row["flops"] == torch_row["flops"] and onnx_row["parameters"] == pytest.approx(
        torch_row["parameters"], rel=1e-3)
    notes = []  # torch's dtype and layout settings do not reach the graph, and the row says so
    loaded = load_checkpoint(out)
    assert _prepare(loaded.model, loaded.variant, torch.device("cpu"), "bf16", False, True, notes, loaded)[2] == "fp32"
    assert any("does not apply" in n for n in notes) and any("--channels-last" in n for n in notes)
    vs = onnx_row["vs_torch"]
    assert vs["reference"] == torch_row["checkpoint"] and vs["batch_size"] == 4
    assert vs["latency_b1"] == pytest.approx(onnx_row["latency_ms"]["median"] / torch_row["latency_ms"]["median"])
    assert "vs_torch" not in torch_row


def test_the_terminal_says_written_or_not_faithful_never_both(exported):
    import dataclasses

    from facediag.cli.export import _print
    from facediag.cli.options import console

    out, result = exported
    for res, says, never in ((result, "written to", "NOT FAITHFUL"),
                             (dataclasses.replace(result, kept=False), "NOT FAITHFUL", "written to")):
        with console.capture() as captured:
            _print(res)
        text = " ".join(captured.get().split())
        assert says in text and never not in text, text
        assert "model card written" not in text  # no card: none is said to be written
