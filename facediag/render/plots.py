"""Plots drawn from ``CheckResult.data``: matplotlib figures → PNG bytes → base64 data URIs.

Plot data lives in ``CheckResult.data`` as JSON-friendly lists, under these keys (any subset;
a missing or malformed key draws nothing and never raises):

- ``histograms``: ``{"genuine"|"impostor"|"paired": {"edges": [n+1], "counts": [n]}}`` score
  distributions, drawn density-normalised with ``data["threshold"]`` (optional) as a vertical line
- ``roc``: ``{"fpr": [...], "tpr": [...]}``, log-scale false-accept axis
- ``det``: ``{"fpr": [...], "fnr": [...]}``, log-log
- ``cmc``: ``[rank-1 rate, rank-2 rate, ...]``
- ``open_set``: ``{"fpir": [...], "fnir": [...]}`` over thresholds, the 1:N DET curve, log-log
- ``norm_histograms``: ``{"hr"|"dsr"|...: {"edges", "counts"}}`` raw (pre-normalisation) norms
- ``series``: ``{"title", "x": [...], "ys": {label: [...]}, "xlabel"?, "ylabel"?}`` line plot
- ``demographic``: a demographic section (protocols.demographics): each group's DET curve, log-log

``result_plots`` draws one check; ``compare_plots`` overlays several models' data for the same
check on shared axes.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg and never opens a window
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from facediag.checks.base import CheckResult
from facediag.metrics.catalogue import info
from facediag.render.bench_tables import res_label
from facediag.render.group_tables import bench_group_rows, det_curves
from facediag.render.quality_tables import ERROR_LABEL, quality_rows
from facediag.render.quality_tables import curves as edc_curves
from facediag.results import BenchReport, Report

# Colour says what a series is; line style says which model it belongs to.
_SERIES_COLOURS = {"genuine": "tab:green", "impostor": "tab:red", "paired": "tab:purple",
                   "hr": "tab:blue", "dsr": "tab:orange"}
_CYCLE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_STYLES = ("-", "--", ":", "-.")

Entry = tuple[str | None, dict]  # (model label, or None for a single model; the check's data)


@dataclass(frozen=True)
class Plot:
    check: str
    kind: str  # the data key it was drawn from
    title: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def result_plots(result: CheckResult) -> list[Plot]:
    """Every plot one check's data supports, in a fixed order."""
    return _plots(result.name, [(None, result.data)])


def compare_plots(labelled_reports: list[tuple[str, Report]]) -> list[Plot]:
    """Overlay several models on the same axes, one plot per (check, kind) that any report has."""
    names: list[str] = []
    for _, report in labelled_reports:
        names += [r.name for r in report.results if r.name not in names]
    plots = []
    for name in names:
        entries = [(label, res.data) for label, report in labelled_reports
                   if (res := report.result(name)) is not None]
        plots += _plots(name, entries)
    return plots


