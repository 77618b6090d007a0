"""render: a saved report.json (of run-all or compare) in another format."""
from __future__ import annotations

from pathlib import Path

import click

from facediag.cli.options import OUT, console, handle_errors
from facediag.io import atomic_write_text


@click.command()
@click.argument("report_json", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "junit", "json", "terminal"]), default="terminal",
              show_default=True)
@OUT(help="Write to this file instead of stdout.")
@handle_errors
def render(report_json, fmt, out):
    """Re-render any saved result (run-all's or compare's report.json, bench's
    bench-*.json, a Monitor's history .jsonl) as HTML, Markdown, JUnit XML or in the terminal.

    \b
    Examples:
      facediag render reports/run1/report.json --format html -o run1.html
      facediag render reports/compare/report.json
      facediag render reports/bench/bench-accuracy.json --format md
      facediag render runs/monitor.jsonl --format html -o monitor.html
    """
    # the rendering modules load when the command runs, not at every start of the CLI
    from facediag.outputs import check_outputs, out_file
    from facediag.render import render as render_report
    from facediag.render import render_terminal
    from facediag.results import load_result
    from facediag.results.history import MonitorHistory, looks_like_history

    if fmt != "terminal":
        check_outputs(out_file("--out", out), inputs=[("REPORT_JSON", report_json)])
    if looks_like_history(report_json):  # each metric over steps, where diagnoses began, the stop
        from facediag.monitor.history import read_history  # the monitor package: only for a history

        report = MonitorHistory.from_records(read_history(report_json), report_json)
    else:
        report = load_result(report_json)  # a run, compare or bench result, by its kind
    if fmt == "terminal":
        render_terminal(report, console)
        return
    text = render_report(report, fmt)
    if out:
        atomic_write_text(out, text)
        console.print(f"wrote {out}")
    else:
        click.echo(text)
