"""Render a CompareReport: terminal (Rich), JSON, one self-contained HTML page, Markdown, JUnit XML.

The run renderers' wording and pieces are reused: value formatting, the HTML stylesheet and
figure grid, and ``compare_plots`` to draw A's and B's curves on the same axes.
"""
from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from facediag.compare import BETTER, NO_CHANGE, WORSE, CompareReport, MetricRow
from facediag.errors import FacediagError
from facediag.io import atomic_write_text
from facediag.report import checkpoint_text, dataset_text, format_value, ordered_diagnoses
from facediag.report.html import _CSS, extra_sections_html, figures_html  # one stylesheet for both pages
from facediag.report.markdown import _code, _text
from facediag.report.plots import compare_plots
from facediag.report.terminal import STATUS_STYLE

FORMATS = ("json", "html", "md", "junit")
FILENAMES = {"json": "report.json", "html": "report.html", "md": "report.md", "junit": "junit.xml"}
VERDICT_STYLE = {BETTER: "bold green", WORSE: "bold red", NO_CHANGE: "dim"}
_EXTRA_CSS = ".v-better{color:var(--pass);font-weight:600}.v-worse{color:var(--fail);font-weight:600}" \
             ".v-no{color:var(--muted)}td.num,th.num{text-align:right}"


def _ci(ci, signed: bool = False) -> str:
    if not ci:
        return ""
    if signed:  # an interval of a change: fixed decimals and signs line up and show where 0 falls
        return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]".replace("-", "−")
    return f"[{format_value(ci[0])}, {format_value(ci[1])}]"


def _delta(row: MetricRow) -> str:
    d = row.delta
    return "n/a" if d is None else ("0" if d == 0 else f"{'+' if d > 0 else '−'}{format_value(abs(d))}")


def _p(row: MetricRow) -> str:
    return "" if row.p_value is None else f"{row.p_value:.2g}"


def _sides(report: CompareReport) -> list[tuple[str, str]]:
    """(label, description) of A and B."""
    return [(tag, checkpoint_text(tag, side.checkpoints.get("model", {})))
            for tag, side in (("A", report.a), ("B", report.b))]


def _moved_lines(report: CompareReport) -> list[str]:
    """How far B moved from A, in words: CKA, and the score distributions' shift."""
    lines = []
    cka = report.shift.get("cka") or {}
    if cka:
        lines.append("linear CKA between A's and B's embeddings of the same images: " + ", ".join(
            f"{'HR gallery' if v == 'gallery' else 'DSR probes'} {format_value(x)}" for v, x in cka.items()))
    for name, r in (report.shift.get("scores") or {}).items():
        row = MetricRow.from_dict(r)
        ci = f" (B − A {_ci(row.delta_ci, signed=True)})" if row.delta_ci else ""
        lines.append(f"{name} mean cosine {format_value(row.a)} → {format_value(row.b)}: {_delta(row)}{ci}")
    lines += report.shift.get("notes") or []
    mc = report.shift.get("mcnemar_rank1")
    if mc:
        lines.append(f"rank-1 discordant probes: {mc['b10']} right only with A, {mc['b01']} right only with B "
                     f"(of {mc['n']}; McNemar exact p {mc['p_value']:.2g})")
    return lines


def _changed_untested(report: CompareReport) -> list[MetricRow]:
    return [r for r in report.metrics if r.verdict is None and r.delta not in (None, 0)]


