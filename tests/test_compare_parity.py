"""Parity in compare: one network in two formats, image by image, and the gate's parity condition."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from facediag.cli import cli
from facediag.compare import compare, compare_session, exit_code, same_network
from facediag.errors import FacediagError
from facediag.gate import ParityBounds, judge_parity, parity_bounds
from facediag.metrics.parity import DISTANCE_EDGES, deployment_parity
from facediag.metrics.verdict import NO_CHANGE
from facediag.protocols.gallery import build_evaluation
from facediag.render import render
from facediag.results import CompareReport
from facediag.suites import Suite, load_suite
from helpers import loaded_model, session_over, pooled


# ------------------------------------------------------------------- known answers
def _rotated(a: np.ndarray, angles: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Each row of ``a`` turned by its angle (radians) in a plane through it: cos(a_i, b_i) = cos(angle_i)."""
    rng = np.random.default_rng(1)
    u = rng.standard_normal(a.shape)
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    u -= np.sum(u * unit, axis=1, keepdims=True) * unit  # orthogonal to a_i
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return scale * norm * (np.cos(angles)[:, None] * unit + np.sin(angles)[:, None] * u)


def test_rotated_embeddings_give_the_known_cosines():
    a = np.random.default_rng(0).standard_normal((100, 16))
    angles = np.linspace(0.0, 0.1, 100)  # cos from 1 down to cos(0.1)
    b = _rotated(a, angles, scale=3.0)   # raw magnitude is not parity's business: cosine ignores it
    p = deployment_parity({"gallery": (a[:40], b[:40]), "probe_dsr": (a[40:], b[40:])},
                          ["s1", "s2", "s3", "s4"], ["s1", "s9", "s3", "s8"])
    cos = np.cos(angles)
    assert p["images"] == 100 and p["views"]["gallery"]["images"] == 40
    assert p["cosine"]["min"] == pytest.approx(np.cos(0.1), abs=1e-12)
    assert p["views"]["gallery"]["cosine_min"] == pytest.approx(cos[39], abs=1e-12)
    assert p["cosine"]["median"] == pytest.approx(np.median(cos), abs=1e-12)
    assert p["cosine"]["p5"] == pytest.approx(np.quantile(cos, 0.05), abs=1e-12)
    assert p["cosine"]["mean"] == pytest.approx(cos.mean(), abs=1e-12)
    assert p["quantiles"][0] == [0.0, pytest.approx(np.cos(0.1), abs=1e-12)]
    expected_hist, _ = np.histogram(1 - cos, bins=DISTANCE_EDGES)
    assert p["distance_histogram"]["counts"] == expected_hist.tolist() and sum(expected_hist) == 100
    assert p["rank1_changed"] == 2 and p["probes"] == 4 and p["rank1_changed_share"] == 0.5


def test_identical_embeddings_are_cosine_1_and_nothing_changed():
    a = np.random.default_rng(2).standard_normal((30, 8))
    p = deployment_parity({"gallery": (a, a.copy())}, ["x", "y"], ["x", "y"])
    assert p["cosine"]["min"] == pytest.approx(1.0, abs=1e-12) and p["max_abs_diff"] == 0.0
    assert p["rank1_changed"] == 0 and p["distance_histogram"]["counts"][0] == 30


def test_max_abs_diff_and_unreadable_rows():
    a = np.random.default_rng(3).standard_normal((10, 4))
    b = a.copy()
    b[3, 2] += 0.25
    b[5] = np.nan  # an image B could not embed: left out, not a NaN cosine
    p = deployment_parity({"gallery": (a, b)}, [], [])
    assert p["images"] == 9 and p["max_abs_diff"] == pytest.approx(0.25)
    assert np.isfinite(p["cosine"]["min"]) and p["cosine"]["min"] < 1.0


def test_rank1_subjects_name_each_probes_best_template():
    e = np.eye(3)
    gallery, g_subj = e, ["a", "b", "c"]
    probes = np.array([[1, 0.1, 0], [0.2, 1, 0], [0.1, 0, 1], [0, 1, 0.3]])
    ev = build_evaluation(gallery, g_subj, probes, ["a", "b", "a", "z"])  # "z" is not enrolled
    assert ev.rank1_subjects().tolist() == ["a", "b", "c", "b"]
    assert ev.rank1_correct().tolist() == [True, True, False]


# ------------------------------------------------------------------------ gate
def _suite(gate: dict) -> Suite:
    base = load_suite("default")
    return Suite(base.name, base.checks, base.fail_on, gate, "suite.toml")


def test_parity_bounds_from_suite_and_command_line():
    assert parity_bounds(_suite({})) is None  # nobody asked: no parity condition
    assert parity_bounds(_suite({}), min_cosine=0.999) == ParityBounds(0.999, 0)
    assert parity_bounds(_suite({"parity": {}})) == ParityBounds(0.9999, 0)
    suite = _suite({"parity": {"min_cosine": 0.99, "max_rank1_changed": 3}})
    assert parity_bounds(suite) == ParityBounds(0.99, 3)
    assert parity_bounds(suite, max_rank1_changed=0) == ParityBounds(0.99, 0)  # the command line wins


