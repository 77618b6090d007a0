"""One self-contained HTML page: inline CSS, plots as data URIs, nothing fetched from anywhere."""
from __future__ import annotations

import html
from typing import Any, Iterable

from facediag.formatting import format_value
from facediag.render.text import explains_text, format_evidence, headline_metrics, ordered_diagnoses, verdict_details
from facediag.metrics.verdict import BETTER, NO_CHANGE, WORSE
from facediag.render.bench_tables import context_lines, tables
from facediag.render.compare_text import ci_text, delta_text, moved_lines, p_text, parity_lines, sides
from facediag.render.group_tables import result_tables
from facediag.render.history_text import headline, metric_label, metric_rows, onset_lines, stop_line
from facediag.render.plots import Plot, bench_plots, compare_plots, history_plots, result_plots
from facediag.render.text import dataset_text, note_lines, problem_lines, threshold_lines
from facediag.results import BenchReport, CompareReport

_CSS = """
:root{--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e;--skip:#6e7781;--error:#a626a4;--info:#0969da;
--border:#d0d7de;--muted:#57606a;--soft:#f6f8fa}
*{box-sizing:border-box}
.faces{margin:10px 0}.face-row{display:flex;align-items:flex-start;gap:8px;margin:4px 0}
.face-label{width:90px;font-size:13px;color:var(--muted);padding-top:20px}.face{margin:0;text-align:center;width:84px}
.face img{width:72px;height:72px;border-radius:4px;image-rendering:auto}\
.face figcaption{font-size:11px;color:var(--muted)}
.noface{display:inline-block;width:72px;height:72px;line-height:72px;font-size:11px;background:var(--soft)}
body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
color:#1f2328;background:#fff}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{margin:0 0 6px;font-size:26px}
h2{margin:36px 0 12px;padding-bottom:4px;border-bottom:1px solid var(--border);font-size:20px}
h3{margin:0 0 6px;font-size:16px}#run h3{margin-top:16px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:var(--soft);padding:8px 12px;overflow:auto;border-radius:6px}
a{color:var(--info);text-decoration:none}
.status{display:inline-block;min-width:52px;text-align:center;padding:1px 8px;border-radius:10px;
font-size:12px;font-weight:600;color:#fff;letter-spacing:.03em;vertical-align:middle}
.s-PASS{background:var(--pass)}.s-WARN{background:var(--warn)}.s-FAIL{background:var(--fail)}
.s-SKIP{background:var(--skip)}.s-ERROR{background:var(--error)}
.verdict,.meta,.title,.evidence,.from{color:var(--muted)}
.meta{font-size:13px}
.ok{color:var(--pass);font-weight:600}
.diagnosis{border:1px solid var(--border);border-left:6px solid var(--info);border-radius:6px;
padding:12px 16px;margin:12px 0;background:var(--soft)}
.diagnosis.sev-failure{border-left-color:var(--fail)}.diagnosis.sev-warning{border-left-color:var(--warn)}
.diagnosis p{margin:6px 0}.diagnosis ul{margin:6px 0;padding-left:22px}
.sev{font-size:12px;font-weight:700;letter-spacing:.05em;margin-right:6px}
.sev-failure .sev,li.sev-failure::marker{color:var(--fail)}
.sev-warning .sev,li.sev-warning::marker{color:var(--warn)}
.sev-info .sev,li.sev-info::marker{color:var(--info)}
.gate{padding:10px 16px;border-radius:6px;border:1px solid var(--border)}
.gate.passed{border-left:6px solid var(--pass)}.gate.failed{border-left:6px solid var(--fail)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--border);vertical-align:top}
th{background:var(--soft);font-weight:600}
.checks td:nth-child(2){white-space:nowrap}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.k{color:var(--muted)}
.kv{width:auto}.kv th{background:none;color:var(--muted);font-weight:normal;white-space:nowrap}
.kv td{word-break:break-all}
.check{padding:16px 0}.check+.check{border-top:1px solid var(--border)}
.findings{padding-left:22px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px;margin:12px 0}
figure{margin:0;border:1px solid var(--border);border-radius:6px;padding:8px}
figure img{width:100%;height:auto;display:block}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
footer{margin-top:40px;padding-top:12px;border-top:1px solid var(--border);color:var(--muted);font-size:13px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(name: str) -> str:
    return f"check-{_e(name)}"


def _status(status) -> str:
    return f'<span class="status s-{_e(status.value)}">{_e(status.value)}</span>'


def render_run_html(report, extra_sections: list[tuple[str, str]] | None = None) -> str:
    """The report as one HTML page. ``extra_sections`` are (title, trusted HTML) added after the checks."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>facediag report: {_e(report.status.value)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        _header(report),
        _diagnoses(report),
    ]
    if report.gate:
        parts.append(_gate(report.gate))
    parts.append(_checks_table(report))
    notes = [*note_lines(report.dataset), *threshold_lines(report)]
    if notes:
        parts.append('<section id="notes"><ul>' + "".join(f'<li class="sev-warning">note: {_e(n)}</li>' for n in notes)
                     + "</ul></section>")
    problems = problem_lines(report.dataset, limit=20)
    if problems:
        parts.append(f'<section id="problems"><h2>Files that could not be used</h2><p>{_e(problems[0])}</p><ul>'
                     + "".join(f"<li><code>{_e(x)}</code></li>" for x in problems[1:]) + "</ul></section>")
    parts.append(extra_sections_html(extra_sections))
    parts += [_check_details(report), _run_info(report), _footer(report), "</main></body></html>"]
    return "\n".join(parts) + "\n"


