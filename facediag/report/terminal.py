"""The Rich terminal report: diagnoses first, then the checks table, findings, verdict and gate."""
from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from facediag.registry import Severity, Status
from facediag.report import (format_evidence, format_value, headline_metrics, notable_findings,
                             ordered_diagnoses, verdict_details)

STATUS_STYLE = {Status.PASS: "bold green", Status.WARN: "bold yellow", Status.FAIL: "bold red",
                Status.SKIP: "dim", Status.ERROR: "bold magenta"}
SEVERITY_STYLE = {"failure": "red", "warning": "yellow", "info": "blue"}
# Below this width the metrics column folds under the summary instead of squeezing it.
WIDE = 96


def render_terminal(report, console: Console) -> None:
    """Print the whole report to ``console``."""
    _diagnoses(report, console)
    if report.results:
        console.print(_checks_table(report, console.width))
        _findings(report, console)
    console.print()
    console.print(Text.assemble((report.status.value, STATUS_STYLE[report.status]), ": ",
                                verdict_details(report)))
    if report.gate:
        _gate(report.gate, console)


def _diagnoses(report, console: Console) -> None:
    diagnoses = ordered_diagnoses(report)
    if not diagnoses:
        console.print(Text("No problems diagnosed", style="bold green"))
        return
    for d in diagnoses:
        style = SEVERITY_STYLE.get(d.severity, "white")
        body = [Text(d.summary, style="bold")]
        body += [Text.assemble("  • ", item) for item in d.evidence]
        if d.remedy:
            body.append(Text.assemble(("What to do: ", "bold"), d.remedy))
        if d.checks:
            body.append(Text(f"from: {', '.join(d.checks)}", style="dim"))
        title = f"[{style} bold]{escape(d.id)}[/] [{style}]· {escape(d.severity.upper())}[/]"
        console.print(Panel(Group(*body), title=title, title_align="left", border_style=style))


def _metrics_text(result, sep: str) -> Text:
    return Text(sep.join(f"{name} {format_value(v)}" for name, v in headline_metrics(result)),
                style="cyan")


def _checks_table(report, width: int) -> Table:
    wide = width >= WIDE
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", expand=True, pad_edge=False)
    table.add_column("Check", no_wrap=wide, overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Summary", ratio=3, overflow="fold")
    if wide:
        table.add_column("Key metrics", ratio=2, overflow="fold")
    for r in report.results:
        status = Text(r.status.value, style=STATUS_STYLE[r.status])
        summary = Text(r.summary, style="dim" if r.status is Status.SKIP else "")
        if wide:
            table.add_row(r.name, status, summary, _metrics_text(r, "\n"))
        else:
            metrics = _metrics_text(r, " · ")
            table.add_row(r.name, status, Text.assemble(summary, "\n", metrics) if metrics else summary)
    return table


def _findings(report, console: Console) -> None:
    rows = [(r, f) for r in report.results for f in notable_findings(r)]
    if not rows:
        return
    console.print(Text("Findings", style="bold"))
    # A grid keeps wrapped lines indented under the message, not under the marker.
    grid = Table.grid(padding=(0, 1), pad_edge=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for r, f in rows:
        failure = f.severity is Severity.FAILURE
        line = Text.assemble((r.name, "bold"), ": ", f.message)
        if f.evidence:
            line.append(f" ({format_evidence(f.evidence)})", style="dim")
        grid.add_row(Text("✗" if failure else "!", style="red" if failure else "yellow"), line)
    console.print(grid)


def _gate(gate: dict, console: Console) -> None:
    passed = bool(gate.get("passed"))
    console.print(Text(f"Gate: {'PASSED' if passed else 'FAILED'}",
                       style="bold green" if passed else "bold red"))
    for line in gate.get("lines", []):
        console.print(Text(f"  {line}"))
