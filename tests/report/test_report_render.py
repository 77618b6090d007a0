"""Renderers: built from a hand-made Report with every status, findings, plot data and diagnoses."""
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from rich.console import Console

from facediag.errors import FacediagError
from facediag.checks.base import CheckResult, Finding, Severity, Status
from facediag.render.html import render_run_html as render_html
from facediag.render.junit import render_run_junit as render_junit
from facediag.render.markdown import render_run_markdown as render_markdown
from facediag.render import FORMATS, render, write_all
from facediag.diagnosis import Diagnosis
from facediag.results import Report, load_report, load_result
from facediag.render import render_terminal


def _hist(mean, sd, seed):
    counts, edges = np.histogram(np.random.default_rng(seed).normal(mean, sd, 2000), bins=40, range=(-1, 1))
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def make_report(diagnosed=True, gate=True) -> Report:
    fpr = np.logspace(-4, 0, 30)
    tpr = fpr ** 0.2
    results = [
        CheckResult(
            "pair-gap", Status.FAIL, "paired 0.93 but genuine 0.22 | pairs memorised",
            metrics={"paired_mean": 0.93, "genuine_mean": np.float32(0.22), "gap": 0.71, "pairs": 280},
            findings=[Finding(Severity.FAILURE, "gap 0.71 exceeds 0.2", {"gap": 0.71, "limit": 0.2}),
                      Finding(Severity.INFO, "280 pairs measured")],
            data={"headline": ["gap", "paired_mean", "not-a-metric"], "threshold": 0.35,
                  "histograms": {"genuine": _hist(0.22, 0.15, 1), "impostor": _hist(0.01, 0.1, 2),
                                 "paired": _hist(0.93, 0.03, 3)}},
            title="Paired vs gallery similarity", seconds=1.25),
        CheckResult(
            "verification", Status.WARN, "threshold 0.35 gives FAR 0.0931 <script>alert(1)</script>",
            metrics={"eer": 0.081, "far_at_threshold": 0.0931, "genuine_pairs": 2800},
            findings=[Finding(Severity.WARNING, "FAR at 0.35 is 0.0931", {"far": 0.0931})],
            data={"roc": {"fpr": [0.0, *fpr.tolist()], "tpr": [0.0, *tpr.tolist()]},
                  "det": {"fpr": fpr.tolist(), "fnr": (1 - tpr).tolist()}},
            seconds=0.5),
        CheckResult("identification", Status.PASS, "rank-1 0.934 over 40 subjects",
                    metrics={"rank1": 0.934, "rank5": 0.99, "d_prime": 3.21, "unused": 1.0},
                    data={"cmc": [0.934, 0.96, 0.975, 0.99]}, seconds=0.25),
        CheckResult("head-consistency", Status.SKIP, "checkpoint has no ArcFace head"),
        CheckResult("input-range", Status.ERROR, "RuntimeError: boom & bust",
                    data={"traceback": "Traceback (most recent call last):\n\x1b[31mRuntimeError: boom"}),
    ]
    diagnoses = [
        Diagnosis("threshold-drift", "warning", "The 0.35 threshold no longer holds.",
                  ["FAR at 0.35 = 0.0931"], "Use the threshold for your target FAR.", ["verification"]),
        Diagnosis("pair-memorisation", "failure", "Each DSR image matches only its own HR pair.",
                  ["paired 0.93 vs genuine 0.22"], "Fine-tune with a supervised contrastive loss.",
                  ["pair-gap", "identification"]),
    ]
    return Report(
        command="facediag run-all --weights m.pth --data DATA",
        checkpoints={"model": {"path": "/x/edgeface_contrastive.pth", "sha256": "ab" * 32,
                               "variant": "edgeface_xxs"}},
        dataset={"root": "/data/orl_faces", "layout": "lfw", "fingerprint": "cd" * 32,
                 "counts": {"subjects": 40, "images": 400}, "problems": ["2 unreadable files"]},
        suite={"name": "default", "checks": {"pair-gap": {"max_gap": 0.2}}},
        results=results, diagnoses=diagnoses if diagnosed else [],
        gate={"passed": False, "lines": ["rank1 fell 0.05 below baseline"]} if gate else None,
        created="2025-01-01T00:00:00+00:00")