# ---------------------------------------------------------------------------- terminal
def render_compare_terminal(report: CompareReport, console: Console) -> None:
    for tag, text in _sides(report):
        console.print(Text(text, style="bold" if tag == "B" else ""))
    console.print(Text(f"data {dataset_text(report.dataset)}", style="dim"))

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", title_justify="left", pad_edge=False,
                  title="Tested metrics: B − A with its 95 % subject-bootstrap interval")
    table.add_column("metric", no_wrap=True)
    for col in ("A", "B", "B − A"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("verdict (McNemar p)", min_width=14)
    check = None
    for r in report.tested:
        if r.check != check:  # group by check so metric names stay short
            check = r.check
            table.add_row(Text(check, style="bold"))
        p = f" (p {_p(r)})" if r.p_value is not None else ""
        table.add_row(f"  {r.metric}", format_value(r.a), format_value(r.b),
                      Text.assemble(_delta(r), "\n", (_ci(r.delta_ci, signed=True), "dim")),
                      Text.assemble((r.verdict, VERDICT_STYLE.get(r.verdict, "cyan")), (p, "dim")))
    console.print(table)

    console.print(Text("How far B moved from A", style="bold"))
    for line in _moved_lines(report):
        console.print(f"  {line}", highlight=False)

    for tag, side in (("A", report.a), ("B", report.b)):
        diagnoses = ordered_diagnoses(side)
        console.print(Text(f"Diagnoses of {tag}", style="bold"))
        if not diagnoses:
            console.print(Text("  no problems diagnosed", style="green"))
        for d in diagnoses:
            style = "red" if d.severity == "failure" else "yellow" if d.severity == "warning" else "blue"
            console.print(Text.assemble("  ", (d.id, f"bold {style}"), f": {d.summary}"))

    checks = Table(box=box.SIMPLE_HEAD, header_style="bold", title="Checks", title_justify="left", expand=True)
    for col in ("check", "A", "B", "B's summary"):
        checks.add_column(col, overflow="fold", no_wrap=col in ("A", "B"))
    a_status = {r.name: r.status for r in report.a.results}
    for r in report.b.results:
        sa = a_status.get(r.name)
        checks.add_row(r.name, Text(sa.value, STATUS_STYLE[sa]) if sa else "", Text(r.status.value, STATUS_STYLE[r.status]),
                       r.summary)
    console.print(checks)

    changed = _changed_untested(report)
    if changed:
        other = Table(box=box.SIMPLE_HEAD, header_style="bold", title_justify="left",
                      title=f"Other metrics that changed ({len(changed)}; every metric is in report.json/html)")
        for col in ("metric", "A", "B", "B − A"):
            other.add_column(col, justify="left" if col == "metric" else "right")
        for r in changed:
            other.add_row(r.key, format_value(r.a), format_value(r.b), _delta(r))
        console.print(other)

    console.print()
    console.print(Text(report.summary(), style="bold"))
    passed = report.passed
    console.print(Text(f"Gate: {'PASSED' if passed else 'FAILED'}", style="bold green" if passed else "bold red"))
    for line in report.gate.get("lines", []):
        console.print(f"  {line}", highlight=False)


# -------------------------------------------------------------------------------- html
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _verdict_html(verdict: str | None) -> str:
    if verdict is None:
        return ""
    cls = {BETTER: "v-better", WORSE: "v-worse", NO_CHANGE: "v-no"}.get(verdict, "")
    return f'<span class="{cls}">{_e(verdict)}</span>'


def _status_html(status) -> str:
    return f'<span class="status s-{_e(status.value)}">{_e(status.value)}</span>' if status else ""


def render_compare_html(report: CompareReport, extra_sections: list[tuple[str, str]] | None = None) -> str:
    """The comparison as one HTML page; ``extra_sections`` as for run reports (render_html)."""
    passed = report.passed
    sides = "".join(f"<li>{_e(text)}</li>" for _, text in _sides(report))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>facediag compare: {'PASSED' if passed else 'FAILED'}</title>",
        f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><main>",
        f"<header><h1>facediag compare</h1><ul>{sides}</ul>"
        f'<p class="verdict">data {_e(dataset_text(report.dataset))}</p>'
        f'<p class="meta">created {_e(report.created)}</p></header>',
        f'<section id="gate"><h2>Verdict</h2><div class="gate {"passed" if passed else "failed"}">'
        f"<strong>{_e(report.summary())}</strong><br>Gate: <strong>{'PASSED' if passed else 'FAILED'}</strong>"
        + "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in report.gate.get("lines", [])) + "</ul></div></section>",
    ]
    rows = "".join(
        f"<tr><td>{_e(r.key)}</td><td class=num>{_e(format_value(r.a))}<br><span class=k>{_e(_ci(r.a_ci))}</span></td>"
        f"<td class=num>{_e(format_value(r.b))}<br><span class=k>{_e(_ci(r.b_ci))}</span></td>"
        f"<td class=num>{_e(_delta(r))}<br><span class=k>{_e(_ci(r.delta_ci, signed=True))}</span></td>"
        f"<td class=num>{_e(_p(r))}</td><td>{_verdict_html(r.verdict)}</td></tr>" for r in report.tested)
    parts.append('<section id="tested"><h2>Tested metrics</h2><p class="meta">'
                 f"{_e(report.settings.get('method', ''))}; {_e(report.settings.get('n_boot', ''))} resamples, "
                 f"intervals at {1 - float(report.settings.get('alpha', 0.05)):.0%}.</p>"
                 "<table><thead><tr><th>metric</th><th class=num>A [interval]</th><th class=num>B [interval]</th>"
                 "<th class=num>B − A [interval]</th><th class=num>McNemar p</th><th>verdict</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table></section>")
    parts.append('<section id="shift"><h2>How far B moved from A</h2><ul>'
                 + "".join(f"<li>{_e(x)}</li>" for x in _moved_lines(report)) + "</ul></section>")
    parts.append('<section id="diagnoses"><h2>Diagnoses</h2>' + "".join(
        f"<h3>{tag}</h3>" + _diagnoses_html(side) for tag, side in (("A", report.a), ("B", report.b))) + "</section>")
    a_results = {r.name: r for r in report.a.results}
    check_rows = "".join(
        f"<tr><td>{_e(r.name)}</td><td>{_status_html(a_results[r.name].status if r.name in a_results else None)}"
        f"</td><td>{_e(a_results[r.name].summary if r.name in a_results else '')}</td>"
        f"<td>{_status_html(r.status)}</td><td>{_e(r.summary)}</td></tr>" for r in report.b.results)
    parts.append('<section id="checks"><h2>Checks</h2><table class="checks"><thead><tr><th>check</th><th>A</th>'
                 f"<th>A's summary</th><th>B</th><th>B's summary</th></tr></thead><tbody>{check_rows}</tbody>"
                 "</table></section>")
    plots = compare_plots([("A", report.a), ("B", report.b)])
    parts.append(f'<section id="plots"><h2>A and B on the same axes</h2>{figures_html(plots)}</section>')
    all_rows = "".join(
        f"<tr><td>{_e(r.key)}</td><td class=num>{_e(format_value(r.a))}</td><td class=num>{_e(format_value(r.b))}"
        f"</td><td class=num>{_e(_delta(r))}</td><td>{_verdict_html(r.verdict)}</td></tr>" for r in report.metrics)
    parts.append(f'<section id="metrics"><h2>Every metric</h2><details><summary>{len(report.metrics)} metrics'
                 "</summary><table><thead><tr><th>metric</th><th class=num>A</th><th class=num>B</th>"
                 f"<th class=num>B − A</th><th>verdict</th></tr></thead><tbody>{all_rows}</tbody></table>"
                 "</details></section>")
    parts.append(extra_sections_html(extra_sections))
    parts.append(f"<footer>facediag {_e(report.facediag_version)} · report schema {_e(report.schema_version)}"
                 f"<br>command: <code>{_e(report.command)}</code></footer></main></body></html>")
    return "\n".join(parts) + "\n"