def extra_sections_html(sections: list[tuple[str, str]] | None) -> str:
    """(title, trusted HTML) pairs as page sections: figures a caller adds to a report."""
    return "\n".join(f'<section class="extra"><h2>{_e(title)}</h2>\n{body}\n</section>'
                     for title, body in sections or [])


def figures_html(plots: Iterable[Plot]) -> str:
    """Plots as a grid of figures (empty string when there are none); extra sections reuse it."""
    # The title is drawn in the image; alt carries it for screen readers.
    figures = [f'<figure><img src="{p.data_uri}" alt="{_e(p.title)}"></figure>' for p in plots]
    return f'<div class="plots">{"".join(figures)}</div>' if figures else ""


def _header(report) -> str:
    return (f"<header><h1>facediag report {_status(report.status)}</h1>"
            f'<p class="verdict">{_e(verdict_details(report))}</p>'
            f'<p class="meta">created {_e(report.created)}</p></header>')


def _diagnoses(report) -> str:
    diagnoses = ordered_diagnoses(report)
    if not diagnoses:
        return '<section id="diagnoses"><h2>Diagnoses</h2><p class="ok">No problems diagnosed</p></section>'
    cards = []
    for d in diagnoses:
        body = [f'<h3><span class="sev">{_e(d.severity.upper())}</span><code>{_e(d.id)}</code></h3>',
                f"<p><strong>{_e(d.summary)}</strong></p>"]
        if d.evidence:
            body.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in d.evidence) + "</ul>")
        if d.remedy:
            body.append(f"<p><strong>What to do:</strong> {_e(d.remedy)}</p>")
        if d.explains:
            body.append(f'<p class="from">{_e(explains_text(d))}</p>')
        if d.checks:
            links = ", ".join(f'<a href="#{_anchor(c)}">{_e(c)}</a>' for c in d.checks)
            body.append(f'<p class="from">from: {links}</p>')
        cards.append(f'<article class="diagnosis sev-{_e(d.severity.value)}">{"".join(body)}</article>')
    return '<section id="diagnoses"><h2>Diagnoses</h2>' + "\n".join(cards) + "</section>"


def _gate(gate: dict) -> str:
    passed = bool(gate.get("passed"))
    lines = "".join(f"<li>{_e(line)}</li>" for line in gate.get("lines", []))
    return (f'<section id="gate"><h2>Gate</h2><div class="gate {"passed" if passed else "failed"}">'
            f"<strong>{'PASSED' if passed else 'FAILED'}</strong>"
            + (f"<ul>{lines}</ul>" if lines else "") + "</div></section>")


