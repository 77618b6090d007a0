"""Trends against the first call, the stop policy and the history file (no model needed)."""
import json
import os

import pytest

from facediag.errors import FacediagError
from facediag.monitor import MonitorResult, StopPolicy
from facediag.monitor.history import append_record, read_history
from facediag.monitor.trends import TOLERANCES, tolerances, trend_flags

FIRST = {"pair-gap.paired_mean": 0.42, "pair-gap.genuine_mean": 0.34, "pair-gap.impostor_mean": 0.05,
         "identification.rank1": 0.87, "identification.far_at_threshold": 0.0}


def moved(**changes) -> dict:
    keys = {"paired": "pair-gap.paired_mean", "genuine": "pair-gap.genuine_mean", "impostor": "pair-gap.impostor_mean",
            "rank1": "identification.rank1", "far": "identification.far_at_threshold"}
    return {k: FIRST[k] + changes.get(short, 0.0) for short, k in keys.items()}


@pytest.mark.parametrize("changes, flags", [
    ({}, []),
    ({"paired": 0.5, "genuine": -0.2}, ["paired-up-genuine-down"]),  # pair memorisation as it grows
    ({"paired": 0.5, "genuine": 0.6, "impostor": 0.9, "rank1": -0.2, "far": 1.0},  # collapse as it grows
     ["paired-up-genuine-down", "rank1-drop", "impostor-rising", "fmr-drift"]),
    ({"paired": 0.4, "genuine": 0.4, "impostor": 0.3, "rank1": 0.03, "far": 0.6},  # supervised training
     ["impostor-rising", "fmr-drift"]),
    ({"paired": 0.04, "genuine": -0.2}, []),  # paired within its tolerance: not the signature
    ({"rank1": -0.04}, []),  # within its tolerance
    ({"far": -0.02}, ["fmr-drift"]),  # the threshold's meaning moved, whichever way
])
def test_trend_flags_against_the_first_call(changes, flags):
    assert trend_flags(FIRST, moved(**changes), TOLERANCES) == flags


def test_tolerances_come_from_the_suite_or_one_min_change():
    assert tolerances({"identification.rank1": 0.2})["identification.rank1"] == 0.2
    assert tolerances(None)["pair-gap.impostor_mean"] == TOLERANCES["pair-gap.impostor_mean"]
    assert set(tolerances({"identification.rank1": 0.2}, min_change=0.3).values()) == {0.3}
    assert trend_flags(FIRST, moved(rank1=-0.1), tolerances({"identification.rank1": 0.2})) == []


def test_stop_policy_counts_its_flags_and_refuses_nonsense():
    policy = StopPolicy()
    assert policy.stopping(["embedding-collapse", "hr-dsr-domain-gap"], ["fmr-drift", "rank1-drop"]) == \
        ["embedding-collapse", "rank1-drop"]
    assert StopPolicy(diagnoses=(), trends=()).stopping(["embedding-collapse"], ["rank1-drop"]) == []
    for bad in ({"trends": {"rank-1-drop"}}, {"patience": 0}, {"patience": 1.5}, {"min_change": 2}):
        with pytest.raises(FacediagError):
            StopPolicy(**bad)


def _result(step, **kw) -> MonitorResult:
    return MonitorResult(step, {"identification.rank1": 0.5}, {"identification": "PASS"}, kw.get("diagnoses", []),
                         [], kw.get("should_stop", False), kw.get("reason"))


def test_history_lines_are_whole_and_read_back(tmp_path):
    path = tmp_path / "runs" / "monitor.jsonl"
    records = [_result(0).record(), _result(10, diagnoses=["embedding-collapse"], should_stop=True,
                                                reason="at step 10: embedding-collapse").record()]
    for rec in records:
        append_record(path, rec)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert set(records[0]) == {"facediag_monitor", "step", "time", "metrics", "statuses", "diagnoses", "trends",
                               "should_stop", "reason"}
    assert read_history(path) == records
    assert MonitorResult.from_record(records[1]).record() == records[1]


def test_a_torn_last_line_is_skipped_and_never_joins_the_next(tmp_path):
    path = tmp_path / "monitor.jsonl"
    append_record(path, _result(0).record())
    with open(path, "ab") as fh:  # a writer killed mid-line
        fh.write(b'{"facediag_monitor":1,"step":5,"metr')
    assert [r["step"] for r in read_history(path)] == [0]
    append_record(path, _result(10).record())
    assert [r["step"] for r in read_history(path)] == [0, 10]
    assert path.read_text().splitlines()[2].startswith('{"facediag_monitor":1,"step":10')


def test_a_history_line_that_is_not_a_record_is_one_line_naming_it(tmp_path):
    path = tmp_path / "monitor.jsonl"
    path.write_text('{"facediag_monitor": 1, "step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(FacediagError, match=r"monitor.jsonl:2: not a JSON line"):
        read_history(path)
    os.remove(path)
    path.write_text('{"step": 1}\n')
    with pytest.raises(FacediagError, match=r":1: not a facediag monitor record"):
        read_history(path)
