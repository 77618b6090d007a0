"""GitHub-flavoured Markdown for a job summary or PR comment: diagnoses first, then the checks."""
from __future__ import annotations

import html
import re

from facediag.report import (format_evidence, format_value, headline_metrics, notable_findings,
                             ordered_diagnoses, verdict_details)


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


def render_markdown(report) -> str:
    status = report.status.value
    lines = [f"# facediag: {status}", "", f"**{status}**: {_text(verdict_details(report))}", ""]

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

    lines.append(f"<sub>facediag {_text(report.facediag_version)} · {_code(report.command)}</sub>")
    return "\n".join(lines) + "\n"