def _metrics_cell(result) -> str:
    return "<br>".join(f'<span class="k">{_e(name)}</span> {_e(format_value(v))}'
                       for name, v in headline_metrics(result))


def _checks_table(report) -> str:
    rows = []
    for r in report.results:
        title = f'<div class="title">{_e(r.title)}</div>' if r.title else ""
        rows.append(f'<tr><td><a href="#{_anchor(r.name)}">{_e(r.name)}</a>{title}</td>'
                    f"<td>{_status(r.status)}</td><td>{_e(r.summary)}</td>"
                    f'<td class="num">{_metrics_cell(r)}</td><td class="num">{r.seconds:.2f} s</td></tr>')
    return ('<section id="checks"><h2>Checks</h2><table class="checks"><thead><tr><th>Check</th>'
            "<th>Status</th><th>Summary</th><th>Key metrics</th><th>Time</th></tr></thead><tbody>"
            + "\n".join(rows) + "</tbody></table></section>")


def _check_details(report) -> str:
    sections = []
    for r in report.results:
        body = [f'<h3>{_e(r.name)} {_status(r.status)}</h3>']
        if r.title:
            body.append(f'<div class="title">{_e(r.title)}</div>')
        body.append(f"<p>{_e(r.summary)}</p>")
        if r.findings:
            items = "".join(
                f'<li class="sev-{_e(f.severity.value)}"><strong>{_e(f.severity.value)}</strong> '
                f"{_e(f.message)}"
                + (f' <span class="evidence">({_e(format_evidence(f.evidence))})</span>' if f.evidence else "")
                + "</li>" for f in r.findings)
            body.append(f'<ul class="findings">{items}</ul>')
        if r.metrics:
            body.append(f"<details><summary>Metrics ({len(r.metrics)})</summary>{_kv_table(r.metrics)}</details>")
        body.append(check_tables_html(result_tables(r)))
        body.append(figures_html(result_plots(r)))
        body.append(faces_html(r.data.get("faces") or []))
        if r.data.get("traceback"):
            body.append(f"<details><summary>Traceback</summary><pre>{_e(r.data['traceback'])}</pre></details>")
        sections.append(f'<section class="check" id="{_anchor(r.name)}">{"".join(body)}</section>')
    return '<section id="details"><h2>Check details</h2>' + "\n".join(sections) + "</section>"


def check_tables_html(tables) -> str:
    """A check's tables (render.group_tables): title, table, footnotes."""
    out = []
    for title, header, rows, foot in tables:
        out.append(f"<h4>{_e(title)}</h4><table class=\"kv\"><thead><tr>"
                   + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
                   + "</tbody></table>" + "".join(f'<p class="meta">{_e(x)}</p>' for x in foot))
    return "".join(out)


def faces_html(strips: list[dict]) -> str:
    """A check's face strips (checks/_faces.py): thumbnails embedded in the page, with captions."""
    out = []
    for st in strips:
        rows = "".join(
            f'<div class="face-row"><span class="face-label">{_e(row.get("label", ""))}</span>' + "".join(
                '<figure class="face">'
                + (f'<img src="{_e(t["uri"])}" alt="{_e(t.get("caption", ""))}">' if str(t.get("uri") or "").startswith(
                    "data:image/") else '<span class="noface">unreadable</span>')
                + f'<figcaption>{_e(t.get("caption", ""))}</figcaption></figure>' for t in row.get("tiles", []))
            + "</div>" for row in st.get("rows", []))
        out.append(f'<div class="faces"><h4>{_e(st.get("title", ""))}</h4><p class="meta">{_e(st.get("note", ""))}</p>'
                   f"{rows}</div>")
    return "".join(out)


def _value(value: Any) -> str:
    """Any JSON value as HTML: dicts as nested tables, lists as lists, numbers formatted."""
    if isinstance(value, dict):
        return _kv_table(value) if value else "—"
    if isinstance(value, list):
        return ("<ul>" + "".join(f"<li>{_value(v)}</li>" for v in value) + "</ul>") if value else "—"
    if isinstance(value, str):
        return _e(value)
    return f'<span class="num">{_e(format_value(value))}</span>'


