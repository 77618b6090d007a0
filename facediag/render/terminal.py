"""The Rich terminal report: diagnoses first, then the checks table, findings, verdict and gate."""
from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from facediag.checks.base import Severity, Status
from facediag.metrics.verdict import BETTER, NO_CHANGE, WORSE
from facediag.render.bench_tables import context_lines, tables
from facediag.render.group_tables import result_tables
from facediag.render.compare_text import (
    changed_untested,
    ci_text,
    delta_text,
    moved_lines,
    p_text,
    parity_lines,
    sides,
)
from facediag.render.history_text import headline, metric_rows, onset_lines, stop_line
from facediag.results import BenchReport, CompareReport
from facediag.results.history import MonitorHistory
from facediag.formatting import format_value
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

STATUS_STYLE = {Status.PASS: "bold green", Status.WARN: "bold yellow", Status.FAIL: "bold red",
                Status.SKIP: "dim", Status.ERROR: "bold magenta"}
SEVERITY_STYLE = {"failure": "red", "warning": "yellow", "info": "blue"}
# Below this width the metrics column folds under the summary instead of squeezing it.
WIDE = 96


def render_run_terminal(report, console: Console) -> None:
    """Print the whole report to ``console``."""
    _diagnoses(report, console)
    if report.results:
        console.print(_checks_table(report, console.width))
        _findings(report, console)
        _check_tables(report, console)
    for line in [*note_lines(report.dataset), *threshold_lines(report)]:
        console.print(Text(f"note: {line}", style="yellow"))
    problems = problem_lines(report.dataset)
    if problems:
        console.print(Text(problems[0], style="bold yellow"))
        for line in problems[1:]:
            console.print(f"  {line}", highlight=False, markup=False)
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
        if d.explains:
            body.append(Text(explains_text(d), style="dim"))
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


