"""Results: what a run, a compare or a bench concluded, with one serialisation and one loader.

A saved result is enough to re-render every format and (for a run) to serve as a baseline.
"""
from facediag.results.base import SCHEMA_VERSION, load_result, load_result_dict, result_from_dict
from facediag.results.bench import BenchReport
from facediag.results.compare import CompareReport, MetricRow
from facediag.results.run import Report, load_report

__all__ = ["SCHEMA_VERSION", "BenchReport", "CompareReport", "MetricRow", "Report", "load_report",
           "load_result", "load_result_dict", "result_from_dict"]