@pytest.fixture
def report():
    return make_report()


def _round_trip(report):
    return Report.from_dict(json.loads(report.to_json()))


@pytest.mark.parametrize("renderer", [render_markdown, render_junit, render_html])
def test_json_round_trip_renders_identically(report, renderer):
    assert renderer(_round_trip(report)) == renderer(report)


# --- HTML -------------------------------------------------------------------------------------

_VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


class _StrictParser(HTMLParser):
    """Fails on unbalanced tags and records every src/href, so the page's shape is tested."""

    def __init__(self):
        super().__init__()
        self.stack, self.links, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}> at {self.getpos()}")


def _parse(page):
    parser = _StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


def test_html_is_self_contained_and_well_formed(report):
    page = render_html(report)
    links = _parse(page).links
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page)
    images = [x for x in links if x.startswith("data:image/png;base64,")]
    assert len(images) == 4  # score histograms, ROC, DET, CMC
    assert all(x.startswith(("data:", "#")) for x in links)


def test_html_puts_diagnoses_first_and_escapes_text(report):
    page = render_html(report)
    table = page.index('<table class="checks">')
    assert page.index("pair-memorisation") < page.index("threshold-drift") < table  # failures first
    assert "What to do:" in page[:table]
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for r in report.results:
        assert f'href="#check-{r.name}"' in page[table:] and f'id="check-{r.name}"' in page
    for fragment in ("s-FAIL", "s-WARN", "s-PASS", "s-SKIP", "s-ERROR", "ab" * 32, "cd" * 32,
                     "<details><summary>Metrics (4)</summary>", "Traceback", "2 unreadable files",
                     "facediag 0.1.0", "facediag run-all --weights m.pth --data DATA", "Gate"):
        assert fragment in page


def test_html_extra_sections_and_no_diagnoses():
    page = render_html(make_report(diagnosed=False, gate=False),
                       extra_sections=[("Contact <sheet>", '<p id="extra">faces here</p>')])
    _parse(page)
    assert "No problems diagnosed" in page and 'id="gate"' not in page
    assert "<h2>Contact &lt;sheet&gt;</h2>" in page
    assert page.index('<table class="checks">') < page.index('id="extra"') < page.index('id="details"')


@pytest.mark.skipif(not shutil.which("chromium", path="/usr/bin"), reason="/usr/bin/chromium is not installed")
def test_html_screenshot_in_headless_chromium(report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
         page.as_uri()],
        capture_output=True, timeout=120, check=False)
    assert shot.is_file()
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000  # a blank 1200×2000 page is a few KB


# --- JUnit ------------------------------------------------------------------------------------

def test_junit_counts_and_cases(report):
    root = ET.fromstring(render_junit(report).encode())  # the ANSI escape in the traceback is gone
    suite = root.find("testsuite")
    assert suite.get("name") == "facediag"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.name for r in report.results]
    assert {c.get("classname") for c in cases} == {"facediag.checks"}
    assert cases[0].get("time") == "1.250"
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors"),
                element.get("skipped")) == ("5", "1", "1", "1")
    by_name = {c.get("name"): c for c in cases}
    failure = by_name["pair-gap"].find("failure")
    assert failure.get("message") == report.results[0].summary and "gap 0.71 exceeds 0.2" in failure.text
    assert "RuntimeError: boom" in by_name["input-range"].find("error").text
    assert by_name["head-consistency"].find("skipped").get("message") == "checkpoint has no ArcFace head"
    warn = by_name["verification"]
    assert warn.find("failure") is None and "FAR at 0.35 is 0.0931" in warn.find("system-out").text
    assert len(suite.findall(".//failure")) == 1 and len(suite.findall(".//error")) == 1
    out = suite.find("system-out").text
    assert out.index("pair-memorisation") < out.index("threshold-drift")
    assert "Fine-tune with a supervised contrastive loss." in out