def _check_tables(report, console: Console) -> None:
    """Tables a check ships (the demographic check's per-group rates), under the findings."""
    for r in report.results:
        for title, header, rows, foot in result_tables(r):
            table = Table(title=f"{r.name}: {title}", title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
            for h in header:
                table.add_column(escape(h), overflow="fold")
            for row in rows:
                table.add_row(*map(escape, row))
            console.print(table)
            for line in foot:
                console.print(f"  [dim]{escape(line)}[/]", highlight=False)


def _gate(gate: dict, console: Console) -> None:
    passed = bool(gate.get("passed"))
    console.print(Text(f"Gate: {'PASSED' if passed else 'FAILED'}",
                       style="bold green" if passed else "bold red"))
    for line in gate.get("lines", []):
        console.print(Text(f"  {line}"))


# ---------------------------------------------------------------------------- compare
VERDICT_STYLE = {BETTER: "bold green", WORSE: "bold red", NO_CHANGE: "dim"}


def render_compare_terminal(report: CompareReport, console: Console) -> None:
    for tag, text in sides(report):
        console.print(Text(text, style="bold" if tag == "B" else ""))
    console.print(Text(f"data {dataset_text(report.dataset)}", style="dim"))
    _compare_tested(report, console)
    _compare_moved(report, console)
    _compare_diagnoses(report, console)
    _compare_checks(report, console)
    _compare_changed(report, console)
    _compare_gate(report, console)


def _compare_tested(report: CompareReport, console: Console) -> None:
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
        p = f" (p {p_text(r)})" if r.p_value is not None else ""
        table.add_row(f"  {r.metric}", format_value(r.a), format_value(r.b),
                      Text.assemble(delta_text(r), "\n", (ci_text(r.delta_ci, signed=True), "dim")),
                      Text.assemble((r.verdict, VERDICT_STYLE.get(r.verdict, "cyan")), (p, "dim")))
    console.print(table)


def _compare_moved(report: CompareReport, console: Console) -> None:
    console.print(Text("How far B moved from A", style="bold"))
    for line in moved_lines(report):
        console.print(f"  {line}", highlight=False)
    if report.parity:
        console.print(Text("Parity: one network in two formats", style="bold"))
        for line in parity_lines(report):
            console.print(f"  {line}", highlight=False)


def _compare_diagnoses(report: CompareReport, console: Console) -> None:
    for tag, side in (("A", report.a), ("B", report.b)):
        diagnoses = ordered_diagnoses(side)
        console.print(Text(f"Diagnoses of {tag}", style="bold"))
        if not diagnoses:
            console.print(Text("  no problems diagnosed", style="green"))
        for d in diagnoses:
            style = "red" if d.severity == "failure" else "yellow" if d.severity == "warning" else "blue"
            console.print(Text.assemble("  ", (d.id, f"bold {style}"), f": {d.summary}"))


def _compare_checks(report: CompareReport, console: Console) -> None:
    checks = Table(box=box.SIMPLE_HEAD, header_style="bold", title="Checks", title_justify="left", expand=True)
    for col in ("check", "A", "B", "B's summary"):
        checks.add_column(col, overflow="fold", no_wrap=col in ("A", "B"))
    a_status = {r.name: r.status for r in report.a.results}
    for r in report.b.results:
        sa = a_status.get(r.name)
        checks.add_row(r.name, Text(sa.value, STATUS_STYLE[sa]) if sa else "",
                       Text(r.status.value, STATUS_STYLE[r.status]), r.summary)
    console.print(checks)


def _compare_changed(report: CompareReport, console: Console) -> None:
    changed = changed_untested(report)
    if not changed:
        return
    other = Table(box=box.SIMPLE_HEAD, header_style="bold", title_justify="left",
                  title=f"Other metrics that changed ({len(changed)}; every metric is in report.json/html)")
    for col in ("metric", "A", "B", "B − A"):
        other.add_column(col, justify="left" if col == "metric" else "right")
    for r in changed:
        other.add_row(r.key, format_value(r.a), format_value(r.b), delta_text(r))
    console.print(other)


def _compare_gate(report: CompareReport, console: Console) -> None:
    console.print()
    console.print(Text(report.summary(), style="bold"))
    passed = report.passed
    console.print(Text(f"Gate: {'PASSED' if passed else 'FAILED'}", style="bold green" if passed else "bold red"))
    for line in report.gate.get("lines", []):
        console.print(f"  {line}", highlight=False)


# ------------------------------------------------------------------------------ bench
def render_bench_terminal(report: BenchReport, console) -> None:
    width = console.width
    if not console.is_terminal:  # piped: natural table width rather than 80 folded columns
        console.width = max(width, 240)
    try:
        _print_tables(report, console)
    finally:
        console.width = width


def _print_tables(report: BenchReport, console) -> None:
    for title, header, rows, foot in tables(report):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAVY)
        for i, h in enumerate(header):
            numeric = all(row[i][:1] in "0123456789+-−—." for row in rows)
            table.add_column(escape(h), justify="right" if numeric else "left", overflow="fold")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        for line in foot:
            console.print(f"  [dim]{escape(line)}[/]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for line in context_lines(report):
        console.print(f"[dim]{escape(line)}[/]", highlight=False)


# ---------------------------------------------------------------------------- monitor history
def render_history_terminal(history, console: Console) -> None:
    console.print(Text(f"facediag monitor history: {headline(history)}", style="bold"), highlight=False)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("metric", overflow="fold")
    for col in ("first", "last", "change"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("over steps", no_wrap=True)
    for name, first, last, change, worse, spark in metric_rows(history):
        table.add_row(name, first, last, Text(change, style="red" if worse else ""), Text(spark, style="cyan"))
    console.print(table)
    for line in onset_lines(history) or ["no diagnosis or trend at any call"]:
        console.print(f"  {escape(line)}", highlight=False)
    console.print(Text(stop_line(history), style="bold green" if history.stop is None else "bold red"), highlight=False)


def render_terminal(result, console: Console) -> None:
    """Any result (run, compare, bench, monitor history) in the terminal."""
    if isinstance(result, MonitorHistory):
        render_history_terminal(result, console)
    elif isinstance(result, CompareReport):
        render_compare_terminal(result, console)
    elif isinstance(result, BenchReport):
        render_bench_terminal(result, console)
    else:
        render_run_terminal(result, console)