def test_gate_parity_is_read_from_a_suite_file(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text('[suite]\nname = "deploy"\n[checks.identification]\n[gate.parity]\nmin_cosine = 0.999\n')
    assert parity_bounds(load_suite(path)) == ParityBounds(0.999, 0)


@pytest.mark.parametrize("gate, kw, needle", [
    ({}, {"min_cosine": 1.5}, "(0, 1]"),
    ({}, {"min_cosine": 0.0}, "(0, 1]"),
    ({}, {"max_rank1_changed": -1}, "integer >= 0"),
    ({"parity": {"max_rank1_changed": 0.5}}, {}, "integer >= 0"),
    ({"parity": {"min_cos": 0.9}}, {}, "no 'min_cos'"),
    ({"parity": 0.9999}, {}, "must be a table"),
])
def test_bad_parity_bounds_are_bad_input(gate, kw, needle):
    with pytest.raises(FacediagError) as exc:
        parity_bounds(_suite(gate), **kw)
    assert needle in str(exc.value)


def test_judge_parity_says_the_figures():
    bounds = ParityBounds(0.9999, 0)
    good = {"cosine": {"min": 0.99999}, "rank1_changed": 0, "probes": 280}
    ok = judge_parity(good, bounds)
    assert not ok.failed and "0.9999900" in ok.line and "0 of 280" in ok.line
    low = judge_parity({**good, "cosine": {"min": 0.95}}, bounds)
    assert low.failed and "0.9500000" in low.line
    assert judge_parity({**good, "rank1_changed": 1}, bounds).failed
    assert not judge_parity({**good, "rank1_changed": 1}, ParityBounds(0.9999, 1)).failed
    assert judge_parity(None, bounds).failed  # a gate that cannot measure does not pass


# -------------------------------------------------------------- same network?
@pytest.mark.parametrize("a, b, same", [
    (("edgeface_xxs", "state_dict"), ("edgeface_xxs", "onnx"), True),
    (("edgeface_xxs", "state_dict"), ("edgeface_xxs_q", "state_dict"), True),   # int8 vs float
    (("edgeface_xxs", "state_dict"), ("edgeface_xxs", "torchscript"), True),
    (("edgeface_xxs", "state_dict"), ("edgeface_xxs", "state_dict"), False),    # two checkpoints: a fine-tune
    (("edgeface_xxs", "state_dict"), ("edgeface_base", "onnx"), False),
    (("custom", "onnx"), ("custom", "torchscript"), False),                     # nothing says they are one
])
def test_same_network_in_two_formats(a, b, same):
    models = [loaded_model(nn.Identity(), variant=v, format=f) for v, f in (a, b)]
    assert (same_network(*models) is not None) == same


def test_an_int8_onnx_graph_is_another_form_of_its_float_variant():
    fp32 = loaded_model(nn.Identity(), variant="edgeface_xxs", format="onnx", int8=False)
    int8 = loaded_model(nn.Identity(), variant="edgeface_xxs", format="onnx", int8=True)
    assert "int8" in same_network(fp32, int8)


# ----------------------------------------------------- compare (synthetic faces)
def _skewed(pool: int, strength: float):
    """The pixel embedder followed by a fixed mixing of its outputs: 'the same network, exported badly'."""
    from helpers import loaded_model as lm

    d = 3 * pool * pool
    mix = nn.Linear(d, d, bias=False)
    with torch.no_grad():
        mix.weight.copy_(torch.eye(d) + strength * torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    return lm(nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), mix), variant="pixels", path="skewed")


def test_two_models_get_no_parity_section_unless_asked(patterns):
    suite = load_suite("default")
    rep = compare_session(session_over(patterns, pooled(4), pooled(4)), suite, max_drop={}, n_boot=50)
    assert rep.parity is None and "Parity" not in render(rep, "md")


def test_parity_gate_fails_a_skewed_copy_and_passes_an_identical_one(patterns):
    suite = load_suite("default")
    bounds = parity_bounds(suite, min_cosine=0.9999)
    same = compare_session(session_over(patterns, pooled(4), pooled(4)), suite, max_drop={}, n_boot=50,
                           parity_gate=bounds)
    assert same.passed and same.parity["cosine"]["min"] == pytest.approx(1.0, abs=1e-9)
    bad = compare_session(session_over(patterns, pooled(4), _skewed(4, 0.3)), suite, max_drop={}, n_boot=50,
                          parity_gate=bounds)
    assert not bad.passed and exit_code(bad) == 1 and bad.gate["failed"] == ["parity"]
    assert bad.parity["cosine"]["min"] < 0.99
    line = next(x for x in bad.gate["lines"] if "parity" in x)
    assert line.startswith("FAIL parity") and f"{bad.parity['cosine']['min']:.7f}" in line


