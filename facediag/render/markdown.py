"""GitHub-flavoured Markdown for a job summary or PR comment: diagnoses first, then the checks."""
from __future__ import annotations

import html
import re

from facediag.formatting import format_value
from facediag.metrics.verdict import WORSE
from facediag.render.bench_tables import context_lines, tables
from facediag.render.compare_text import ci_text, delta_text, moved_lines, p_text, parity_lines, sides
from facediag.render.group_tables import result_tables
from facediag.render.history_text import headline, metric_label, metric_rows, onset_lines, stop_line
from facediag.results import BenchReport, CompareReport
from facediag.render.text import (
    dataset_text,
    explains_text,
    format_evidence,
    headline_metrics,
    notable_findings,
    note_lines,
    threshold_lines,
    ordered_diagnoses,
    problem_lines,
    verdict_details,
)


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def _text(value) -> str:
    """Plain text as inline Markdown: HTML specials (GitHub renders raw HTML), Markdown specials
    (pipes would split a table cell) and newlines escaped."""
    escaped = _MD_SPECIAL.sub(r"\\\1", html.escape(str(value), quote=False))
    return escaped.replace("\n", "<br>")


def _code(value) -> str:
    """An inline code span that holds any backticks ``value`` contains (CommonMark's rule)."""
    value = str(value).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def render_run_markdown(report) -> str:
    status = report.status.value
    lines = [f"# facediag: {status}", "", f"**{status}**: {_text(verdict_details(report))}", ""]
    notes = [*note_lines(report.dataset), *threshold_lines(report)]
    lines += [f"> note: {_text(n)}" for n in notes] + ([""] if notes else [])

    lines += ["## Diagnoses", ""]
    diagnoses = ordered_diagnoses(report)
    if not diagnoses:
        lines += ["No problems diagnosed.", ""]
    for d in diagnoses:
        lines += [f"### {_text(d.severity.upper())}: {_code(d.id)}", "", _text(d.summary), ""]
        if d.evidence:
            lines += [f"- {_text(x)}" for x in d.evidence] + [""]
        if d.remedy:
            lines += [f"**What to do:** {_text(d.remedy)}", ""]
        if d.explains:
            lines += [f"_{_text(explains_text(d))}_", ""]

    if report.gate:
        passed = bool(report.gate.get("passed"))
        lines += ["## Gate", "", f"**Gate: {'PASSED' if passed else 'FAILED'}**", ""]
        lines += [f"- {_text(line)}" for line in report.gate.get("lines", [])] + [""]

    if report.results:
        lines += ["## Checks", "", "| Check | Status | Summary | Key metrics |", "|---|---|---|---|"]
        for r in report.results:
            metrics = "<br>".join(f"{_text(n)} {format_value(v)}" for n, v in headline_metrics(r))
            lines.append(f"| {_text(r.name)} | {r.status.value} | {_text(r.summary)} | {metrics} |")
        lines.append("")

    findings = [(r, f) for r in report.results for f in notable_findings(r)]
    if findings:
        lines += ["### Findings", ""]
        for r, f in findings:
            evidence = f" ({_text(format_evidence(f.evidence))})" if f.evidence else ""
            lines.append(f"- **{_text(r.name)}** ({f.severity.value}): {_text(f.message)}{evidence}")
        lines.append("")

    for r in report.results:  # a check's tables (the demographic check's per-group rates)
        for title, header, rows, foot in result_tables(r):
            lines += [f"### {_text(r.name)}: {_text(title)}", "", "| " + " | ".join(_text(h) for h in header) + " |",
                      "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_text(c) for c in row) + " |" for row in rows]
            lines += [""] + [f"- {_text(x)}" for x in foot] + [""]

    problems = problem_lines(report.dataset)
    if problems:
        lines += ["## Files that could not be used", "", _text(problems[0]), ""]
        lines += [f"- {_text(x)}" for x in problems[1:]] + [""]

    lines.append(f"<sub>facediag {_text(report.facediag_version)} · {_code(report.command)}</sub>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- compare
def render_compare_markdown(report: CompareReport) -> str:
    passed = report.passed
    lines = [f"# facediag compare: {'PASSED' if passed else 'FAILED'}", ""]
    lines += [f"- {_text(text)}" for _, text in sides(report)]
    lines += [f"- data {_text(dataset_text(report.dataset))}", "", f"**{_text(report.summary())}**", "",
              f"**Gate: {'PASSED' if passed else 'FAILED'}**", ""]
    lines += [f"- {_text(x)}" for x in report.gate.get("lines", [])] + [""]
    lines += ["## Tested metrics", "", "| metric | A | B | B − A | interval of B − A | McNemar p | verdict |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {_text(r.key)} | {format_value(r.a)} | {format_value(r.b)} | {delta_text(r)} | "
              f"{ci_text(r.delta_ci, signed=True)} | {p_text(r)} | "
              f"{'**worse**' if r.verdict == WORSE else _text(r.verdict)} |" for r in report.tested]
    lines += ["", "## How far B moved from A", ""] + [f"- {_text(x)}" for x in moved_lines(report)] + [""]
    if report.parity:
        lines += ["## Parity: one network in two formats", ""] + [f"- {_text(x)}" for x in parity_lines(report)] + [""]
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
    lines += [f"| {_text(r.key)} | {format_value(r.a)} | {format_value(r.b)} | {delta_text(r)} |"
              for r in report.metrics]
    lines += ["", "</details>", "", f"<sub>facediag {_text(report.facediag_version)} · {_code(report.command)}</sub>"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ bench
def _md(value) -> str:
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def render_bench_markdown(report: BenchReport) -> str:
    lines = [f"# facediag bench {report.kind}", ""]
    for title, header, rows, foot in tables(report):
        lines += [f"## {_md(title)}", "", "| " + " | ".join(map(_md, header)) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_md, row)) + " |" for row in rows]
        lines += [""] + [f"- {_md(x)}" for x in foot] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {_md(n)}" for n in report.notes] + [""]
    lines += [f"- {_md(x)}" for x in context_lines(report)]
    lines += ["", f"<sub>facediag {_md(report.facediag_version)} · `{_md(report.command)}`</sub>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- monitor history
def render_history_markdown(history) -> str:
    lines = ["# facediag monitor history", "", f"**{_text(headline(history))}**", ""]
    lines += [f"> **{_text(stop_line(history))}**", ""]
    lines += ["## Diagnoses and trends, where they began", ""]
    lines += [f"- {_text(x)}" for x in onset_lines(history)] or ["No diagnosis or trend at any call."]
    lines += ["", "## Metrics", "", "| metric | first | last | change | over steps |", "|---|---:|---:|---:|---|"]
    for name, first, last, change, worse, spark in metric_rows(history):
        label = metric_label(name)
        name_cell = _code(name) + (f" ({_text(label)})" if label else "")
        lines.append(f"| {name_cell} | {first} | {last} | {'**' + change + '**' if worse else change} | {spark} |")
    names = history.metric_names
    lines += ["", "<details><summary>Every call</summary>", "",
              "| step | stop | diagnoses | " + " | ".join(_text(n) for n in names) + " |",
              "|---:|---|---|" + "---:|" * len(names)]
    for p in history.points:
        values = " | ".join(format_value(p.metrics.get(n)) for n in names)
        lines.append(f"| {format_value(p.step)} | {'**stop**' if p.should_stop else ''} | "
                     f"{_text(', '.join(p.diagnoses))} | {values} |")
    lines += ["", "</details>", "", f"<sub>facediag {_text(history.facediag_version)} · {_code(history.source)}</sub>"]
    return "\n".join(lines) + "\n"
