"""Every bench row carrying by_quality renders its size bins and EDC in every format, whatever the bench kind."""
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from facediag.metrics.edc import quality_section
from facediag.render import render, render_terminal, write_all
from facediag.render.plots import bench_plots
from facediag.render.quality_tables import error_at, quality_rows
from facediag.results import BenchReport, load_result


def _section(seed: int):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(8, 80, size=60)
    correct = sizes + rng.normal(0, 10, size=60) > 24            # small faces fail more often
    genuine = np.where(rng.random(60) < 0.9, sizes / 100.0, np.nan)
    return quality_section(sizes=sizes, blur=rng.random(60), norms=sizes * 0.3, correct=correct,
                           genuine=genuine, threshold=0.3)


def _accuracy_report(with_quality: bool = True):
    base = {"upsampling": "bicubic", "rank1": 0.6, "n_probes": 60, "genuine_mean": 0.3}
    rows = [{"resolution": res, "checkpoint": ck, "path": "bicubic", **base}
            for res in (16, "hr") for ck in ("a", "b")]
    if with_quality:
        for i, r in enumerate(rows[:2]):       # the 16 px rows only: the HR ones have no native size
            r["by_quality"] = _section(i)
    return BenchReport(kind="accuracy", command="facediag bench accuracy", checkpoints={"a": {}, "b": {}},
                       settings={"threshold": 0.35, "fars": []}, rows=rows)


def _ijb_report():
    row = {"protocol": "1:1", "checkpoint": "a", "variant": "xxs", "tar_at_far": {"0.1": 0.9}, "auc": 0.9,
           "eer": 0.1, "n_pairs": 10, "n_genuine": 5, "n_impostor": 5, "by_quality": _section(5)}
    return BenchReport(kind="ijb", command="facediag bench ijb", checkpoints={"a": {}},
                       settings={"fars": [0.1], "target": "IJBC"}, rows=[row])


def test_tables_in_markdown_terminal_junit_and_html_with_one_edc_plot_per_row(tmp_path):
    report = _accuracy_report()
    paths = write_all(report, tmp_path)
    back = load_result(paths["json"], expect=BenchReport)       # renders from the JSON alone
    assert back.rows[0]["by_quality"] == json.loads(json.dumps(report.rows[0]["by_quality"]))
    md = render(back, "md")
    assert "## Accuracy by native face size" in md and "## Error versus discard characteristic (EDC)" in md
    assert md.count("| &lt; 16 px |") == 2 and md.count("| ≥ 48 px |") == 2   # one set of bins per row
    assert "| a | size | rank-1 error | 60 |" in md and "| b | size | FNMR |" in md   # labelled by what differs
    curve = back.rows[0]["by_quality"]["edc"]["size"]["rank1_error"]
    assert f"{curve['pauc']:.3f} (to 0.2)" in md
    assert f"| {error_at(curve, 0.1):.3f} |" in md
    assert "FNMR: mated probes whose genuine score is below 0.3" in md
    console = Console(record=True, width=240)
    render_terminal(back, console)
    text = console.export_text()
    assert "Error versus discard characteristic" in text and "< 16 px" in text
    assert render(back, "junit").count("<testcase") == 4 + 2 * 5 + 2 * 6       # rows + bins + 3 qualities × 2 errors
    html = render(back, "html")
    assert html.count("data:image/png;base64,") == 3                           # rank-1 vs resolution + 2 EDCs
    assert html.count('alt="error vs discard (EDC): b"') == 1
    plots = bench_plots(back)
    png = base64.b64decode(plots[1][1].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (700, 420)


def test_any_bench_kind_gets_them_and_a_row_without_the_section_gets_none():
    ijb = _ijb_report()
    assert [label for label, _ in quality_rows(ijb)] == ["a"]
    md = render(ijb, "md")
    assert "## Accuracy by native face size" in md and "| a | norm | FNMR |" in md
    assert "error vs discard (EDC): a" in render(ijb, "html")
    two = _accuracy_report()
    two.rows[1].update(resolution=24, checkpoint="a")
    assert [label for label, _ in quality_rows(two)] == ["16 px", "24 px"]
    plain = _accuracy_report(with_quality=False)
    assert "EDC" not in render(plain, "md") and len(bench_plots(plain)) == 1


def test_a_section_without_sizes_has_no_bin_table_and_few_probes_say_so():
    section = quality_section(norms=[1.0, 2.0, 3.0], correct=[False, True, True])
    report = _accuracy_report(with_quality=False)
    report.rows[0]["by_quality"] = section
    md = render(report, "md")
    assert "Accuracy by native face size" not in md
    assert "| a | norm | rank-1 error | 3 | 1 | 0.333 | 0.333 | 0.333 | 0.067 (to 0.2) |" in md
    assert section["edc"]["norm"]["rank1_error"]["pauc"] == pytest.approx(1 / 3 * 0.2)
    small = quality_section(sizes=[20, 20], correct=[True, False])
    report.rows[0]["by_quality"] = small
    assert "only 2 probes: too few to read" in render(report, "md")
