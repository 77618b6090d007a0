"""Regression gating: fail CI when a gated metric got worse than a stored baseline report.

A gated metric fails only when BOTH hold:
- it got worse by more than its tolerance (``[gate.max_drop]`` in the suite TOML, or
  ``--max-drop metric=value``; "worse" is a fall for rank-1, a rise for EER), and
- the change lies outside its subject-level bootstrap interval, so the gate does not flap
  on noise. Where both reports hold per-probe results (rank-1: the identification check's
  ``correct_rank1`` and ``probe_rows``) the interval is of the paired change on the same
  probes; otherwise the baseline value must lie outside this run's interval of the metric.

A baseline made on different data (dataset fingerprint: the content of every gallery and
probe file, the degradation, the DSR) is refused unless forced: its numbers mean nothing here.

The parity condition (compare of one network in two formats, ``[gate.parity]`` or
``--parity-min-cosine`` / ``--parity-max-rank1-changed``) is no regression test: the deployed
model must match the reference image by image, so no interval excuses it. It fails when the
lowest per-image cosine is below ``min_cosine`` or more probes than ``max_rank1_changed`` (a
count) changed their rank-1 decision.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from facediag.checks.registry import get_check
from facediag.errors import FacediagError
from facediag.formatting import format_value
from facediag.metrics.catalogue import higher_is_better, resolve
from facediag.metrics.operating_point import provenance_text
from facediag.metrics.significance import bootstrap_mean
from facediag.metrics.verdict import WORSE, interval_verdict
from facediag.protocols.resampling import bootstrap_tests
from facediag.results import Report, load_report

# Gated when neither the suite nor the command line names a metric.
DEFAULT_MAX_DROP = {"identification.rank1": 0.02}

# Metrics whose per-probe results a run report stores: (check, data key of per-probe values).
PER_PROBE = {"identification.rank1": ("identification", "correct_rank1")}

# The parity condition's bounds when one is named and the other is not.
PARITY_DEFAULTS = {"min_cosine": 0.9999, "max_rank1_changed": 0}


def parse_max_drop(items: Iterable[str]) -> dict[str, float]:
    """``["rank1=0.01", "verification.eer=0.02"]`` -> {"identification.rank1": 0.01, ...}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            tol = float(value) if sep else None
        except ValueError:
            tol = None
        if not name.strip() or tol is None or not tol >= 0:
            raise FacediagError(f"--max-drop {item!r}: write metric=tolerance with a tolerance >= 0, e.g. rank1=0.01")
        key = resolve(name)
        if higher_is_better(key) is None:
            raise FacediagError(f"cannot gate {key}: it is a shift, not a quality (facediag does not call "
                                f"either direction worse)")
        out[key] = tol
    return out


def tolerances(suite, overrides: Mapping[str, float] | Iterable[str] | None = None) -> dict[str, float]:
    """The suite's ``[gate.max_drop]``, then the command line's ``--max-drop`` over it; default rank-1."""
    table = (suite.gate or {}).get("max_drop") or {}
    if not isinstance(table, Mapping):
        raise FacediagError(f"{suite.path or suite.name}: [gate.max_drop] must be a table of metric = tolerance")
    items = [f"{k}={v}" for k, v in table.items()]
    if overrides:  # later items win: the command line over the suite
        items += [f"{k}={v}" for k, v in overrides.items()] if isinstance(overrides, Mapping) else list(overrides)
    return parse_max_drop(items) or dict(DEFAULT_MAX_DROP)


@dataclass(frozen=True)
class ParityBounds:
    min_cosine: float        # every image's cosine between A's and B's embedding at least this
    max_rank1_changed: int   # at most this many probes name another subject with B than with A


def parity_bounds(suite, min_cosine: float | None = None, max_rank1_changed: int | None = None) -> ParityBounds | None:
    """The suite's ``[gate.parity]``, then the command line's bounds over it; None when neither
    asks for parity. Bad values are bad input, found before any work."""
    table = (suite.gate or {}).get("parity")
    if table is not None and not isinstance(table, Mapping):
        raise FacediagError(f"{suite.path or suite.name}: [gate.parity] must be a table: min_cosine = 0.9999, "
                            "max_rank1_changed = 0")
    given = dict(table or {})
    unknown = sorted(set(given) - set(PARITY_DEFAULTS))
    if unknown:
        raise FacediagError(f"{suite.path or suite.name}: [gate.parity] has no {unknown[0]!r}; "
                            f"it takes {' and '.join(PARITY_DEFAULTS)}")
    for key, value in (("min_cosine", min_cosine), ("max_rank1_changed", max_rank1_changed)):
        if value is not None:
            given[key] = value
    if table is None and not given:
        return None
    cos, changed = {**PARITY_DEFAULTS, **given}.values()
    if isinstance(cos, bool) or not isinstance(cos, (int, float)) or not 0 < cos <= 1:
        raise FacediagError(f"parity min_cosine must be a number in (0, 1], got {cos!r}")
    if isinstance(changed, bool) or not isinstance(changed, int) or changed < 0:
        raise FacediagError(f"parity max_rank1_changed is a count of probes (an integer >= 0), got {changed!r}")
    return ParityBounds(float(cos), int(changed))


