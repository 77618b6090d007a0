"""Accuracy by face size and the error-versus-discard characteristic, for any bench kind.

A bench row that carries ``row["by_quality"]`` (facediag.metrics.edc.quality_section) gets two
tables here, drawn by every format through bench_tables.tables, and one EDC plot per row in
render.plots. Nothing here knows which bench made the row. No matplotlib, no rich.
"""
from __future__ import annotations

import numpy as np

from facediag.formatting import format_value
from facediag.results.bench import BenchReport

# Row fields that tell bench rows apart, in the order a label names them.
_ROW_KEYS = ("set", "protocol", "gallery", "distance", "camera", "resolution", "upsampling", "degrade",
             "probes_from", "checkpoint")
EDC_AT = (0.0, 0.1, 0.2)   # discard fractions the table reads the curve at


def quality_rows(report: BenchReport) -> list[tuple[str, dict]]:
    """(label, by_quality section) for each row that carries one, labelled by what tells the rows apart.

    Parameters
    ----------
    report : BenchReport
        Any bench report.

    Returns
    -------
    list of (str, dict)
        The label names the row fields that differ between the rows carrying a section (the
        checkpoint when nothing else does).
    """
    rows = [r for r in report.rows if isinstance(r.get("by_quality"), dict)]
    keys = [k for k in _ROW_KEYS if len({_cell(r.get(k)) for r in rows}) > 1] or ["checkpoint"]
    return [(" · ".join(_cell(r.get(k)) for k in keys if r.get(k) is not None) or "all probes", r["by_quality"])
            for r in rows]


def _cell(value) -> str:
    if value is None:
        return "—"
    if value == "hr":
        return "HR"
    return f"{value} px" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def error_at(curve: dict, fraction: float) -> float | None:
    """The step EDC's error after discarding ``fraction`` (the step in force there)."""
    d = np.asarray(curve.get("discard") or [], dtype=np.float64)
    if d.size == 0:
        return None
    i = int(np.searchsorted(d, fraction + 1e-12, side="right")) - 1
    return float(curve["error"][max(i, 0)])


def curves(section: dict):
    """(quality, error type, curve) for each curve a section holds: rank-1 error, then FNMR."""
    for quality, entry in (section.get("edc") or {}).items():
        for error in ("rank1_error", "fnmr"):
            if isinstance(entry.get(error), dict):
                yield quality, error, entry[error]


ERROR_LABEL = {"rank1_error": "rank-1 error", "fnmr": "FNMR"}


def quality_tables(report: BenchReport) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """The size-bin table and the EDC table over every row carrying ``by_quality`` (none: no tables).

    Parameters
    ----------
    report : BenchReport
        Any bench report.

    Returns
    -------
    list of (title, header, rows of cell strings, footnotes)
        As bench_tables draws them in every format.
    """
    labelled = quality_rows(report)
    if not labelled:
        return []
    out = []
    bins = [(label, b) for label, s in labelled for b in (s.get("size_bins") or [])]
    if bins:
        head = ["row", "face size", "probes", "rank-1", "genuine mean", "mated", "note"]
        cells = [[label, b["label"], format_value(b["n"]), _rate(b.get("rank1")), _rate(b.get("genuine_mean")),
                  format_value(b.get("n_genuine")), b.get("note", "")] for label, b in bins]
        few = labelled[0][1].get("min_bin_probes")
        foot = ["face size: the shorter side of the probe's original file in px, before any resizing; "
                "rank-1 over the bin's probes; genuine mean: the score against the probe's own mate, over the "
                "bin's probes that have one"
                + (f"; a bin with fewer than {few} probes is marked too few to read" if few else "")]
        out.append(("Accuracy by native face size", head, cells, foot))
    head = (["row", "quality", "error", "probes", "errors"]
            + [f"error @{100 * f:g} % discarded" for f in EDC_AT] + ["pAUC"])
    cells, limits, thresholds, descriptions = [], set(), set(), {}
    for label, section in labelled:
        if section.get("threshold") is not None:
            thresholds.add(section["threshold"])
        for quality, error, curve in curves(section):
            limits.add(curve.get("pauc_limit"))
            descriptions[quality] = section["edc"][quality].get("description", "")
            cells.append([label, quality, ERROR_LABEL[error], format_value(curve.get("n")),
                          format_value(curve.get("errors"))]
                         + [_rate(error_at(curve, f)) for f in EDC_AT]
                         + [_rate(curve.get("pauc")) + f" (to {curve.get('pauc_limit', 0):g})"])
    foot = [labelled[0][1].get("method") or "EDC: lowest quality discarded first",
            "pAUC: area under the step curve from 0 to the stated discard fraction; lower means the quality "
            "predicts the errors better (at most the limit itself, where every kept probe fails)"]
    foot += [f"{q}: {d}" for q, d in descriptions.items() if d]
    foot += [f"{label}: {section['probes']}" for label, section in labelled if section.get("probes")]
    foot += [f"FNMR: mated probes whose genuine score is below {t:g}" for t in sorted(thresholds)]
    out.append(("Error versus discard characteristic (EDC)", head, cells, foot))
    return out


def _rate(value) -> str:
    return "—" if value is None else f"{value:.3f}"
