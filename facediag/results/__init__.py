"""Results: what a run, a compare or a bench concluded, with one serialisation and one loader.

A saved result is enough to re-render every format and (for a run) to serve as a baseline.
The loader lives here, beside the imports of every kind, so that no kind module imports it back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facediag.errors import FacediagError
from facediag.results.base import SCHEMA_VERSION, load_result_dict
from facediag.results.bench import BenchReport
from facediag.results.compare import CompareReport, MetricRow
from facediag.results.run import Report

__all__ = ["SCHEMA_VERSION", "BenchReport", "CompareReport", "MetricRow", "Report", "load_report",
           "load_result", "load_result_dict", "result_from_dict"]


def result_from_dict(data: dict[str, Any], source: str | Path = "report"):
    """The Report, CompareReport or BenchReport that ``data`` holds, by its ``kind``."""
    kind = str(data.get("kind", "run"))
    cls = {"run": Report, "compare": CompareReport}.get(kind, BenchReport if kind.startswith("bench-") else None)
    if cls is None:
        raise FacediagError(f"{source}: unknown report kind {kind!r} "
                            "(run, compare, bench-accuracy, bench-speed, bench-verification, bench-ijb)")
    try:
        return cls.from_dict(data)
    except FacediagError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FacediagError(f"{source}: a {kind} report of the wrong shape ({type(exc).__name__}: {exc})") from None


def load_result(path: str | Path, expect: type | None = None):
    """Any saved result, read back by its kind; with ``expect``, only a result of that class."""
    result = result_from_dict(load_result_dict(path), path)
    if expect is not None and not isinstance(result, expect):
        raise FacediagError(f"{path}: a {type(result).__name__}, not a {expect.__name__}")
    return result


def load_report(path: str | Path) -> Report:
    """A saved run report (what a baseline is); any other kind is refused with one line."""
    return load_result(path, expect=Report)
