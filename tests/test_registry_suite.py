"""Registry, suites and diagnosis rules, on hand-made results (no models needed)."""
import pytest

from facediag.diagnosis import diagnose
from facediag.errors import FacediagError
from facediag.checks.base import Check, Status
from facediag.checks.registry import all_checks, get_check, register, run_check
from facediag.suites import load_suite

BUILTIN = ["weights-integrity", "gallery-enrollment", "subject-overlap", "norm-sanity", "preprocessing",
           "alignment", "arcface-head", "pretrained-baseline", "pair-gap", "dsr-vs-bicubic",
           "identification", "verification", "operating-point", "demographic"]


def test_builtin_checks_are_registered_in_report_order():
    assert list(all_checks())[:len(BUILTIN)] == BUILTIN


def test_default_suite_file_runs_every_builtin_check():
    suite = load_suite("default")
    assert list(suite.checks) == BUILTIN
    assert suite.params("identification")["threshold"] == 0.35


def test_names_must_be_kebab_case_and_unique():
    with pytest.raises(ValueError, match="kebab"):
        register(type("Bad", (Check,), {"name": "Bad_Name"}))
    with pytest.raises(ValueError, match="two checks"):
        register(type("Dup", (Check,), {"name": "pair-gap"}))


def test_suite_refuses_typos(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[checks.pair-gapp]\n")
    with pytest.raises(FacediagError, match="unknown check 'pair-gapp'"):
        load_suite(bad)
    bad.write_text("[checks.pair-gap]\nmax_gapp = 0.1\n")
    with pytest.raises(FacediagError, match="no parameter"):
        load_suite(bad)
    bad.write_text("[checks.pair-gap\n")
    with pytest.raises(FacediagError, match="not valid TOML"):
        load_suite(bad)


def test_suite_order_overrides_and_disabling(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("[suite]\nname='mine'\nfail_on='warn'\n[checks.identification]\nthreshold = 0.5\n"
                 "[checks.pair-gap]\n[checks.verification]\nenabled = false\n")
    suite = load_suite(f)
    assert list(suite.checks) == ["identification", "pair-gap"]
    assert suite.params("identification")["threshold"] == 0.5 and suite.fail_on == "warn"


class _Ctx:
    def available(self, req):
        return None if req == "here" else f"no {req}"


def test_missing_requirement_is_skip_with_reason_and_errors_are_contained():
    class Needs(Check):
        name, requires = "needs-baseline", ("baseline",)

        def run(self, ctx, params):
            raise AssertionError("must not run")

    class Raises(Check):
        name = "raises"

        def run(self, ctx, params):
            raise KeyError("boom")

    skipped = run_check(Needs(), _Ctx(), {}, _Ctx().available)
    assert skipped.status == Status.SKIP and skipped.summary == "no baseline"
    err = run_check(Raises(), _Ctx(), {}, _Ctx().available)
    assert err.status == Status.ERROR and "KeyError" in err.summary and "traceback" in err.data


def test_third_party_checks_register_through_entry_points(monkeypatch, tmp_path):
    import sys
    from importlib import metadata

    import facediag.checks.registry as registry

    (tmp_path / "my_checks.py").write_text(
        "from facediag.checks.base import Check\n"
        "from facediag.checks.registry import register\n"
        "@register\nclass Mine(Check):\n    name = 'my-check'\n    title = 'mine'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint("mine", "my_checks", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert "my-check" in all_checks()
    finally:
        registry._REGISTRY.pop("my-check", None)
        sys.modules.pop("my_checks", None)


def result(name, status, **metrics):
    """What check ``name`` reports for these metrics under its default thresholds: its own
    conditions decide, and they must agree with the status the test expects."""
    check = get_check(name)()
    res = check.conclude(metrics, check.params, summary="")
    assert res.status == Status(status), (name, res.status, [c.id for c in res.conditions if c.met])
    return res


def test_collapse_takes_precedence_over_memorization():
    results = [result("pair-gap", "FAIL", paired_mean=1.0, genuine_mean=0.999, impostor_mean=0.997, gap=0.001,
                      collapsed=True),
               result("norm-sanity", "FAIL", impostor_mean=0.99, effective_rank=3.0)]
    ids = [d.id for d in diagnose(results)]
    assert "embedding-collapse" in ids and "pair-memorization" not in ids


def test_few_dimensions_with_separated_people_is_not_collapse():
    # A small model trained briefly on synthetic faces: 7 effective dimensions, impostors apart.
    results = [result("pair-gap", "PASS", paired_mean=0.95, genuine_mean=0.91, impostor_mean=0.19, gap=0.04,
                      rank1=0.25, hr_rank1=0.3),
               result("norm-sanity", "WARN", impostor_mean=0.19, effective_rank=7.2)]
    assert "embedding-collapse" not in [d.id for d in diagnose(results)]
    results[1] = result("norm-sanity", "FAIL", impostor_mean=0.93, effective_rank=7.2)
    assert "embedding-collapse" in [d.id for d in diagnose(results)]


def test_a_collapsed_model_has_no_preferred_input():
    # Collapsed: AUC 0.64 with [0, 1] input vs 0.62 as trained is noise, not a mismatch.
    results = [result("pair-gap", "FAIL", paired_mean=1.0, genuine_mean=0.997, impostor_mean=0.995, gap=0.003,
                      collapsed=True),
               result("preprocessing", "FAIL", auc_expected=0.62, auc_range_0_1=0.64,
                      auc_range_0_1_gain_low=0.004)]
    assert [d.id for d in diagnose(results)] == ["embedding-collapse"]
    assert [d.id for d in diagnose(results[1:])] == ["preprocessing-mismatch"]


def test_memorization_signature():
    results = [result("pair-gap", "FAIL", paired_mean=0.93, genuine_mean=0.22, impostor_mean=0.01, gap=0.71,
                      rank1=0.38)]
    (d,) = diagnose(results)
    assert d.id == "pair-memorization" and d.remedy and "0.930" in d.evidence[0]


def test_untrained_weights_explain_a_high_paired_score():
    results = [result("weights-integrity", "FAIL", matched_fraction=1.0, init_fraction=1.0, dprime=0.8),
               result("pair-gap", "PASS", paired_mean=0.84, genuine_mean=0.68, impostor_mean=0.32, gap=0.16)]
    ds = diagnose(results)
    assert [d.id for d in ds] == ["untrained-weights"]
    assert any("not memorisation" in e for e in ds[0].evidence)


def test_healthy_results_diagnose_nothing():
    results = [result("weights-integrity", "PASS", matched_fraction=1.0, init_fraction=0.0, dprime=2.9),
               result("pair-gap", "PASS", paired_mean=0.43, genuine_mean=0.34, impostor_mean=0.05, gap=0.09,
                      rank1=0.79, hr_rank1=0.93),
               result("norm-sanity", "PASS", impostor_mean=0.08, effective_rank=136, dsr_hr_norm_ratio=1.03),
               result("subject-overlap", "PASS", shared_subjects=40, open_set_share=0.0, id_clashes=0,
                      leaked_identical=0, leaked_near_duplicate=0)]
    assert diagnose(results) == []