def _kv_table(d: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in d.items())
    return f'<table class="kv">{rows}</table>'


def _run_info(report) -> str:
    parts = ['<section id="run"><h2>Run</h2>']
    for role, info in report.checkpoints.items():
        parts.append(f"<h3>Checkpoint: {_e(role)}</h3>{_kv_table(info)}")
    if report.dataset:
        parts.append(f"<h3>Dataset</h3>{_kv_table(report.dataset)}")
    if report.suite:
        parts.append(f"<details><summary>Suite as run</summary>{_kv_table(report.suite)}</details>")
    return "".join(parts) + "</section>"


def _footer(report) -> str:
    return (f"<footer>facediag {_e(report.facediag_version)} · report schema {_e(report.schema_version)}"
            f" · created {_e(report.created)}<br>command: <code>{_e(report.command)}</code></footer>")


# ---------------------------------------------------------------------------- compare
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
    side_items = "".join(f"<li>{_e(text)}</li>" for _, text in sides(report))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>facediag compare: {'PASSED' if passed else 'FAILED'}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>facediag compare</h1><ul>{side_items}</ul>"
        f'<p class="verdict">data {_e(dataset_text(report.dataset))}</p>'
        f'<p class="meta">created {_e(report.created)}</p></header>',
        f'<section id="gate"><h2>Verdict</h2><div class="gate {"passed" if passed else "failed"}">'
        f"<strong>{_e(report.summary())}</strong><br>Gate: <strong>{'PASSED' if passed else 'FAILED'}</strong>"
        + "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in report.gate.get("lines", [])) + "</ul></div></section>",
    ]
    rows = "".join(
        f"<tr><td>{_e(r.key)}</td>"
        f"<td class=num>{_e(format_value(r.a))}<br><span class=k>{_e(ci_text(r.a_ci))}</span></td>"
        f"<td class=num>{_e(format_value(r.b))}<br><span class=k>{_e(ci_text(r.b_ci))}</span></td>"
        f"<td class=num>{_e(delta_text(r))}<br><span class=k>{_e(ci_text(r.delta_ci, signed=True))}</span></td>"
        f"<td class=num>{_e(p_text(r))}</td><td>{_verdict_html(r.verdict)}</td></tr>" for r in report.tested)
    parts.append('<section id="tested"><h2>Tested metrics</h2><p class="meta">'
                 f"{_e(report.settings.get('method', ''))}; {_e(report.settings.get('n_boot', ''))} resamples, "
                 f"intervals at {1 - float(report.settings.get('alpha', 0.05)):.0%}.</p>"
                 "<table><thead><tr><th>metric</th><th class=num>A [interval]</th><th class=num>B [interval]</th>"
                 "<th class=num>B − A [interval]</th><th class=num>McNemar p</th><th>verdict</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table></section>")
    parts.append('<section id="shift"><h2>How far B moved from A</h2><ul>'
                 + "".join(f"<li>{_e(x)}</li>" for x in moved_lines(report)) + "</ul></section>")
    if report.parity:
        parts.append('<section id="parity"><h2>Parity: one network in two formats</h2><ul>'
                     + "".join(f"<li>{_e(x)}</li>" for x in parity_lines(report)) + "</ul></section>")
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
        f"</td><td class=num>{_e(delta_text(r))}</td><td>{_verdict_html(r.verdict)}</td></tr>" for r in report.metrics)
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
        f'<article class="diagnosis sev-{_e(d.severity.value)}"><h3><span class="sev">{_e(d.severity.upper())}</span>'
        f"<code>{_e(d.id)}</code></h3><p><strong>{_e(d.summary)}</strong></p>"
        + ("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in d.evidence) + "</ul>" if d.evidence else "")
        + (f"<p><strong>What to do:</strong> {_e(d.remedy)}</p>" if d.remedy else "")
        + (f'<p class="from">{_e(explains_text(d))}</p>' if d.explains else "") + "</article>"
        for d in diagnoses)