def judge_parity(parity: Mapping[str, Any] | None, bounds: ParityBounds) -> Judgement:
    """The parity condition on compare's parity section (metrics.parity.deployment_parity)."""
    if not parity:
        return Judgement("parity", True, "FAIL parity: not measured")
    low, changed, probes = parity["cosine"]["min"], parity["rank1_changed"], parity["probes"]
    figures = (f"per-image cosine min {low:.7f} (bound {bounds.min_cosine:g}), rank-1 decision changed on "
               f"{changed} of {probes} probes (at most {bounds.max_rank1_changed} allowed)")
    failed = low < bounds.min_cosine or changed > bounds.max_rank1_changed
    return Judgement("parity", failed, f"{'FAIL' if failed else 'ok  '} parity: {figures}")


@dataclass
class Judgement:
    key: str
    failed: bool
    line: str


def judge(key: str, before, after, tolerance: float, *, beyond_noise: bool | None, noise: str = "",
          labels=("the baseline", "this run")) -> Judgement:
    """Fail when ``after`` is worse than ``before`` by more than ``tolerance`` and beyond noise.

    ``beyond_noise`` None means no interval exists for this metric: the tolerance alone
    decides, and the line says so. A metric missing on either side fails: a gate that
    cannot measure must not pass silently."""
    direction = higher_is_better(key)
    if before is None or after is None:
        side = labels[0] if before is None else labels[1]
        return Judgement(key, True, f"FAIL {key}: not measured for {side}")
    if direction is None:
        raise FacediagError(f"cannot gate {key}: facediag does not know whether higher is better for it")
    worse_by = (before - after) if direction else (after - before)
    values = f"{key} {format_value(before)} → {format_value(after)}"
    if worse_by <= tolerance:
        how = "no worse" if worse_by <= 0 else f"worse by {format_value(worse_by)}, within {format_value(tolerance)}"
        return Judgement(key, False, f"ok   {values}: {how}")
    why = f"worse by {format_value(worse_by)} (> {format_value(tolerance)} allowed)"
    if beyond_noise is None:
        return Judgement(key, True, f"FAIL {values}: {why}; no bootstrap interval for this metric, tolerance only")
    if not beyond_noise:
        return Judgement(key, False, f"ok   {values}: {why} but within noise ({noise})")
    return Judgement(key, True, f"FAIL {values}: {why}, beyond noise ({noise})")


def gate_outcome(judgements: list[Judgement], notes: Iterable[str] = ()) -> dict:
    """``{"passed", "lines", "failed"}``: the shape every renderer shows (``Report.gate``)."""
    return {"passed": not any(j.failed for j in judgements),
            "lines": [*notes, *(j.line for j in judgements)],
            "failed": [j.key for j in judgements if j.failed]}


# -------------------------------------------------------------------------- baselines
@dataclass
class BaselineGate:
    """A baseline report with the tolerances to hold a run to: what ``run-all --baseline-report`` uses."""

    baseline: Report
    max_drop: dict[str, float]
    notes: list[str]

    @classmethod
    def load(cls, path: str | Path, suite, max_drop_items: Iterable[str], dataset: Mapping[str, Any], *,
             force: bool = False) -> "BaselineGate":
        """Read and vet the baseline before any work: a bad file, a bad tolerance or other
        data is bad input (one clear line), not a gate failure after a long run."""
        baseline = load_report(path)
        max_drop = tolerances(suite, max_drop_items)
        note = check_same_data(baseline, dataset, force=force, path=path)
        return cls(baseline, max_drop, [note] if note else [])

    def evaluate(self, report: Report, session, **kw) -> dict:
        return evaluate(report, self.baseline, session, self.max_drop, notes=self.notes, **kw)


