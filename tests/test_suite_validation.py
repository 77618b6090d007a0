"""Suites are validated when they are loaded, before any model is touched: every bad file or
parameter is one FacediagError line (exit 2 at the CLI), never an internal error later."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facediag.errors import FacediagError
from facediag.suites import load_suite

BAD = {
    "checks-a-number": "checks = 5\n",
    "check-table-a-number": "[checks]\nidentification = 3\n",
    "threshold-a-word": "[checks.identification]\nthreshold = \"high\"\n",
    "ranks-a-word": "[checks.identification]\nranks = \"abc\"\n",
    "ranks-empty": "[checks.identification]\nranks = []\n",
    "ranks-zero": "[checks.identification]\nranks = [0, 1]\n",
    "far-above-one": "[checks.verification]\nfars = [0.1, 1.5]\n",
    "far-zero": "[checks.identification]\ntarget_fars = [0.0]\n",
    "negative-threshold": "[checks.verification]\nmax_eer = -0.1\n",
    "rate-above-one": "[checks.identification]\nmax_far = 2.0\n",
    "cosine-out-of-range": "[checks.pair-gap]\ncollapse_impostor = 1.5\n",
    "enabled-a-word": "[checks.identification]\nenabled = \"no\"\n",
    "count-a-float": "[checks.preprocessing]\nmax_subjects = 2.5\n",
    "count-zero": "[checks.gallery-enrollment]\nmin_images_per_subject = 0\n",
    "bool-as-number": "[checks.verification]\nmax_eer = true\n",
    "suite-a-number": "suite = 1\n",
    "suite-threshold-a-word": "[suite]\nthreshold = \"x\"\n",
    "gate-a-list": "gate = [1]\n",
    "unknown-check": "[checks.nope]\n",
    "unknown-param": "[checks.identification]\nthreshhold = 0.3\n",
    "not-toml": "[checks\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_suite_is_one_line(tmp_path, name):
    path = tmp_path / f"{name}.toml"
    path.write_text(BAD[name])
    with pytest.raises(FacediagError) as err:
        load_suite(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_binary_file_and_folder_are_refused(tmp_path):
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "dir.toml").mkdir()
    for p in (tmp_path / "bin.toml", tmp_path / "dir.toml", tmp_path / "missing.toml"):
        with pytest.raises(FacediagError):
            load_suite(p)


def test_good_values_still_load(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[suite]\nthreshold = 0.4\n[checks.identification]\nranks = [1, 2]\nmax_far = 0.02\n"
                    "[checks.verification]\nfars = [0.1]\nenabled = true\n[checks.preprocessing]\nenabled = false\n")
    suite = load_suite(path)
    assert suite.params("identification")["threshold"] == 0.4 and suite.params("identification")["ranks"] == [1, 2]
    assert "preprocessing" not in suite.checks


_values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True)
                       | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3), max_leaves=5)


def _toml_value(v):
    import json
    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v) if isinstance(v, str) else str(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(check=st.sampled_from(["identification", "verification", "pair-gap", "norm-sanity", "preprocessing"]),
       key=st.sampled_from(["threshold", "ranks", "fars", "max_far", "max_eer", "collapse_impostor", "max_subjects",
                            "margin", "enabled", "min_effective_rank", "target_fars"]),
       value=_values)
def test_any_suite_loads_or_is_one_line(tmp_path, check, key, value):
    path = tmp_path / "s.toml"
    path.write_text(f"[checks.{check}]\n{key} = {_toml_value(value)}\n")
    try:
        suite = load_suite(path)
    except FacediagError as exc:
        assert "\n" not in str(exc)
    else:
        assert check in suite.checks or key == "enabled"