# --- Markdown ---------------------------------------------------------------------------------

def _cells(row):
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_table_diagnoses_and_gate(report):
    md = render_markdown(report)
    assert md.startswith("# facediag: ERROR\n")
    rows = {cells[0]: cells for cells in map(_cells, md.splitlines()) if cells and cells[0] in
            {r.name for r in report.results}}
    assert {name: cells[1] for name, cells in rows.items()} == {r.name: r.status.value for r in report.results}
    assert all(len(cells) == 4 for cells in rows.values())  # the pipe in a summary did not split its row
    assert rows["pair-gap"][2] == r"paired 0.93 but genuine 0.22 \| pairs memorised"
    assert rows["pair-gap"][3] == "gap 0.710<br>paired_mean 0.930"  # the check's headline, known names only
    assert "&lt;script&gt;" in rows["verification"][2]
    assert md.index("`pair-memorisation`") < md.index("`threshold-drift`") < md.index("| Check |")
    assert "**What to do:** Fine-tune" in md and "**Gate: FAILED**" in md


def test_markdown_without_diagnoses():
    md = render_markdown(make_report(diagnosed=False, gate=False))
    assert "No problems diagnosed." in md and "Gate" not in md


# --- terminal ---------------------------------------------------------------------------------

def _terminal(report, width, styles=False):
    console = Console(file=io.StringIO(), record=True, width=width, force_terminal=True, color_system="standard")
    render_terminal(report, console)
    return console.export_text(styles=styles)


def test_terminal_diagnoses_before_checks(report):
    text = _terminal(report, 100)
    header = re.search(r"Check\s+Status\s+Summary\s+Key metrics", text).start()
    assert text.index("pair-memorisation") < text.index("threshold-drift") < header
    assert "What to do: Fine-tune" in text[:header]
    for r in report.results:
        assert re.search(rf"{r.name}\s+{r.status.value}\b", text[header:]), r.name
    assert "gap 0.710" in text and "eer 0.0810" in text
    assert "gap 0.71 exceeds 0.2" in text and "280 pairs measured" not in text  # info findings stay out
    verdict = text.index("ERROR: 1 failed, 1 error, 1 warning, 1 passed, 1 skipped")
    assert "edgeface_contrastive.pth" in text[verdict:] and "40 subjects, 400 images" in text[verdict:]
    assert text.index("Gate: FAILED") > verdict
    assert max(map(len, text.splitlines())) <= 100


def test_terminal_colours_statuses(report):
    text = _terminal(report, 100, styles=True)
    for status, sgr in (("PASS", "1;32"), ("WARN", "1;33"), ("FAIL", "1;31"), ("SKIP", "2"), ("ERROR", "1;35")):
        assert f"\x1b[{sgr}m{status}" in text, status


def test_terminal_degrades_at_80_columns(report):
    text = _terminal(report, 80)
    assert max(map(len, text.splitlines())) <= 80
    assert "Key metrics" not in text and "gap 0.710" in text  # metrics folded under the summary
    assert all(r.name in text for r in report.results)


def test_terminal_no_diagnoses():
    text = _terminal(make_report(diagnosed=False, gate=False), 100)
    assert text.startswith("No problems diagnosed") and "Gate" not in text


# --- render / files ---------------------------------------------------------------------------

def test_write_all_and_re_render(report, tmp_path):
    paths = write_all(report, tmp_path / "out")
    assert set(paths) == set(FORMATS)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "report.html", "report.json",
                                                                   "report.md"]
    loaded = load_report(paths["json"])
    assert render(loaded, "md") == paths["md"].read_text()
    assert render(load_result(paths["json"]), "junit") == paths["junit"].read_text()
    assert render(load_result(paths["json"]), "html") == paths["html"].read_text()


def test_unknown_format_is_a_usage_error(report, tmp_path):
    with pytest.raises(FacediagError, match="unknown report format 'pdf'"):
        render(report, "pdf")
    with pytest.raises(FacediagError, match="no such report"):
        load_result(tmp_path / "missing.json")
