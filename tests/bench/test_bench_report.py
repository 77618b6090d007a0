"""BenchReport: JSON round trip, every format renders from JSON alone, run reports are not bench reports."""
import json

import pytest
from rich.console import Console

from facediag.errors import FacediagError
from facediag.render import render, render_terminal, write_all
from facediag.results import BenchReport, load_result


def load_bench_report(path):
    return load_result(path, expect=BenchReport)


def _accuracy_report():
    row = {"rank1": 0.8, "rank1_low": 0.7, "rank1_high": 0.9, "accuracy_at_threshold": 0.5,
           "far_at_threshold": 0.001, "eer": 0.07, "genuine_mean": 0.34, "impostor_mean": 0.05,
           "n_probes": 10, "tar_at_far": {"0.1": 0.9, "0.0001": None},
           "tar_unsupported": {"0.0001": "FAR 0.0001 needs >= 100000 impostor pairs"}}
    rows = [{"resolution": res, "checkpoint": "m", "path": path, "upsampling": up, **row}
            for res, path, up in [(16, "bicubic", "bicubic"), (16, "dsr", "sr.pt"), ("hr", "hr", "none (HR)")]]
    cmp = {"resolution": 16, "checkpoint": "m", "dsr": "sr.pt", "rank1_dsr": 0.8, "rank1_bicubic": 0.7,
           "delta": 0.1, "ci_low": 0.02, "ci_high": 0.2, "mcnemar": {"b01": 9, "b10": 1, "p_value": 0.02},
           "significant": True, "verdict": "DSR helps", "accuracy_delta": 0.1, "eer_delta": -0.01}
    return BenchReport(kind="accuracy", command="facediag bench accuracy", checkpoints={"m": {"path": "m.pt"}},
                       settings={"threshold": 0.35, "fars": [0.1, 0.0001]}, rows=rows, comparisons=[cmp])


def test_round_trip_and_formats(tmp_path):
    report = _accuracy_report()
    paths = write_all(report, tmp_path)
    back = load_bench_report(paths["json"])
    assert back.as_dict() == report.as_dict()
    md = render(back, "md")
    assert "| 16 px | m | sr.pt |" in md and "DSR helps" in md and "TAR@FAR 0.0001: not reported" in md
    assert "TAR@FAR 0.0001 |" not in md  # a column with no value anywhere is left out
    html = render(back, "html")
    assert html.count("data:image/png;base64,") == 1 and "<script" not in html
    console = Console(record=True, width=200)
    render_terminal(back, console)
    assert "DSR helps" in console.export_text()


def test_refuses_other_reports(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "run"}))
    with pytest.raises(FacediagError):
        load_bench_report(path)
    with pytest.raises(FacediagError, match="unknown report format"):
        render(_accuracy_report(), "pdf")


def test_every_format_renders_bench_reports():
    """One renderer per format renders all three kinds: a bench is JUnit too (a testcase per row)."""
    report = _accuracy_report()
    xml = render(report, "junit")
    assert xml.count("<testcase") == len(report.rows) + len(report.comparisons)
    assert "<failure" not in xml
