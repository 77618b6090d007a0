"""Plots from CheckResult.data: each convention draws, bad data draws nothing, models overlay."""
import base64

import pytest
from matplotlib.figure import Figure

from facediag.checks.base import CheckResult, Status
from facediag.render.plots import _draw_scores, compare_plots, result_plots
from facediag.results import Report

HIST = {"edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "counts": [1, 5, 20, 4]}
GOOD = {
    "histograms": {"genuine": HIST, "impostor": {"edges": [-1, 0, 1], "counts": [9, 1]}},
    "roc": {"fpr": [0.0, 0.001, 0.01, 0.1, 1.0], "tpr": [0.0, 0.4, 0.6, 0.8, 1.0]},
    "det": {"fpr": [0.001, 0.01, 0.1, 1.0], "fnr": [0.6, 0.4, 0.2, 0.0]},
    "cmc": [0.8, 0.9, 0.95],
    "norm_histograms": {"hr": HIST, "dsr": HIST},
    "series": {"title": "loss", "x": [1, 2, 3], "ys": {"train": [3, 2, 1], "val": [3, 2.5, 2]}},
}


def _result(data, name="c"):
    return CheckResult(name, Status.PASS, "", data=data)


def _report(*results):
    return Report("cmd", {}, {}, {}, list(results))


def test_every_convention_draws_a_png():
    plots = result_plots(_result({**GOOD, "threshold": 0.35}))
    assert [p.kind for p in plots] == ["histograms", "roc", "det", "cmc", "norm_histograms", "series"]
    assert [p.title for p in plots][-1] == "c: loss"
    for p in plots:
        assert p.png.startswith(b"\x89PNG")
        assert base64.b64decode(p.data_uri.removeprefix("data:image/png;base64,")) == p.png


def test_plots_are_deterministic():
    assert [p.png for p in result_plots(_result(GOOD))] == [p.png for p in result_plots(_result(GOOD))]


def test_threshold_changes_the_histogram():
    plain, = result_plots(_result({"histograms": GOOD["histograms"]}))
    marked, = result_plots(_result({"histograms": GOOD["histograms"], "threshold": 0.35}))
    assert plain.png != marked.png


@pytest.mark.parametrize("data", [
    {},
    {"headline": ["x"], "threshold": 0.3},
    {"histograms": {"genuine": {"edges": [0, 1], "counts": [1, 2]}}},  # edges must be one longer
    {"histograms": {"genuine": {"edges": [0, 1, 1], "counts": [1, 2]}}},  # edges must increase
    {"histograms": {"genuine": {"edges": [0, 1, 2], "counts": [0, 0]}}},  # nothing counted
    {"histograms": [1, 2, 3]},
    {"norm_histograms": {"hr": {"edges": "oops"}}},
    {"roc": {"fpr": [0.0, 0.0], "tpr": [0.5, 1.0]}},  # no point a log axis can show
    {"roc": {"fpr": [0.1, 0.2], "tpr": [0.5]}},
    {"det": {"fpr": [0.1, 0.2], "fnr": [0.0, 0.0]}},
    {"cmc": ["a", "b"]},
    {"cmc": []},
    {"cmc": [0.5, float("nan")]},
    {"series": {"x": [1, 2], "ys": {"a": [1]}}},
    {"series": {"x": [1, 2]}},
    {"roc": None},
])
def test_missing_or_malformed_data_draws_nothing(data):
    assert result_plots(_result(data)) == []


def test_compare_overlays_models_on_one_plot_per_kind():
    a = _report(_result({"roc": GOOD["roc"], "cmc": [0.5, 0.7]}), _result({"cmc": [0.1]}, name="only-a"))
    b = _report(_result({"roc": {"fpr": [0.001, 0.1, 1.0], "tpr": [0.1, 0.5, 1.0]}, "cmc": [0.9, 0.95]}),
                _result({"histograms": GOOD["histograms"], "threshold": 0.4}, name="only-b"))
    plots = compare_plots([("pretrained", a), ("finetuned", b)])
    assert [(p.check, p.kind) for p in plots] == [("c", "roc"), ("c", "cmc"), ("only-a", "cmc"),
                                                  ("only-b", "histograms")]
    single = {p.kind: p.png for p in result_plots(a.results[0])}
    assert all(p.png != single[p.kind] for p in plots[:2])  # the second model is on the axes


def _score_legend(*thresholds):
    fig = Figure()
    ax = fig.add_subplot()
    entries = [(label, {"histograms": GOOD["histograms"], "threshold": t}) for label, t in thresholds]
    assert _draw_scores(ax, entries) == "score distributions"
    return ax.get_legend_handles_labels()[1]


def test_overlay_labels_series_by_model_and_thresholds_only_when_they_disagree():
    assert _score_legend(("a", 0.3), ("b", 0.3)) == [
        "a · genuine", "a · impostor", "b · genuine", "b · impostor", "threshold 0.3"]
    assert _score_legend(("a", 0.3), ("b", 0.6))[-2:] == ["threshold 0.3 (a)", "threshold 0.6 (b)"]
    assert _score_legend((None, 0.35)) == ["genuine", "impostor", "threshold 0.35"]