def _plots(check: str, entries: list[Entry]) -> list[Plot]:
    plots = []
    for kind, draw in _DRAWERS.items():
        usable = [(label, data) for label, data in entries if data.get(kind) is not None]
        if not usable:
            continue
        # Fixed margins: constrained layout measures every tick label and doubles the cost.
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
        ax = fig.add_subplot()
        heading = draw(ax, usable)
        if heading is None:
            continue
        full_title = f"{check}: {heading}"
        ax.set_title(full_title, fontsize=11)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        plots.append(Plot(check, kind, full_title, _png(fig)))
    return plots


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same report gives byte-identical PNGs (and HTML).
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _vector(values, min_len: int = 1) -> np.ndarray | None:
    """A finite 1-d float array, or None when the data is not one."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 1 or arr.size < min_len or not np.all(np.isfinite(arr)):
        return None
    return arr


def _density(hist) -> tuple[np.ndarray, np.ndarray] | None:
    """(densities, edges) of an edges/counts histogram, or None when it is malformed or empty."""
    if not isinstance(hist, dict):
        return None
    edges, counts = _vector(hist.get("edges"), 2), _vector(hist.get("counts"))
    if edges is None or counts is None or edges.size != counts.size + 1:
        return None
    widths = np.diff(edges)
    if np.any(widths <= 0) or np.any(counts < 0) or counts.sum() <= 0:
        return None
    return counts / (counts.sum() * widths), edges


def _label(model: str | None, series: str) -> str:
    return series if model is None else f"{model} · {series}"


def _draw_histograms(ax, entries: list[Entry], key: str, xlabel: str, threshold: bool) -> bool:
    drawn, thresholds = False, {}
    for i, (model, data) in enumerate(entries):
        hists = data[key] if isinstance(data[key], dict) else {}
        for j, (series, hist) in enumerate(hists.items()):
            dens = _density(hist)
            if dens is None:
                continue
            ax.stairs(*dens, label=_label(model, series), linewidth=1.6,
                      color=_SERIES_COLOURS.get(series, _CYCLE[j % len(_CYCLE)]),
                      linestyle=_STYLES[i % len(_STYLES)])
            drawn = True
        t = data.get("threshold")
        if threshold and drawn and isinstance(t, (int, float)) and not isinstance(t, bool):
            thresholds.setdefault(float(t), []).append((i, model))
    if not drawn:
        return False
    for t, owners in thresholds.items():
        if len(thresholds) == 1:
            ax.axvline(t, color="black", linestyle="--", linewidth=1, label=f"threshold {t:g}")
        else:  # models disagree: each threshold in its model's line style, with its name
            who = ", ".join(str(model) for _, model in owners)
            ax.axvline(t, color="black", linestyle=_STYLES[owners[0][0] % len(_STYLES)], linewidth=1,
                       label=f"threshold {t:g} ({who})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    return True


def _draw_scores(ax, entries):
    drawn = _draw_histograms(ax, entries, "histograms", "cosine similarity", threshold=True)
    return "score distributions" if drawn else None


def _draw_norms(ax, entries):
    drawn = _draw_histograms(ax, entries, "norm_histograms", "raw embedding norm", threshold=False)
    return "raw embedding norms" if drawn else None


def _curves(entries: list[Entry], key: str, xk: str, yk: str, positive_y: bool):
    """(model, x, y) for each entry whose curve is well-formed, keeping only points a log axis can show."""
    for model, data in entries:
        curve = data[key]
        if not isinstance(curve, dict):
            continue
        x, y = _vector(curve.get(xk), 2), _vector(curve.get(yk), 2)
        if x is None or y is None or x.size != y.size:
            continue
        keep = (x > 0) & (y > 0) if positive_y else x > 0
        if keep.sum() >= 2:
            yield model, x[keep], y[keep]


def _plain(value, _pos=None) -> str:
    return f"{value:g}"


def _plain_2_5(value, _pos=None) -> str:
    return _plain(value) if round(value / 10 ** np.floor(np.log10(value))) in (2, 5) else ""


def _log_axis(ax, which: str) -> None:
    """Log scale labelled 0.001, 0.01, ... as rates are read, rather than as mathtext powers
    (also slow to typeset). Call after plotting: the labels depend on the span."""
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(_plain))
    lo, hi = axis.get_view_interval()
    # Within a decade or so the decades alone leave the axis almost bare.
    axis.set_minor_formatter(FuncFormatter(_plain_2_5) if hi / lo < 30 else NullFormatter())


def _draw_roc(ax, entries):
    drawn = False
    for i, (model, fpr, tpr) in enumerate(_curves(entries, "roc", "fpr", "tpr", positive_y=False)):
        ax.plot(fpr, tpr, color=_CYCLE[i % len(_CYCLE)], linewidth=1.6, label=model)
        drawn = True
    if not drawn:
        return None
    _log_axis(ax, "x")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    return "ROC"


def _draw_log_log(ax, entries, key: str, xk: str, yk: str, xlabel: str, ylabel: str, title: str,
                  drawstyle: str = "default"):
    drawn = False
    for i, (model, x, y) in enumerate(_curves(entries, key, xk, yk, positive_y=True)):
        ax.plot(x, y, color=_CYCLE[i % len(_CYCLE)], linewidth=1.6, label=model, drawstyle=drawstyle)
        drawn = True
    if not drawn:
        return None
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return title


def _draw_det(ax, entries):
    return _draw_log_log(ax, entries, "det", "fpr", "fnr", "false accept rate (FAR)", "false reject rate (FRR)", "DET")


def _draw_open_set(ax, entries):
    return _draw_log_log(ax, entries, "open_set", "fpir", "fnir", "false positive identification rate (FPIR)",
                         "false negative identification rate (FNIR)", "1:N DET (open set)", drawstyle="steps-post")


def _draw_cmc(ax, entries):
    drawn = False
    for i, (model, data) in enumerate(entries):
        rates = _vector(data["cmc"])
        if rates is None:
            continue
        ranks = np.arange(1, rates.size + 1)
        ax.plot(ranks, rates, color=_CYCLE[i % len(_CYCLE)], linewidth=1.6,
                marker="o" if rates.size <= 20 else None, markersize=3, label=model)
        drawn = True
    if not drawn:
        return None
    ax.set_ylim(0, 1.01)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    return "CMC"


def _draw_series(ax, entries):
    title, drawn = "", False
    for i, (model, data) in enumerate(entries):
        series = data["series"]
        if not isinstance(series, dict) or not isinstance(series.get("ys"), dict):
            continue
        x = _vector(series.get("x"))
        if x is None:
            continue
        for j, (name, ys) in enumerate(series["ys"].items()):
            y = _vector(ys)
            if y is None or y.size != x.size:
                continue
            ax.plot(x, y, color=_CYCLE[j % len(_CYCLE)], linestyle=_STYLES[i % len(_STYLES)],
                    linewidth=1.6, label=_label(model, str(name)))
            drawn = True
        title = title or str(series.get("title") or "")
        ax.set_xlabel(str(series.get("xlabel", "")))
        ax.set_ylabel(str(series.get("ylabel", "")))
    return (title or "series") if drawn else None


def _draw_group_det(ax, entries):
    """Each demographic group's DET curve (the demographic check): a colour per group, a line style per model."""
    drawn = False
    for i, (model, data) in enumerate(entries):
        if not isinstance(data["demographic"], dict):
            continue
        for k, (label, fmr, fnmr) in enumerate(det_curves(data["demographic"])):
            ax.plot(fmr, fnmr, color=_CYCLE[k % len(_CYCLE)], linestyle=_STYLES[i % len(_STYLES)], linewidth=1.6,
                    label=_label(model, label))
            drawn = True
    if not drawn:
        return None
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("false match rate (FMR), pairs within the group")
    ax.set_ylabel("false non-match rate (FNMR)")
    return "DET per demographic group"


