"""The wording every format shares: numbers, headline metrics, the verdict line."""
import numpy as np
import pytest

from facediag.checks.base import CheckResult, Status
from facediag.formatting import format_value
from facediag.render.text import dataset_text, format_evidence, headline_metrics, verdict_text
from facediag.results import Report


@pytest.mark.parametrize("value, text", [
    (0.934, "0.934"), (1.0, "1.000"), (0.0931, "0.0931"), (0.0012, "0.00120"), (3e-05, "3.00e-05"),
    (0.0, "0"), (-0.25, "-0.250"), (3.21, "3.210"), (12.345, "12.35"), (123.45, "123.5"),
    (12345.6, "12,346"), (109200, "109,200"), (True, "yes"), (None, "n/a"), (float("nan"), "nan"),
    (np.float32(0.934), "0.934"), (np.int64(7), "7"), ("edgeface_xxs", "edgeface_xxs"),
    ([0.1, 2], "[0.100, 2]"), (list(range(8)), "[0, 1, 2, 3, 4, 5, …]"),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_format_evidence():
    assert format_evidence({"far": 0.0931, "pairs": 2800}) == "far=0.0931, pairs=2,800"


def test_headline_metrics_named_by_the_check_or_the_first_three():
    metrics = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
    named = CheckResult("x", Status.PASS, "", metrics, data={"headline": ["d", "missing", "a"]})
    assert headline_metrics(named) == [("d", 4.0), ("a", 1.0)]
    assert [n for n, _ in headline_metrics(CheckResult("x", Status.PASS, "", metrics))] == ["a", "b", "c"]
    many = CheckResult("x", Status.PASS, "", metrics, data={"headline": list(metrics)})
    assert len(headline_metrics(many)) == 4


def test_verdict_text():
    report = Report(
        "cmd", {"model": {"path": "/w/m.pth", "sha256": "f" * 64, "variant": "edgeface_xxs"},
                "baseline": {"path": "b.pth"}},
        {"root": "/d/orl", "counts": {"subjects": 40, "images": 400}}, {},
        [CheckResult("a", Status.PASS, ""), CheckResult("b", Status.FAIL, ""), CheckResult("c", Status.FAIL, "")])
    assert verdict_text(report) == ("FAIL: 2 failed, 1 passed · model m.pth (edgeface_xxs, sha256 ffffffffffff); "
                                    "baseline b.pth · data orl: 40 subjects, 400 images")
    assert verdict_text(Report("cmd", {}, {}, {}, [])) == "SKIP: no checks ran"


def test_dataset_text_names_the_key_counts_and_any_problems():
    counts = {"images": 400, "hr": 400, "vlr": 0, "subjects": 40, "problems": 0, "probes": 280}
    assert dataset_text({"root": "/d/orl", "counts": counts}) == "orl: 40 subjects, 400 images, 280 probes"
    assert dataset_text({"counts": {**counts, "problems": 3}}) == "40 subjects, 400 images, 280 probes, 3 problems"
    assert dataset_text({"counts": {"pairs": 6000}}) == "6,000 pairs"
    assert dataset_text({}) == "no dataset"
