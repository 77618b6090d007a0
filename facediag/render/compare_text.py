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