# data key -> drawer; a drawer returns the plot's title, or None when nothing was drawable.
_DRAWERS: dict[str, Callable[[Any, list[Entry]], str | None]] = {
    "histograms": _draw_scores,
    "roc": _draw_roc,
    "det": _draw_det,
    "cmc": _draw_cmc,
    "open_set": _draw_open_set,
    "norm_histograms": _draw_norms,
    "series": _draw_series,
    "demographic": _draw_group_det,
}


# ------------------------------------------------------------------------------ bench
def bench_plots(report: BenchReport) -> list[tuple[str, str]]:
    """(title, PNG data URI) of each plot: rank-1 vs resolution, or throughput vs batch size, then the
    EDC of each row that carries ``by_quality``."""
    figure = {"accuracy": _accuracy_figure, "speed": _speed_figure, "scores": _scores_figure}.get(report.kind)
    figs = [figure(report) if figure else None]  # verification: the table is the result
    # any kind: one EDC figure per row carrying by_quality
    figs += [_edc_figure(label, section) for label, section in quality_rows(report)]
    figs += [_group_det_figure(label, section) for label, section in bench_group_rows(report)]
    out = []
    for fig in figs:
        if fig is None:
            continue
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})  # no stamp: byte-identical re-renders
        title = fig.axes[0].get_title()
        out.append((title, Plot("bench", report.kind, title, buf.getvalue()).data_uri))
    return out


def _edc_figure(label: str, section: dict):
    """Error against the fraction of lowest-quality probes discarded: one colour per quality, rank-1
    error solid and FNMR dashed, each curve's pAUC in the legend."""
    drawn = list(edc_curves(section))
    if not drawn:
        return None
    fig, ax = _new_axes(f"error vs discard (EDC): {label}")
    colour = {q: _CYCLE[i % len(_CYCLE)] for i, q in enumerate(dict.fromkeys(q for q, _, _ in drawn))}
    for quality, error, curve in drawn:
        ax.step(curve["discard"], curve["error"], where="post", color=colour[quality],
                linestyle="-" if error == "rank1_error" else "--",
                label=f"{quality} · {ERROR_LABEL[error]} (pAUC@{curve['pauc_limit']:g} {curve['pauc']:.3f})")
    limit = max(c["pauc_limit"] for _, _, c in drawn)
    ax.axvline(limit, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("fraction of probes discarded (lowest quality first)")
    ax.set_ylabel("error of the probes kept")
    ax.legend(fontsize=8)
    return fig


def _group_det_figure(label: str, section: dict):
    """One bench row's DET curve per demographic group."""
    curves = list(det_curves(section))
    if not curves:
        return None
    fig, ax = _new_axes(f"DET per demographic group: {label}")
    for k, (name, fmr, fnmr) in enumerate(curves):
        ax.plot(fmr, fnmr, color=_CYCLE[k % len(_CYCLE)], linewidth=1.6, label=name)
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("false match rate (FMR), pairs within the group")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.legend(fontsize=8)
    return fig


_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _new_axes(title: str):
    fig = Figure(figsize=(7.0, 4.2), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.91)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.35)
    return fig, ax


