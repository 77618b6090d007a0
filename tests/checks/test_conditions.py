"""The condition layer: status follows from a check's conditions, and the diagnosis reads the
same outcomes, so editing a suite's threshold moves the check and its diagnosis together."""
from pathlib import Path

import pytest

from facediag.checks.base import Check, Clause, Condition, Severity, Status
from facediag.diagnosis import diagnose
from facediag.suites import SUITES_DIR, load_suite


class _Demo(Check):
    name = "demo-check"
    params = {"limit": 0.5, "floor": 0.1}
    conditions = (
        Condition("too-high", Severity.FAILURE, "x is {x:.2f} > {limit}", [("x", ">", "limit")]),
        Condition("high", Severity.WARNING, "x is high", [("x", ">", 0.3)], unless=("too-high",)),
        Condition("both", Severity.WARNING, "x {x} and y {y} above", [("x", ">", "floor"), ("y", ">", "floor")]),
        Condition("note-only", Severity.WARNING, None, [("x", ">", 0.0)]),
        Condition("relative", Severity.INFO, "y beats x by more than the floor", [("y", ">", "floor", "x")]),
    )


def _conclude(metrics, **params):
    return _Demo().conclude(metrics, {**_Demo.params, **params}, summary="all good")


def test_status_and_summary_follow_from_met_conditions():
    res = _conclude({"x": 0.6, "y": 0.0})
    assert res.status == Status.FAIL and res.summary == "x is 0.60 > 0.5"
    assert [c.id for c in res.conditions if c.met] == ["too-high", "note-only"]
    assert not res.met("high")  # a graver condition explains it
    assert [f.message for f in res.findings] == ["x is 0.60 > 0.5"]  # note-only records, says nothing

    ok = _conclude({"x": 0.05, "y": 0.0})
    assert ok.status == Status.PASS and ok.summary == "all good" and ok.findings == []


def test_the_threshold_comes_from_the_params_given():
    assert _conclude({"x": 0.6, "y": 0.0}, limit=0.9).status == Status.WARN  # only "high" now
    assert _conclude({"x": 0.2, "y": 0.2}).met("both")
    assert not _conclude({"x": 0.2, "y": 0.2}, floor=0.25).met("both")


def test_unmeasured_metric_is_neither_met_nor_failed():
    res = _conclude({"x": None, "y": 0.9})
    outcome = next(c for c in res.conditions if c.id == "too-high")
    assert outcome.met is None and res.status == Status.PASS


def test_relative_clause_and_info_severity():
    res = _conclude({"x": 0.0, "y": 0.5})
    assert res.met("relative") and res.status == Status.PASS  # info never changes the status
    assert any(f.severity == Severity.INFO for f in res.findings)


def test_conditions_survive_the_report_round_trip():
    from facediag.checks.base import CheckResult

    res = _conclude({"x": 0.6, "y": 0.0})
    back = CheckResult.from_dict(res.as_dict())
    assert back.met("too-high") and not back.met("high") and back.conditions[0].limits == {"x": 0.5}


def test_a_clause_rejects_an_unknown_comparison():
    with pytest.raises(ValueError):
        Clause("x", "~", 1)


def test_register_refuses_a_condition_reading_an_undeclared_parameter():
    from facediag.checks.registry import register

    class Bad(Check):
        name = "bad-check"
        params = {"a": 1}
        conditions = (Condition("c", Severity.WARNING, "m", [("x", ">", "b")]),)

    with pytest.raises(ValueError, match="does not declare"):
        register(Bad)


def test_builtin_suites_are_package_data_and_match_the_user_copies():
    """`--suite ci` works from a non-editable install; checks/ holds the same files for users to copy."""
    top = Path(__file__).resolve().parents[2] / "checks"
    for name in ("default", "ci", "monitor"):
        assert (SUITES_DIR / f"{name}.toml").read_text() == (top / f"{name}.toml").read_text()
        assert load_suite(name).path == str(SUITES_DIR / f"{name}.toml")


def test_editing_a_suite_threshold_changes_the_check_and_its_diagnosis(float_weights, orl_root, tmp_path):
    """The healthy pretrained model on ORL: with default thresholds weights-integrity passes and
    nothing is diagnosed; a suite that demands d′ ≥ 50 makes the check warn AND the diagnosis
    layer name untrained weights, from the one threshold in the suite."""
    import facediag

    base = (SUITES_DIR / "default.toml").read_text()
    strict = tmp_path / "strict.toml"
    strict.write_text(base.replace("min_dprime = 1.0", "min_dprime = 50.0"))
    assert strict.read_text() != base
    kwargs = dict(checks=["weights-integrity", "norm-sanity"], vlr_size=16, progress=False,
                  cache_dir=tmp_path / "cache")
    healthy = facediag.run_all(float_weights, orl_root, **kwargs)
    edited = facediag.run_all(float_weights, orl_root, suite=strict, **kwargs)
    assert healthy.result("weights-integrity").status == Status.PASS
    assert "untrained-weights" not in [d.id for d in healthy.diagnoses]
    assert edited.result("weights-integrity").status == Status.WARN
    assert edited.result("weights-integrity").met("no-separation")
    assert "untrained-weights" in [d.id for d in diagnose(edited.results)]


def test_any_match_needs_one_clause():
    class Either(Check):
        name = "either-check"
        params = {}
        conditions = (Condition("either", Severity.FAILURE, "a {a} or b {b}", [("a", ">", 0), ("b", ">", 0)],
                                match="any"),)

    def met(**m):
        return Either().conclude(m, {}, summary="ok").met("either")

    assert met(a=1, b=0) and met(a=0, b=2) and not met(a=0, b=0)
    assert met(a=1, b=None) and not met(a=None, b=None)
    with pytest.raises(ValueError):
        Condition("x", Severity.WARNING, "m", [("a", ">", 0)], match="some")
