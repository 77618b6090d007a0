"""The run-all workflow: what ``facediag run-all``/``run`` do, but the printing.

Bad input fails before any work; then the suite runs, the gate judges it, and nothing is
written until ``GatedRun.write()``, so the caller shows the report first. Under torchrun every
rank embeds its shard (``Session.prepare``) and rank 0 alone runs the suite.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facediag.data.images import header_size
from facediag.distributed import Distributed
from facediag.errors import FacediagError
from facediag.gate import BaselineGate
from facediag.models.dsr import probe_dsr
from facediag.outputs import check_outputs, data_paths, out_cache, out_dir, out_file
from facediag.render import FILENAMES, write_all
from facediag.results import Report
from facediag.runner import check_dev_options, exit_code, run_suite, settle_alignment
from facediag.session import Session, SessionConfig
from facediag.suites import Suite, load_suite


@dataclass
class GatedRun:
    """A finished run-all: its Report (gate included), its exit code, and what it is to write.

    Nothing is written until ``write()``: the caller shows the report first, then writes.
    ``baseline_refused`` says why ``save_baseline`` will not be written (the run failed and
    saving was not forced), or is None.
    """

    report: Report
    exit_code: int
    out: Path | None = None
    save_baseline: Path | None = None
    baseline_refused: str | None = None
    written: dict[str, Path] = field(default_factory=dict)
    rank_counts: list[dict] | None = None  # under torchrun: what each rank embedded (Session.rank_counts)

    def write(self) -> dict[str, Path]:
        """Write the reports into ``out`` and the baseline; return {format or "baseline": path}."""
        if self.out is not None:
            self.written.update(write_all(self.report, self.out))
        if self.save_baseline is not None and self.baseline_refused is None:
            self.written["baseline"] = self.report.save(self.save_baseline)
        return self.written


def run_outputs(out: str | Path | None, save_baseline: str | Path | None) -> list:
    """What run-all writes: the report folder (with its four files) and the baseline file."""
    return [*out_dir("--out", out, FILENAMES.values()), *out_file("--save-baseline", save_baseline)]


def check_dsr(session: Session) -> None:
    """A --dsr model runs once on a blank probe of the probes' size before any check: a DSR that
    fails there or returns the wrong shape is one line (exit 2), as bench refuses it, not an
    ERROR in every check that uses it. Nothing to do without a DSR or at full resolution."""
    if session.config.dsr in (None, "bicubic") or not session.probes_need_dsr:
        return
    size = session.protocol.vlr_size
    if size is None:  # real VLR files only: the first one's size
        first = next((p.vlr for p in session.protocol.probes if p.vlr is not None), None)
        found = header_size(first.path) if first is not None else None
        size = (found[1], found[0]) if found else None
    if size is not None:
        probe_dsr(session.dsr, size)


def run_inputs(config: SessionConfig, suite: Suite | None = None,
               baseline_report: str | Path | None = None) -> dict[str, list]:
    """Every file and data root a run reads, as check_outputs takes them."""
    data_inputs, roots = data_paths(vars(config))
    inputs = [("--weights", config.weights), ("--baseline-weights", config.baseline_weights),
              ("--card", config.card), ("--baseline-card", config.baseline_card),
              ("--baseline-report", baseline_report), *data_inputs, ("--suite", getattr(suite, "path", None))]
    return {"inputs": inputs, "roots": roots}


def run_and_gate(config: SessionConfig, suite: str | Path | Suite | None = "default", *,
                 checks: Sequence[str] = (), baseline_report: str | Path | None = None,
                 max_drop: Iterable[str] = (), force_baseline: bool = False, fail_on: str | None = None,
                 out: str | Path | None = None, save_baseline: str | Path | None = None,
                 force_save_baseline: bool = False, command: str | None = None,
                 dist: Distributed | None = None, threshold_from: str | None = None) -> GatedRun | None:
    """The whole of ``facediag run-all``/``run`` but the printing: a GatedRun to show and write.

    Bad input fails before any work (FacediagError): the suite, every output path (never an
    input, never inside the data, writable), the checkpoints, the baseline report. Then the
    suite runs, the gate judges it against ``baseline_report``, and the exit code follows
    (``fail_on`` over the suite's). A run that fails does not become a baseline unless
    ``force_save_baseline``. ``threshold_from`` ("dev:fmr=1e-3", ...): every check, and so the
    gate, at the threshold fixed on the development set (config ``dev_*``).

    Under torchrun (``dist``) every rank must call this; each embeds its shard, and only rank 0
    runs the suite and gets the GatedRun: the others get None.
    """
    max_drop = list(max_drop or ())
    if (max_drop or force_baseline) and not baseline_report:
        raise FacediagError("--max-drop and --force-baseline need --baseline-report")
    if force_save_baseline and not save_baseline:
        raise FacediagError("--force-save-baseline needs --save-baseline")
    suite_obj = suite if isinstance(suite, Suite) else load_suite(suite)
    if checks:
        suite_obj = suite_obj.only(list(checks))
    check_outputs([*run_outputs(out, save_baseline), *out_cache(config.cache_dir, config.use_cache)],
                  **run_inputs(config, suite_obj, baseline_report))
    session = Session(config, dist=dist)
    session.check_card("model")  # a bad checkpoint (or model card) is bad input: fail before any work
    if config.baseline_weights:
        session.check_card("baseline")
    settle_alignment(session, suite_obj)  # --align auto decides before the data's fingerprint is read
    check_dsr(session)  # a DSR that cannot serve the probes is bad input: fail before any check
    check_dev_options(session, threshold_from)  # the development set, and a criterion it can support
    session.check_groups()  # a --groups file naming none of the data's people: one line, before any work
    gate = None
    if baseline_report:
        gate = BaselineGate.load(baseline_report, suite_obj, max_drop, session.dataset_info(), force=force_baseline)
    session.prepare()
    if not session.dist.main:
        return None
    report = run_suite(session, suite_obj, command=command, threshold_from=threshold_from)
    if gate:
        report.gate = gate.evaluate(report, session)
    code = exit_code(report, fail_on or suite_obj.fail_on)
    refused = None
    if save_baseline is not None and code != 0 and not force_save_baseline:
        why = "its gate failed" if report.gate is not None and not report.gate.get("passed", True) else "it failed"
        refused = (f"baseline not saved to {save_baseline}: {why} (exit {code}), and a baseline is what later "
                   "runs must match; add --force-save-baseline to save it anyway")
    return GatedRun(report, code, None if out is None else Path(out),
                    None if save_baseline is None else Path(save_baseline), refused,
                    rank_counts=session.rank_counts)
