"""The regression gate: tolerances, noise, baselines from other data, JSON round trip, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from facediag.cli import cli
from facediag.errors import FacediagError
from facediag.gate import DEFAULT_MAX_DROP, check_same_data, judge, parse_max_drop, tolerances
from facediag.models.checkpoint import sha256_file
from facediag.results import Report, load_report
from facediag.session import Session, SessionConfig
from facediag.suites import Suite, load_suite

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------- no assets
def test_max_drop_takes_short_and_full_names():
    assert parse_max_drop(["rank1=0.01", "eer=0.02", "tar_at_far_0.01=0.05", "norm-sanity.dead_fraction=0"]) == {
        "identification.rank1": 0.01, "verification.eer": 0.02, "verification.tar_at_far_0.01": 0.05,
        "norm-sanity.dead_fraction": 0.0}


@pytest.mark.parametrize("item", ["rank1", "rank1=x", "rank1=-0.1", "=0.1", "no_such_metric=0.1", "rank1=nan"])
def test_bad_max_drop_is_bad_input(item):
    with pytest.raises(FacediagError):
        parse_max_drop([item])


def test_tolerances_come_from_the_suite_then_the_command_line():
    ci = load_suite("ci")
    assert tolerances(ci)["identification.rank1"] == 0.02 and "verification.eer" in tolerances(ci)
    assert tolerances(ci, ["rank1=0.005"])["identification.rank1"] == 0.005
    assert tolerances(load_suite("default")) == DEFAULT_MAX_DROP  # nothing named: rank-1 is gated
    with pytest.raises(FacediagError):
        tolerances(Suite("x", {}, gate={"max_drop": {"rank1": "a lot"}}))


def test_a_metric_fails_only_beyond_tolerance_and_noise():
    assert not judge("identification.rank1", 0.80, 0.79, 0.02, beyond_noise=True).failed  # within tolerance
    assert not judge("identification.rank1", 0.80, 0.70, 0.02, beyond_noise=False).failed  # noise
    assert judge("identification.rank1", 0.80, 0.70, 0.02, beyond_noise=True).failed
    assert not judge("identification.rank1", 0.70, 0.80, 0.0, beyond_noise=True).failed  # better
    assert judge("verification.eer", 0.07, 0.15, 0.02, beyond_noise=True).failed  # a rise is worse for EER
    assert not judge("verification.eer", 0.15, 0.07, 0.0, beyond_noise=True).failed
    untested = judge("norm-sanity.effective_rank", 130, 5, 1, beyond_noise=None)
    assert untested.failed and "tolerance only" in untested.line
    assert judge("identification.rank1", 0.8, None, 0.02, beyond_noise=None).failed  # never a silent pass
    with pytest.raises(FacediagError):
        judge("pair-gap.genuine_mean", 0.3, 0.2, 0.0, beyond_noise=True)  # no known direction


def test_a_baseline_from_other_data_is_refused_unless_forced():
    base = Report("x", {}, {"fingerprint": "a" * 64, "dsr": "bicubic"}, {}, [])
    assert check_same_data(base, {"fingerprint": "a" * 64, "dsr": "bicubic"}) is None
    with pytest.raises(FacediagError, match="different data.*--force-baseline"):
        check_same_data(base, {"fingerprint": "b" * 64, "dsr": "bicubic"})
    with pytest.raises(FacediagError, match="dsr"):
        check_same_data(base, {"fingerprint": "a" * 64, "dsr": "my_dsr.pt"})
    assert check_same_data(base, {"fingerprint": "b" * 64, "dsr": "bicubic"}, force=True).startswith("forced")


# ------------------------------------------------------------------------ real assets
def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def said(result) -> str:
    """The command's output with the terminal's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def common(orl_root, cache):
    return ["--data", orl_root, "--cache-dir", cache, "-q"]


@pytest.fixture(scope="module")
def baseline(float_weights, common, tmp_path_factory):
    """The pretrained model's report on ORL, saved as a baseline by the real command."""
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    res = invoke("run-all", "-w", float_weights, *common, "--suite", "ci", "--save-baseline", path)
    assert res.exit_code == 0, res.output
    return path


def test_a_baseline_survives_a_json_round_trip(baseline):
    text = baseline.read_text()
    report = load_report(baseline)
    assert report.to_json() == text
    assert Report.from_dict(json.loads(report.to_json())).as_dict() == report.as_dict()
    ident = report.result("identification").data
    assert len(ident["correct_rank1"]) == len(ident["probe_rows"]) == 280  # what the paired interval needs