# ------------------------------------------------------------------------------ bench
_BENCH_CSS = """body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;\
color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:24px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:8px 0}\
th,td{padding:5px 9px;border-bottom:1px solid #d0d7de;text-align:right}
th{background:#f6f8fa}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}td{font-variant-numeric:tabular-nums}
.foot,.meta{color:#57606a;font-size:13px}.note{color:#9a6700}code{font-size:13px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px}figure img{width:100%}"""


def render_bench_html(report: BenchReport) -> str:
    e = _e
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>facediag bench {e(report.kind)}</title><style>{_BENCH_CSS}</style></head><body><main>",
             f"<h1>facediag bench {e(report.kind)}</h1>",
             f'<p class="meta">created {e(report.created)} · <code>{e(report.command)}</code></p>']
    for title, header, rows, foot in tables(report):
        parts.append(f"<h2>{e(title)}</h2><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                     + "</tbody></table>" + "".join(f'<p class="foot">{e(x)}</p>' for x in foot))
    plots = bench_plots(report)
    if plots:
        parts.append("<h2>Plots</h2><div class=\"plots\">" + "".join(
            f'<figure><img src="{uri}" alt="{e(title)}"></figure>' for title, uri in plots) + "</div>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{e(n)}</li>' for n in report.notes) + "</ul>")
    parts.append("<h2>Run</h2><ul class=\"meta\">" + "".join(f"<li>{e(x)}</li>" for x in context_lines(report))
                 + "</ul>")
    parts.append(f'<p class="meta">facediag {e(report.facediag_version)}, bench schema {e(report.schema_version)}</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- monitor history
def render_history_html(history) -> str:
    """A monitor history as one page: the stop, where each diagnosis and trend began, each metric
    over steps (plots and a table), every call."""
    stop = history.stop
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>facediag monitor history</title>", f"<style>{_CSS}</style></head><body><main>",
             f'<header><h1>facediag monitor history</h1><p class="verdict">{_e(headline(history))}</p></header>']
    parts.append(f'<section id="stop"><div class="gate {"passed" if stop is None else "failed"}">'
                 f"<strong>{_e(stop_line(history))}</strong></div></section>")
    onsets = "".join(f'<li class="sev-{"failure" if o.kind == "diagnosis" else "warning"}">{_e(line)}</li>'
                     for o, line in zip(history.onsets, onset_lines(history)))
    parts.append('<section id="onsets"><h2>Diagnoses and trends, where they began</h2>'
                 + (f"<ul>{onsets}</ul>" if onsets else '<p class="ok">No diagnosis or trend at any call</p>')
                 + "</section>")
    parts.append(f'<section id="plots"><h2>Metrics over steps</h2>{figures_html(history_plots(history))}')
    rows = "".join(f"<tr><td><code>{_e(name)}</code> <span class=\"k\">{_e(metric_label(name))}</span></td>"
                   f'<td class="num">{_e(first)}</td><td class="num">{_e(last)}</td>'
                   f'<td class="num">{"<strong>" + _e(change) + "</strong>" if worse else _e(change)}</td></tr>'
                   for name, first, last, change, worse, _ in metric_rows(history))
    parts.append("<table><thead><tr><th>metric</th><th>first</th><th>last</th><th>change</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table></section>")
    names = history.metric_names
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    calls = "".join(f"<tr><td class=\"num\">{_e(format_value(p.step))}</td><td>{'stop' if p.should_stop else ''}</td>"
                    f"<td>{_e(', '.join(p.diagnoses))}</td><td>{_e(', '.join(p.trends))}</td>"
                    + "".join(f'<td class="num">{_e(format_value(p.metrics.get(n)))}</td>' for n in names) + "</tr>"
                    for p in history.points)
    parts.append('<section id="calls"><h2>Every call</h2><details><summary>one row per call</summary>'
                 f"<table><thead><tr><th>step</th><th>stop</th><th>diagnoses</th><th>trends</th>{head}</tr></thead>"
                 f"<tbody>{calls}</tbody></table></details></section>")
    parts += [f"<footer>facediag {_e(history.facediag_version)} · history <code>{_e(history.source)}</code></footer>",
              "</main></body></html>"]
    return "\n".join(parts) + "\n"
