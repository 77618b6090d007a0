"""`facediag render HISTORY.jsonl`: a monitor's history in every format, each saying where each
diagnosis began and where the monitor said stop; a malformed history is one line, exit 2."""
import json
import re
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from facediag.cli import cli
from facediag.errors import FacediagError
from facediag.results.history import MonitorHistory, looks_like_history


def record(step, rank1, paired, genuine, diagnoses=(), trends=(), stop=False, reason=None):
    return {"facediag_monitor": 1, "step": step, "time": "2026-12-07T20:00:00+00:00",
            "metrics": {"identification.rank1": rank1, "pair-gap.paired_mean": paired,
                        "pair-gap.genuine_mean": genuine},
            "statuses": {"identification": "pass" if rank1 > 0.5 else "fail"}, "diagnoses": list(diagnoses),
            "trends": list(trends), "should_stop": stop, "reason": reason}


# The seed's course: paired similarity climbs while genuine similarity and rank-1 fall.
RECORDS = [record(0, 0.9, 0.80, 0.60),
           record(100, 0.8, 0.90, 0.50, trends=["paired-up-genuine-down"]),
           record(200, 0.5, 0.97, 0.30, ["pair-memorization"], ["paired-up-genuine-down", "rank1-drop"],
                  stop=True, reason="pair-memorization at 2 calls in a row"),
           record(300, 0.3, 0.99, 0.20, ["pair-memorization", "embedding-collapse"], ["rank1-drop"], stop=True,
                  reason="pair-memorization")]


@pytest.fixture
def history_file(tmp_path):
    path = tmp_path / "monitor.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def render(*args):
    return CliRunner().invoke(cli, ["render", *map(str, args)])


def test_the_history_knows_where_each_flag_began_and_the_first_stop():
    history = MonitorHistory.from_records(RECORDS, "h")
    assert history.stop.step == 200
    assert [(o.step, o.id, o.kind) for o in history.onsets] == [
        (100, "paired-up-genuine-down", "trend"), (200, "pair-memorization", "diagnosis"),
        (200, "rank1-drop", "trend"), (300, "embedding-collapse", "diagnosis")]
    again = MonitorHistory.from_records([*RECORDS, record(400, 0.3, 0.99, 0.2, ["embedding-collapse"]),
                                         record(500, 0.3, 0.99, 0.2, ["pair-memorization"])], "h")
    assert [(o.step, o.id) for o in again.onsets if o.kind == "diagnosis"][-1] == (500, "pair-memorization")
    assert MonitorHistory.from_records([record(0, 0.9, 0.8, 0.6)], "h").stop is None


def test_terminal(history_file):
    res = render(history_file)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "4 calls, steps 0–300" in out
    assert "step 200: diagnosis pair-memorization began" in out
    assert "step 300: diagnosis embedding-collapse began" in out
    assert "stop at step 200: pair-memorization at 2 calls in a row" in out
    row = next(line for line in out.splitlines() if "pair-gap.paired_mean" in line)
    assert "0.800" in row and "0.990" in row and "▁▅▇█" in row  # first, last and its course


def test_markdown(history_file):
    res = render(history_file, "--format", "md")
    assert res.exit_code == 0, res.output
    md = res.output
    assert "> **stop at step 200: pair-memorization at 2 calls in a row**" in md
    assert "- step 100: trend paired-up-genuine-down began" in md
    rank1 = next(line for line in md.splitlines() if line.startswith("| `identification.rank1`"))
    assert "| 0.900 | 0.300 | **−0.600** |" in rank1  # rank-1 is higher-is-better: a fall is marked worse
    paired = next(line for line in md.splitlines() if line.startswith("| `pair-gap.paired_mean`"))
    assert "| +0.190 |" in paired  # no direction in the catalogue: shown, not judged
    assert re.search(r"^\| 200 \| \*\*stop\*\* \| pair-memorization \| 0\.500 \| 0\.970 \| 0\.300 \|$", md, re.M)


def test_html_draws_each_check_over_steps(history_file, tmp_path):
    out = tmp_path / "monitor.html"
    res = render(history_file, "--format", "html", "-o", out)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    # identification (rate) and pair-gap (cosine: paired and genuine on one plot)
    assert page.count('<img src="data:image/png;base64,') == 2
    assert 'alt="pair-gap (cosine) over training steps"' in page
    assert "stop at step 200: pair-memorization at 2 calls in a row" in page
    assert "step 300: diagnosis embedding-collapse began" in page


def test_json_and_junit(history_file):
    res = render(history_file, "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["kind"] == "monitor-history"
    assert data["stop"] == {"step": 200, "reason": "pair-memorization at 2 calls in a row"}
    assert data["records"] == RECORDS and len(data["onsets"]) == 4

    res = render(history_file, "--format", "junit")
    assert res.exit_code == 0, res.output
    suite = ET.fromstring(res.output.encode()).find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["step 0", "step 100", "step 200", "step 300"]
    assert [c.find("failure") is not None for c in cases] == [False, False, True, True]
    assert suite.get("failures") == "2"
    assert "identification.rank1 = 0.500" in cases[2].find("system-out").text


def test_a_history_is_known_by_its_name_or_its_first_line(history_file, tmp_path):
    other = tmp_path / "history.log"
    other.write_text(history_file.read_text())
    assert looks_like_history(history_file) and looks_like_history(other)
    report = tmp_path / "report.json"
    report.write_text('{"kind": "run"}')
    assert not looks_like_history(report)
    assert render(other, "--format", "md").exit_code == 0


def _one_line_exit_2(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("lines, needles", [
    (['{"facediag_monitor": 1, "step": 0, "metrics": {}}', "not json at all"], [":2:", "not a JSON line"]),
    (['{"facediag_monitor": 1, "step": "ten", "metrics": {}}'], ["record 1", "step is 'ten'"]),
    (['{"facediag_monitor": 1, "step": 5, "metrics": {"identification.rank1": "high"}}'], ["record 1", "metrics"]),
    (['{"facediag_monitor": 1, "step": 5, "metrics": {}, "diagnoses": "collapse"}'], ["diagnoses is not a list"]),
    (['{"facediag_monitor": 1, "step": 5, "metrics": {}, "should_stop": "yes"}'], ["should_stop"]),
    (['{"facediag_monitor": 9, "step": 5, "metrics": {}}'], ["record format 9"]),
    (['{"step": 5, "metrics": {}}'], ["not a facediag monitor record"]),
    ([], ["no monitor records"]),
])
def test_a_malformed_history_is_one_line_exit_2(tmp_path, lines, needles):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    for fmt in ("terminal", "html"):
        _one_line_exit_2(render(path, "--format", fmt, *(["-o", tmp_path / "x.html"] if fmt == "html" else [])),
                         *needles)
    assert not (tmp_path / "x.html").exists()


def test_a_missing_history_is_one_line_exit_2(tmp_path):
    _one_line_exit_2(render(tmp_path / "nowhere.jsonl"), "nowhere.jsonl")


def test_records_are_checked_before_any_renderer_sees_them():
    with pytest.raises(FacediagError, match="record 2: step is -1"):
        MonitorHistory.from_records([RECORDS[0], {**RECORDS[1], "step": -1}], "h")
