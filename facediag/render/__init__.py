"""Renderers: one module per format (terminal, html, markdown, junit; json is the result's own),
each rendering every kind of result (run, compare, bench, monitor history). Renderers read results, never models.
"""
from __future__ import annotations

from pathlib import Path

from facediag.errors import FacediagError
from facediag.io import atomic_write_text
from facediag.results import BenchReport, CompareReport, Report
from facediag.results.history import MonitorHistory

FORMATS = ("json", "html", "md", "junit")
FILENAMES = {"json": "report.json", "html": "report.html", "md": "report.md", "junit": "junit.xml"}


def require_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise FacediagError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")


def bench_filenames(kind: str) -> dict[str, str]:
    stem = f"bench-{kind}"
    return {"json": f"{stem}.json", "html": f"{stem}.html", "md": f"{stem}.md", "junit": f"{stem}.junit.xml"}


def filenames(result) -> dict[str, str]:
    """What write_all calls each format's file: bench results are named by their kind."""
    return bench_filenames(result.kind) if isinstance(result, BenchReport) else FILENAMES


def render(result: Report | CompareReport | BenchReport | MonitorHistory, fmt: str,
           extra_sections: list[tuple[str, str]] | None = None) -> str:
    """Any result as text in ``fmt``; ``extra_sections`` (title, HTML) only apply to html pages."""
    from facediag.render import html, junit, markdown  # html draws with matplotlib: loaded for a page only

    require_format(fmt)
    if fmt == "json":
        return result.to_json()
    if isinstance(result, MonitorHistory):
        return {"html": lambda: html.render_history_html(result),
                "md": lambda: markdown.render_history_markdown(result),
                "junit": lambda: junit.render_history_junit(result)}[fmt]()
    if isinstance(result, CompareReport):
        return {"html": lambda: html.render_compare_html(result, extra_sections),
                "md": lambda: markdown.render_compare_markdown(result),
                "junit": lambda: junit.render_compare_junit(result)}[fmt]()
    if isinstance(result, BenchReport):
        return {"html": lambda: html.render_bench_html(result),
                "md": lambda: markdown.render_bench_markdown(result),
                "junit": lambda: junit.render_bench_junit(result)}[fmt]()
    return {"html": lambda: html.render_run_html(result, extra_sections),
            "md": lambda: markdown.render_run_markdown(result),
            "junit": lambda: junit.render_run_junit(result)}[fmt]()


def write_all(result, out_dir: str | Path, extra_sections: list[tuple[str, str]] | None = None) -> dict[str, Path]:
    """Every format of ``result`` into ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    names = filenames(result)
    return {fmt: atomic_write_text(out_dir / names[fmt], render(result, fmt, extra_sections)) for fmt in FORMATS}


def render_terminal(result, console) -> None:
    """Any result in the terminal (rich is imported only here)."""
    from facediag.render.terminal import render_terminal as _render

    _render(result, console)
