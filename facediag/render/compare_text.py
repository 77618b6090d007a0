"""The wording of compare reports that every format shares: intervals, deltas, how far B moved."""
from __future__ import annotations

from facediag.formatting import format_value
from facediag.render.text import checkpoint_text
from facediag.results.compare import CompareReport, MetricRow


def ci_text(ci, signed: bool = False) -> str:
    if not ci:
        return ""
    if signed:  # an interval of a change: fixed decimals and signs line up and show where 0 falls
        return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]".replace("-", "−")
    return f"[{format_value(ci[0])}, {format_value(ci[1])}]"


def delta_text(row: MetricRow) -> str:
    d = row.delta
    return "n/a" if d is None else ("0" if d == 0 else f"{'+' if d > 0 else '−'}{format_value(abs(d))}")


def p_text(row: MetricRow) -> str:
    return "" if row.p_value is None else f"{row.p_value:.2g}"


def sides(report: CompareReport) -> list[tuple[str, str]]:
    """(label, description) of A and B."""
    return [(tag, checkpoint_text(tag, side.checkpoints.get("model", {})))
            for tag, side in (("A", report.a), ("B", report.b))]


def moved_lines(report: CompareReport) -> list[str]:
    """How far B moved from A, in words: CKA, and the score distributions' shift."""
    lines = []
    cka = report.shift.get("cka") or {}
    if cka:
        lines.append("linear CKA between A's and B's embeddings of the same images: " + ", ".join(
            f"{'HR gallery' if v == 'gallery' else 'DSR probes'} {format_value(x)}" for v, x in cka.items()))
    for name, r in (report.shift.get("scores") or {}).items():
        row = MetricRow.from_dict(r)
        ci = f" (B − A {ci_text(row.delta_ci, signed=True)})" if row.delta_ci else ""
        lines.append(f"{name} mean cosine {format_value(row.a)} → {format_value(row.b)}: {delta_text(row)}{ci}")
    lines += report.shift.get("notes") or []
    mc = report.shift.get("mcnemar_rank1")
    if mc:
        lines.append(f"rank-1 discordant probes: {mc['b10']} right only with A, {mc['b01']} right only with B "
                     f"(of {mc['n']}; McNemar exact p {mc['p_value']:.2g})")
    return lines


def changed_untested(report: CompareReport) -> list[MetricRow]:
    return [r for r in report.metrics if r.verdict is None and r.delta not in (None, 0)]


VIEW_NAMES = {"gallery": "gallery", "probe_dsr": "probes", "probe_hr": "probes' own HR images"}


def parity_lines(report: CompareReport) -> list[str]:
    """The parity section in words (one network in two formats); [] when the report has none."""
    p = report.parity
    if not p:
        return []
    c = p["cosine"]
    views = ", ".join(f"{VIEW_NAMES.get(v, v)} {x['images']} (min {x['cosine_min']:.6f})"
                      for v, x in p["views"].items())
    hist = p["distance_histogram"]
    edges, counts = hist["edges"], hist["counts"]
    bins = ", ".join(f"{_edge(lo)}–{_edge(hi)}: {n}" for lo, hi, n in zip(edges, edges[1:], counts) if n)
    quantiles = ", ".join(f"{q:.1%}".replace(".0%", "%") + f" {v:.6f}" for q, v in p["quantiles"])
    share = f"{p['rank1_changed_share']:.2%}"
    return [f"why: {p['reason']}",
            f"per-image cosine between A's and B's embeddings of the same {p['images']} images: min {c['min']:.6f}, "
            f"p1 {c['p1']:.6f}, p5 {c['p5']:.6f}, median {c['median']:.6f}, mean {c['mean']:.6f}",
            f"by view: {views}",
            f"quantiles: {quantiles}",
            f"images by 1 − cosine: {bins}",
            f"largest coordinate difference |a − b| of the raw embeddings: {p['max_abs_diff']:.3g}",
            f"rank-1 decision (each probe's best gallery template) changed on {p['rank1_changed']} of "
            f"{p['probes']} probes ({share})",
            "every metric's change with its significance: the tested metrics (" + report.summary() + ")"]


def _edge(x: float) -> str:
    return "0" if x == 0 else "2" if x == 2 else f"{x:.0e}".replace("e-0", "e-")