def _diagnoses_html(side) -> str:
    diagnoses = ordered_diagnoses(side)
    if not diagnoses:
        return '<p class="ok">No problems diagnosed</p>'
    return "".join(
        f'<article class="diagnosis sev-{_e(d.severity)}"><h3><span class="sev">{_e(d.severity.upper())}</span>'
        f"<code>{_e(d.id)}</code></h3><p><strong>{_e(d.summary)}</strong></p>"
        + ("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in d.evidence) + "</ul>" if d.evidence else "")
        + (f"<p><strong>What to do:</strong> {_e(d.remedy)}</p>" if d.remedy else "") + "</article>"
        for d in diagnoses)


# ---------------------------------------------------------------------------- markdown
def render_compare_markdown(report: CompareReport) -> str:
    passed = report.passed
    lines = [f"# facediag compare: {'PASSED' if passed else 'FAILED'}", ""]
    lines += [f"- {_text(text)}" for _, text in _sides(report)]
    lines += [f"- data {_text(dataset_text(report.dataset))}", "", f"**{_text(report.summary())}**", "",
              f"**Gate: {'PASSED' if passed else 'FAILED'}**", ""]
    lines += [f"- {_text(x)}" for x in report.gate.get("lines", [])] + [""]
    lines += ["## Tested metrics", "", "| metric | A | B | B − A | interval of B − A | McNemar p | verdict |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {_text(r.key)} | {format_value(r.a)} | {format_value(r.b)} | {_delta(r)} | {_ci(r.delta_ci, signed=True)} | "
              f"{_p(r)} | {'**worse**' if r.verdict == WORSE else _text(r.verdict)} |" for r in report.tested]
    lines += ["", "## How far B moved from A", ""] + [f"- {_text(x)}" for x in _moved_lines(report)] + [""]
    for tag, side in (("A", report.a), ("B", report.b)):
        lines += [f"## Diagnoses of {tag}", ""]
        diagnoses = ordered_diagnoses(side)
        lines += [f"- **{_text(d.severity.upper())}** {_code(d.id)}: {_text(d.summary)}" for d in diagnoses] or \
                 ["No problems diagnosed."]
        lines.append("")
    a_status = {r.name: r.status.value for r in report.a.results}
    lines += ["## Checks", "", "| check | A | B | B's summary |", "|---|---|---|---|"]
    lines += [f"| {_text(r.name)} | {a_status.get(r.name, '')} | {r.status.value} | {_text(r.summary)} |"
              for r in report.b.results]
    lines += ["", "<details><summary>Every metric</summary>", "", "| metric | A | B | B − A |", "|---|---:|---:|---:|"]
    lines += [f"| {_text(r.key)} | {format_value(r.a)} | {format_value(r.b)} | {_delta(r)} |" for r in report.metrics]
    lines += ["", "</details>", "", f"<sub>facediag {_text(report.facediag_version)} · {_code(report.command)}</sub>"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- junit
def render_compare_junit(report: CompareReport) -> str:
    """One testcase per tested metric; a gated metric that failed the gate is a <failure>."""
    failed = set(report.gate.get("failed", []))
    keys = [r.key for r in report.tested] + [k for k in failed if report.row(k) is None or report.row(k).verdict is None]
    suite_attrs = {"tests": str(len(keys)), "failures": str(len(failed)), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", name="facediag compare", **suite_attrs)
    suite = ET.SubElement(root, "testsuite", name="facediag.compare", timestamp=report.created, **suite_attrs)
    gate_lines = report.gate.get("lines", [])
    for key in keys:
        case = ET.SubElement(suite, "testcase", classname="facediag.compare", name=key, time="0")
        row = report.row(key)
        text = "" if row is None else (f"A {format_value(row.a)} {_ci(row.a_ci)}; B {format_value(row.b)} "
                                       f"{_ci(row.b_ci)}; B − A {_delta(row)} {_ci(row.delta_ci, signed=True)}; "
                                       f"verdict {row.verdict}")
        if key in failed:
            line = next((x for x in gate_lines if f" {key} " in f" {x} " or f" {key}:" in x), text)
            ET.SubElement(case, "failure", message=line, type="REGRESSION").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.SubElement(suite, "system-out").text = "\n".join([report.summary(), *gate_lines, *_moved_lines(report)])
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ------------------------------------------------------------------------------ output
def render_compare(report: CompareReport, fmt: str, extra_sections: list[tuple[str, str]] | None = None) -> str:
    """The comparison as text in ``fmt``; ``extra_sections`` (title, HTML) only apply to html."""
    if fmt not in FORMATS:
        raise FacediagError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")
    return {"json": report.to_json, "html": lambda: render_compare_html(report, extra_sections),
            "md": lambda: render_compare_markdown(report), "junit": lambda: render_compare_junit(report)}[fmt]()


def write_compare(report: CompareReport, out_dir: str | Path,
                  extra_sections: list[tuple[str, str]] | None = None) -> dict[str, Path]:
    """report.json, report.html, report.md and junit.xml in ``out_dir``, as run-all writes them."""
    out_dir = Path(out_dir)
    return {fmt: atomic_write_text(out_dir / FILENAMES[fmt], render_compare(report, fmt, extra_sections))
            for fmt in FORMATS}