def check_same_data(baseline: Report, dataset: Mapping[str, Any], *, force: bool = False,
                    path: str | Path = "the baseline") -> str | None:
    """Refuse a baseline made on other data unless ``force``; returns a note when forced."""
    theirs = baseline.dataset or {}
    diffs = [f"{k} {theirs.get(k)!s:.12} here {dataset.get(k)!s:.12}" for k in ("fingerprint", "dsr")
             if theirs.get(k) != dataset.get(k)]
    aligned = [(d.get("alignment") or {}).get("method") or "none" for d in (theirs, dataset)]
    if aligned[0] != aligned[1]:  # already in the fingerprint; named, so the remedy is plain
        diffs.append(f"alignment {aligned[0]} here {aligned[1]}")
    if not diffs:
        return None
    what = f"{path} was made on different data ({'; '.join(diffs)})"
    if not force:
        raise FacediagError(f"{what}: evaluate the same data, degradation and DSR, or pass --force-baseline")
    return f"forced: {what}"


def evaluate(report: Report, baseline: Report, session, max_drop: Mapping[str, float], *,
             n_boot: int = 1000, alpha: float = 0.05, seed: int = 0, notes: Iterable[str] = ()) -> dict:
    """The gate outcome for ``report`` (just run on ``session``) against ``baseline``:
    ``{"passed", "lines", "failed"}``, the shape every renderer shows."""
    params = {n: (report.suite.get("checks") or {}).get(n) or get_check(n).params
              for n in ("identification", "verification")}
    current: dict = {}

    def intervals() -> dict:  # this run's intervals, computed once and only when a metric needs them
        if not current:
            current.update(bootstrap_tests(
                session.evaluation("model"), threshold=params["identification"]["threshold"],
                ranks=tuple(params["identification"]["ranks"]), fars=tuple(params["verification"]["fars"]),
                n_boot=n_boot, alpha=alpha, seed=seed))
        return current

    judgements = []
    notes = [*notes, *filter(None, [threshold_note(baseline, report)])]
    for key, tol in max_drop.items():
        check, metric = key.split(".", 1)
        before, after = baseline.metric(check, metric), report.metric(check, metric)
        beyond, noise = None, ""
        paired = _paired_change(key, baseline, report, session, n_boot, alpha, seed)
        if paired is not None:
            beyond = interval_verdict(*paired, higher_is_better(key)) == WORSE
            noise = f"paired subject bootstrap of the change [{paired[1]:+.3f}, {paired[2]:+.3f}]"
        elif before is not None and after is not None and key in intervals():
            ci = intervals()[key].a
            beyond = not ci.low <= before <= ci.high
            noise = f"this run's subject-bootstrap interval [{format_value(ci.low)}, {format_value(ci.high)}]"
        judgements.append(judge(key, before, after, tol, beyond_noise=beyond, noise=noise))
    return gate_outcome(judgements, [f"against {_describe(baseline)}", *notes])


def threshold_note(baseline: Report, report: Report) -> str | None:
    """The gate's line when the baseline ran at another operating threshold than this run (say one
    fixed on a development set, ``--threshold-from``): metrics at the threshold then compare two
    operating points. None when both ran at the same one."""
    before, now = ((r.suite or {}).get("operating_threshold") for r in (baseline, report))
    if now is None or (before is not None and (before.get("threshold"), before.get("source"))
                       == (now.get("threshold"), now.get("source"))):
        return None
    if before is None:
        return None if now.get("source") != "dev" else (
            f"the baseline does not say where its threshold came from; this run's {provenance_text(now)}")
    return (f"operating thresholds differ, so the metrics at the threshold compare two operating points: the "
            f"baseline's {provenance_text(before)}; this run's {provenance_text(now)}")


def _paired_change(key, baseline: Report, report: Report, session, n_boot, alpha, seed):
    """(change, low, high) of now − baseline over the probes both reports scored, resampling subjects."""
    if key not in PER_PROBE:
        return None
    check, data_key = PER_PROBE[key]
    sides = []
    for rep in (baseline, report):
        res = rep.result(check)
        if res is None or data_key not in res.data or "probe_rows" not in res.data:
            return None
        sides.append(dict(zip(res.data["probe_rows"], res.data[data_key])))
    common = sorted(set(sides[0]) & set(sides[1]))
    probes = session.protocol.probes
    if len(common) < 2 or common[-1] >= len(probes):
        return None
    change = np.array([float(sides[1][r]) - float(sides[0][r]) for r in common])
    subjects = [probes[r].subject for r in common]
    if len(set(subjects)) < 2:
        return None
    return tuple(bootstrap_mean(change, subjects, n_boot, alpha, seed))


def _describe(baseline: Report) -> str:
    model = (baseline.checkpoints or {}).get("model") or {}
    sha = str(model.get("sha256") or "")[:12]
    return f"{Path(str(model.get('path') or '?')).name} (sha256 {sha}, {baseline.created})"
