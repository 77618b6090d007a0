"""workflow.run_and_gate: the run-all workflow as library code -- checked up front, nothing written
until write(), the same report as run_all, and no baseline from a failing run."""
from __future__ import annotations

import json

import pytest

from facediag.errors import FacediagError
from facediag.runner import run_all
from facediag.workflow import run_and_gate
from facediag.session import SessionConfig


def config(ckpt, orl5, cache, **kw):
    return SessionConfig(weights=ckpt, data=orl5, cache_dir=cache, progress=False, **kw)


def test_bad_combinations_fail_before_any_work(tmp_path):
    cfg = SessionConfig(weights=tmp_path / "missing.pt", data=tmp_path)  # never loaded
    with pytest.raises(FacediagError, match="need --baseline-report"):
        run_and_gate(cfg, max_drop=["rank1=0.01"])
    with pytest.raises(FacediagError, match="needs --save-baseline"):
        run_and_gate(cfg, force_save_baseline=True)
    with pytest.raises(FacediagError, match="would overwrite the input weights"):
        run_and_gate(cfg, save_baseline=tmp_path / "missing.pt")


def test_the_same_report_as_run_all_and_nothing_written_before_write(ckpt, orl5, cache, tmp_path):
    run = run_and_gate(config(ckpt, orl5, cache), "ci", out=tmp_path / "out", save_baseline=tmp_path / "b.json",
                       command="test")
    assert run.exit_code == 0 and run.baseline_refused is None
    assert not (tmp_path / "out").exists() and not (tmp_path / "b.json").exists()
    written = run.write()
    assert set(written) == {"json", "html", "md", "junit", "baseline"}
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads((tmp_path / "out" / "report.json").read_text())
    plain = run_all(ckpt, orl5, suite="ci", cache_dir=cache, progress=False)
    assert [(r.name, r.status, r.metrics) for r in run.report.results] == \
           [(r.name, r.status, r.metrics) for r in plain.results]
    assert run.report.diagnoses == plain.diagnoses and run.report.gate is None


def test_a_failing_run_is_not_saved_as_a_baseline_unless_forced(ckpt, orl5, cache, failing_suite, tmp_path):
    run = run_and_gate(config(ckpt, orl5, cache), failing_suite, save_baseline=tmp_path / "b.json")
    assert run.exit_code == 1 and "--force-save-baseline" in run.baseline_refused
    assert "baseline" not in run.write() and not (tmp_path / "b.json").exists()
    forced = run_and_gate(config(ckpt, orl5, cache), failing_suite, save_baseline=tmp_path / "b.json",
                          force_save_baseline=True)
    assert forced.baseline_refused is None and forced.write()["baseline"].is_file()
