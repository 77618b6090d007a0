"""Render a Report to any file format, write them all, or re-render a saved report.json."""
from __future__ import annotations

from pathlib import Path

from facediag.errors import FacediagError
from facediag.io import atomic_write_text
from facediag.report.html import render_html
from facediag.report.junit import render_junit
from facediag.report.markdown import render_markdown
from facediag.report.schema import Report, load_report

FORMATS = ("json", "html", "md", "junit")
FILENAMES = {"json": "report.json", "html": "report.html", "md": "report.md", "junit": "junit.xml"}


def _require_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise FacediagError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")


def render(report: Report, fmt: str, extra_sections: list[tuple[str, str]] | None = None) -> str:
    """The report as text in ``fmt``; ``extra_sections`` (title, HTML) only apply to html."""
    _require_format(fmt)
    if fmt == "json":
        return report.to_json()
    if fmt == "html":
        return render_html(report, extra_sections)
    if fmt == "md":
        return render_markdown(report)
    return render_junit(report)


def write_all(report: Report, out_dir: str | Path,
              extra_sections: list[tuple[str, str]] | None = None) -> dict[str, Path]:
    """Write report.json, report.html, report.md and junit.xml into ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    return {fmt: atomic_write_text(out_dir / FILENAMES[fmt], render(report, fmt, extra_sections))
            for fmt in FORMATS}


def render_file(json_path: str | Path, fmt: str, out_path: str | Path | None = None) -> str:
    """Re-render a saved report.json as ``fmt``; written atomically to ``out_path`` when given."""
    _require_format(fmt)  # before reading the file, so a typo is the error reported
    text = render(load_report(json_path), fmt)
    if out_path is not None:
        atomic_write_text(out_path, text)
    return text