def test_parity_round_trips_and_renders_in_every_format(patterns):
    rep = compare_session(session_over(patterns, pooled(4), _skewed(4, 0.05)), load_suite("default"), max_drop={},
                          n_boot=50, parity=True)
    back = CompareReport.from_dict(json.loads(rep.to_json()))
    assert back.parity == rep.parity and back.parity["reason"].startswith("asked for")
    for fmt, marker in (("md", "## Parity"), ("html", 'id="parity"')):
        page = render(back, fmt)
        assert marker in page and f"{rep.parity['cosine']['min']:.6f}" in page
    old = json.loads(rep.to_json())
    del old["parity"]  # a report written before parity existed
    assert CompareReport.from_dict(old).parity is None


def test_no_parity_turns_off_the_automatic_section_and_refuses_a_parity_gate(patterns):
    s = session_over(patterns, pooled(4), pooled(4))
    with pytest.raises(FacediagError, match="--no-parity"):
        compare_session(s, load_suite("default"), max_drop={}, parity=False, parity_gate=ParityBounds(0.9999, 0))


@pytest.mark.parametrize("args, needle", [
    (["--parity-min-cosine", "1.5"], "(0, 1]"),
    (["--parity-max-rank1-changed", "-2"], "integer >= 0"),
    (["--no-parity", "--parity-min-cosine", "0.9999"], "--no-parity"),
])
def test_cli_bad_parity_options_are_one_line_exit_2_before_any_work(tmp_path, patterns, args, needle):
    # The checkpoints do not even exist: the options are refused first.
    res = CliRunner().invoke(cli, ["compare", str(tmp_path / "a.pt"), str(tmp_path / "b.onnx"), "--data", str(patterns),
                                   "-q", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr


# ---------------------------------------------- real assets: float xxs vs its ONNX export
@pytest.fixture(scope="module")
def onnx_export(float_weights, orl_root, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from facediag.export import export

    out = tmp_path_factory.mktemp("parity-export") / "edgeface_xxs.onnx"
    assert export(float_weights, out, "onnx", data=orl_root).kept
    return out


@pytest.fixture(scope="module")
def float_vs_onnx(float_weights, onnx_export, orl_root, cache):
    """All of ORL (40 subjects; 120 gallery, 280 probes at 16 px and their HR images)."""
    return compare(float_weights, onnx_export, orl_root, suite="ci", cache_dir=cache, progress=False,
                   parity_min_cosine=0.99999)


@pytest.mark.slow
def test_onnx_export_is_on_par_with_the_checkpoint_on_orl(float_vs_onnx):
    rep = float_vs_onnx
    p = rep.parity
    assert p["reason"] == "both edgeface_xxs: state_dict vs onnx"  # found without --parity
    assert p["images"] == 680 and set(p["views"]) == {"gallery", "probe_dsr", "probe_hr"}
    assert p["cosine"]["min"] >= 0.99999 and p["rank1_changed"] == 0 and p["probes"] == 280
    assert p["max_abs_diff"] < 1e-3
    assert rep.tested and all(r.verdict == NO_CHANGE for r in rep.tested)
    assert rep.passed and "parity" not in rep.gate["failed"]
    assert any(x.startswith("ok   parity") for x in rep.gate["lines"])


@pytest.fixture(scope="module")
def broken_weights(float_weights, tmp_path_factory):
    """The float state_dict with its stem convolution perturbed by 5 % noise: a broken 'export'."""
    state = torch.load(float_weights, map_location="cpu", weights_only=True)
    w = state["model.stem.0.weight"]
    noise = torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
    state["model.stem.0.weight"] = w + 0.05 * w.abs().mean() * noise
    out = tmp_path_factory.mktemp("broken") / "broken_xxs.pt"
    torch.save(state, out)
    return out


@pytest.mark.slow
def test_cli_parity_gate_fails_a_perturbed_model_and_passes_the_export(float_weights, broken_weights, onnx_export,
                                                                      orl_root, cache, tmp_path, float_vs_onnx):
    base = ["--data", str(orl_root), "--cache-dir", str(cache), "-q", "--suite", "ci", "--n-boot", "300"]
    bad = CliRunner().invoke(cli, ["compare", str(float_weights), str(broken_weights), *base, "--parity",
                                   "--parity-min-cosine", "0.9999", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1, bad.output
    said = " ".join(bad.output.split())
    assert "Gate: FAILED" in said and "FAIL parity: per-image cosine min 0.9" in said
    rep = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert rep["parity"]["cosine"]["min"] < 0.9999 and "parity" in rep["gate"]["failed"]
    good = CliRunner().invoke(cli, ["compare", str(float_weights), str(onnx_export), *base,
                                    "--parity-min-cosine", "0.99999", "--parity-max-rank1-changed", "0",
                                    "--out", str(tmp_path / "good")])
    assert good.exit_code == 0, good.output
    assert "Parity: one network in two formats" in good.output
    assert 'id="parity"' in (tmp_path / "good" / "report.html").read_text()