def test_the_gate_passes_on_the_pretrained_model(float_weights, common, baseline, tmp_path):
    res = invoke("run-all", "-w", float_weights, *common, "--suite", "ci", "--baseline-report", baseline,
                 "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "Gate: PASSED" in said(res)
    gate = json.loads((tmp_path / "report.json").read_text())["gate"]
    assert gate["passed"] and gate["failed"] == [] and len(gate["lines"]) == 1 + 5  # the baseline, 5 metrics


def test_the_gate_fails_on_the_paired_only_finetune(paired_only_weights, common, baseline, tmp_path):
    res = invoke("run-all", "-w", paired_only_weights, *common, "--suite", "ci", "--baseline-report", baseline,
                 "--out", tmp_path)
    assert res.exit_code == 1
    gate = json.loads((tmp_path / "report.json").read_text())["gate"]
    assert not gate["passed"]
    assert {"identification.far_at_threshold", "verification.eer", "pair-gap.impostor_mean"} <= set(gate["failed"])
    assert "Gate: FAILED" in (tmp_path / "report.md").read_text()


def test_the_gate_alone_sets_the_exit_code(paired_only_weights, common, baseline):
    # verification passes on the fine-tune (EER 15 % < 20 %): only the gate can fail this run
    args = ("run", "verification", "-w", paired_only_weights, *common, "--baseline-report", baseline)
    assert invoke(*args, "--max-drop", "eer=0.02").exit_code == 1
    assert invoke(*args, "--max-drop", "eer=0.2").exit_code == 0  # within a generous tolerance


def _edited(baseline: Path, dest: Path, flip: int = 0, fingerprint: str | None = None) -> Path:
    """The baseline with ``flip`` of its wrong rank-1 probes marked right (rank-1 raised to match)."""
    doc = json.loads(baseline.read_text())
    ident = next(r for r in doc["results"] if r["name"] == "identification")
    wrong = [i for i, c in enumerate(ident["data"]["correct_rank1"]) if not c]
    for i in wrong[:flip]:
        ident["data"]["correct_rank1"][i] = 1
    ident["metrics"]["rank1"] = sum(ident["data"]["correct_rank1"]) / len(ident["data"]["correct_rank1"])
    if fingerprint:
        doc["dataset"]["fingerprint"] = fingerprint
    dest.write_text(json.dumps(doc))
    return dest


def test_the_gate_does_not_flap_on_noise(float_weights, common, baseline, tmp_path):
    args = ("run", "identification", "-w", float_weights, *common, "--max-drop", "rank1=0")
    noise = invoke(*args, "--baseline-report", _edited(baseline, tmp_path / "b2.json", flip=2))
    assert noise.exit_code == 0, noise.output  # 2 probes of 280: a fall, but within noise
    assert "within noise" in said(noise)
    real = invoke(*args, "--baseline-report", _edited(baseline, tmp_path / "b30.json", flip=30))
    assert real.exit_code == 1 and "beyond noise" in said(real)


def test_a_baseline_from_other_data_is_one_line_exit_2(float_weights, common, baseline, tmp_path):
    other = _edited(baseline, tmp_path / "other.json", fingerprint="0" * 64)
    args = ("run", "identification", "-w", float_weights, *common, "--baseline-report", other)
    res = invoke(*args)
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "different data" in lines[0] and "--force-baseline" in lines[0]
    forced = invoke(*args, "--force-baseline")
    assert forced.exit_code == 0 and "forced:" in said(forced)


def test_gate_options_without_a_baseline_are_usage_errors(float_weights, common):
    res = invoke("run", "identification", "-w", float_weights, *common, "--max-drop", "rank1=0.01")
    assert res.exit_code == 2 and "--baseline-report" in res.stderr


def test_the_committed_baseline_is_the_pretrained_model_on_orl(float_weights, orl_root):
    """.ci/run gates against reports/baseline.json: it must describe these assets."""
    report = load_report(ROOT / "reports" / "baseline.json")
    assert report.checkpoints["model"]["sha256"] == sha256_file(float_weights)
    session = Session(SessionConfig(data=orl_root, vlr_size=16, progress=False))
    assert report.dataset["fingerprint"] == session.protocol.fingerprint()
    assert report.suite["name"] == "ci" and report.status.value == "PASS" and report.gate is None