def _accuracy_figure(report: BenchReport):
    res = sorted({r["resolution"] for r in report.rows if r["resolution"] != "hr"})
    has_hr = any(r["resolution"] == "hr" for r in report.rows)
    ticks = res + (["hr"] if has_hr else [])
    if len(ticks) < 2:
        return None
    fig, ax = _new_axes("rank-1 vs probe resolution")
    x_of = {t: i for i, t in enumerate(ticks)}
    for ci, label in enumerate(report.checkpoints):
        hr = report.rows_where(checkpoint=label, resolution="hr")
        for upsampling in dict.fromkeys(r["upsampling"] for r in report.rows if r["resolution"] != "hr"):
            pts = [(x_of[r["resolution"]], r["rank1"]) for r in report.rows
                   if r["checkpoint"] == label and r["upsampling"] == upsampling and r["resolution"] != "hr"]
            pts += [(x_of["hr"], r["rank1"]) for r in hr]  # HR is where every path ends
            pts = [(x, y) for x, y in sorted(pts) if y is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", color=_COLOURS[ci % len(_COLOURS)],
                        linestyle="--" if upsampling == "bicubic" and report.comparisons else "-",
                        label=f"{label} · {upsampling}" if report.comparisons else label)
    ax.set_xticks(range(len(ticks)), [res_label(t) for t in ticks])
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("probe resolution (area-downsampled, then upsampled to 112)")
    ax.set_ylabel("rank-1 identification rate")
    ax.legend(fontsize=8)
    return fig


def _scores_figure(report: BenchReport):
    """The DET curve of each score file (log-log FAR against FRR)."""
    fig, ax = _new_axes("DET from the score file")
    if _draw_det(ax, [(r.get("file"), r) for r in report.rows]) is None:
        return None
    if len(report.rows) > 1:
        ax.legend(fontsize=8)
    return fig


def _speed_figure(report: BenchReport):
    if not any(len(r.get("throughput", [])) > 1 for r in report.rows):
        return None
    fig, ax = _new_axes("throughput vs batch size")
    for ci, r in enumerate(report.rows):
        pts = [(t["batch_size"], t["images_per_s"]) for t in r.get("throughput", [])]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", color=_COLOURS[ci % len(_COLOURS)],
                    label=f"{r['checkpoint']} ({r['device']}, {r['dtype']})")
    ax.set_xscale("log", base=2)
    sizes = sorted({t["batch_size"] for r in report.rows for t in r.get("throughput", [])})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------- monitor history
def history_plots(history) -> list[Plot]:
    """Each metric of a monitor history over steps, one plot per check and unit (so the pair-gap
    cosines, paired against genuine, share axes), with a dotted line where each diagnosis began
    and a dashed red line at the stop."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in history.metric_names:
        entry = info(name)
        groups.setdefault((name.split(".", 1)[0], entry.unit if entry else "value"), []).append(name)
    steps = np.asarray(history.steps, dtype=float)
    diagnoses = [o for o in history.onsets if o.kind == "diagnosis"]
    stop = history.stop
    plots = []
    for (check, unit), names in groups.items():
        fig, ax = _new_axes(f"{check} ({unit}) over training steps")
        drawn = False
        for i, name in enumerate(names):
            y = np.asarray([np.nan if v is None else v for v in history.series(name)], dtype=float)
            if np.isfinite(y).any():
                ax.plot(steps, y, marker="o", markersize=3, color=_CYCLE[i % len(_CYCLE)],
                        label=name.split(".", 1)[-1])
                drawn = True
        if not drawn:
            continue
        for o in diagnoses:
            ax.axvline(o.step, color="tab:gray", linestyle=":", linewidth=1.2)
            ax.annotate(o.id, (o.step, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                        va="top", ha="right", color="tab:gray")
        if stop is not None:
            ax.axvline(stop.step, color="tab:red", linestyle="--", linewidth=1.4, label="stop")
        ax.set_xlabel("step")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
        plots.append(Plot(check, f"history-{unit}", ax.get_title(), _png(fig)))
    return plots
