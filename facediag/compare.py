"""Compare two checkpoints on the same data: is B better or worse than A, and is it real?

Both models run in ONE Session (A as role "model", B as role "baseline"), so they see the
same records and the same DSR outputs and every image is embedded once per model; the
suite runs on each side through ``session.for_role``. On top of the two run reports:

- every metric of A and B with the delta;
- for the metrics that can be resampled (rank-k, accuracy and false accepts at the
  threshold, EER, TAR@FAR, genuine/impostor/paired means): subject-level bootstrap
  intervals for A, for B and for the paired difference B − A (the same resampled subjects
  on both sides), and McNemar's exact test where per-probe correctness exists;
- a verdict per tested metric: better, worse, or no significant change;
- how far B moved: linear CKA between A's and B's embeddings of the same images, and the
  shift of the genuine, impostor and paired score distributions;
- the diagnoses of each side, and a gate: B significantly worse than A on a gated metric
  (by more than its tolerance) fails.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facediag import __version__
from facediag.errors import FacediagError
from facediag.evaluation import Evaluation
from facediag.io import atomic_write_text
from facediag.metrics.distribution import linear_cka
from facediag.metrics.identification import l2_normalize
from facediag.metrics.significance import bootstrap_mean, bootstrap_verification_stats, mcnemar_exact
from facediag.registry import get_check
from facediag.report.schema import SCHEMA_VERSION, Report, json_default, load_report_dict
from facediag.runner import run_suite
from facediag.session import Session, SessionConfig
from facediag.suite import Suite, load_suite

BETTER, WORSE, NO_CHANGE = "better", "worse", "no significant change"
HIGHER, LOWER = "higher", "lower"  # verdicts of metrics that are a shift, not a quality

# Which way is better, by "check.metric" pattern. Metrics matching neither have no
# direction: their change is reported, never called better or worse.
_HIGHER_IS_BETTER = (
    "identification.rank*", "identification.accuracy_at_threshold", "identification.open_set_dir", "identification.open_set_correct_rejection_rate",
    "verification.auc", "verification.tar_at_far_*", "verification.dprime", "verification.pair_accuracy_10fold",
    "pair-gap.rank1", "pair-gap.hr_rank1", "pair-gap.separation", "pair-gap.accuracy_at_threshold",
    "norm-sanity.effective_rank", "weights-integrity.matched_fraction", "weights-integrity.dprime",
    "preprocessing.auc_expected",
)
_LOWER_IS_BETTER = (
    "identification.far_at_threshold", "identification.open_set_false_alarm_rate", "verification.eer",
    "pair-gap.impostor_mean", "pair-gap.far_at_threshold", "norm-sanity.impostor_mean",
    "norm-sanity.dead_fraction", "norm-sanity.dead_dimensions", "norm-sanity.nonfinite_embeddings",
    "weights-integrity.nonfinite_tensors", "weights-integrity.init_fraction",
)


def higher_is_better(key: str) -> bool | None:
    """True / False when facediag knows which way ``check.metric`` is better, else None."""
    if any(fnmatch.fnmatchcase(key, p) for p in _HIGHER_IS_BETTER):
        return True
    if any(fnmatch.fnmatchcase(key, p) for p in _LOWER_IS_BETTER):
        return False
    return None


def verdict_of(delta: float, significant: bool, direction: bool | None) -> str:
    """Better / worse (or higher / lower without a direction) when significant, else no change."""
    if not significant or delta == 0:
        return NO_CHANGE
    if direction is None:
        return HIGHER if delta > 0 else LOWER
    return BETTER if (delta > 0) == direction else WORSE


def interval_verdict(delta: float, low: float, high: float, direction: bool | None) -> str:
    """Significant when the interval of the change B − A leaves out 0."""
    return verdict_of(delta, not low <= 0 <= high, direction)


# --------------------------------------------------------------------------- statistics
@dataclass
class Interval:
    """A point estimate and its subject-bootstrap percentile interval."""

    point: float
    low: float
    high: float


@dataclass
class Tested:
    """One metric with bootstrap intervals for A, B and B − A (and McNemar where it applies)."""

    key: str
    a: Interval
    b: Interval | None
    delta: Interval | None
    p_value: float | None = None  # McNemar exact, per-probe correctness metrics only


class _Scores:
    """One model's probe × template scores, restricted to rows and columns both models have."""

    def __init__(self, ev: Evaluation, rows: np.ndarray, templates: np.ndarray, paired_rows: np.ndarray):
        ri = np.searchsorted(ev.probe_rows, rows)  # probe_rows is increasing (protocol order)
        ci = np.searchsorted(ev.template_subjects, templates)  # template_subjects is sorted
        self.scores = ev.scores[np.ix_(ri, ci)]
        pi = np.searchsorted(ev.probe_rows, paired_rows)
        self.paired = np.einsum("ij,ij->i", ev.probe_emb[pi], ev.probe_hr_emb[pi])


def _common(ev_a: Evaluation, ev_b: Evaluation | None):
    """Probe rows, template subjects and paired rows present for both models (usually all)."""
    evs = [ev_a] if ev_b is None else [ev_a, ev_b]
    rows = evs[0].probe_rows
    templates = evs[0].template_subjects
    paired = evs[0].probe_rows[evs[0].has_pairs]
    for ev in evs[1:]:
        rows = np.intersect1d(rows, ev.probe_rows)
        templates = np.intersect1d(templates, ev.template_subjects)
        paired = np.intersect1d(paired, ev.probe_rows[ev.has_pairs])
    subjects = evs[0].probe_subjects[np.searchsorted(evs[0].probe_rows, rows)]
    paired_subjects = evs[0].probe_subjects[np.searchsorted(evs[0].probe_rows, paired)]
    return rows, subjects, templates, paired, paired_subjects


def _per_row_values(s: _Scores, subjects, templates, threshold, ranks) -> dict[str, tuple[np.ndarray, bool]]:
    """key -> (one value per probe or pair, is it per-probe correctness (McNemar applies)).

    Same definitions as the identification and pair-gap checks: ties count against the
    probe, impostor pairs are every probe against every other subject's template."""
    mated = np.isin(subjects, templates)
    cols = np.searchsorted(templates, subjects[mated])
    rows = s.scores[mated]
    genuine = rows[np.arange(len(rows)), cols]
    rank = (rows >= genuine[:, None]).sum(axis=1)
    impostor = s.scores[subjects[:, None] != templates[None, :]]
    out = {f"identification.rank{k}": (rank <= k, True) for k in ranks}
    out["identification.accuracy_at_threshold"] = ((rank == 1) & (genuine >= threshold), True)
    out["identification.far_at_threshold"] = (impostor >= threshold, False)
    out["pair-gap.genuine_mean"] = (genuine, False)
    out["pair-gap.impostor_mean"] = (impostor, False)
    out["pair-gap.paired_mean"] = (s.paired, False)
    return out


def _groups(subjects, templates, paired_subjects) -> dict[str, np.ndarray]:
    """The subject each row belongs to, per kind of row: the cluster a bootstrap resamples."""
    mated = np.isin(subjects, templates)
    impostor_groups = np.broadcast_to(subjects[:, None], (len(subjects), len(templates)))
    return {"probe": subjects[mated], "impostor": impostor_groups[subjects[:, None] != templates[None, :]],
            "paired": paired_subjects}


def _group_kind(key: str) -> str:
    if key.endswith(("far_at_threshold", "impostor_mean")):
        return "impostor"
    return "paired" if key.endswith("paired_mean") else "probe"  # genuine: one score per mated probe


def _interval(point, stats, alpha) -> Interval:
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Interval(float(point), float(low), float(high))


def bootstrap_tests(ev_a: Evaluation, ev_b: Evaluation | None = None, *, threshold: float = 0.35,
                    ranks=(1, 5, 10), fars=(0.1, 0.01, 0.001, 0.0001), n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0) -> dict[str, Tested]:
    """Subject-bootstrap intervals of the resamplable metrics, for A alone or A and B paired.

    Every interval of one metric uses the same resampled subjects, so B − A is a paired
    difference. Keys are ``check.metric`` as the checks name them; a FAR the impostor count
    cannot support (n·FAR < 10) is left out, as verification leaves it out."""
    rows, subjects, templates, paired_rows, paired_subjects = _common(ev_a, ev_b)
    sides = [_Scores(ev, rows, templates, paired_rows) for ev in ((ev_a,) if ev_b is None else (ev_a, ev_b))]
    groups = _groups(subjects, templates, paired_subjects)
    values = [_per_row_values(s, subjects, templates, threshold, ranks) for s in sides]
    out: dict[str, Tested] = {}
    for key, (va, mcnemar_ok) in values[0].items():
        g = groups[_group_kind(key)]
        if len(va) == 0 or len(np.unique(g)) < 2:
            continue  # nothing to resample (e.g. no probe has its own HR image)

        def ci(v, g=g):  # the same seed and groups give the same resampled subjects every call
            return Interval(*bootstrap_mean(np.asarray(v, float), g, n_boot, alpha, seed))

        if ev_b is None:
            out[key] = Tested(key, ci(va), None, None)
            continue
        vb = values[1][key][0]
        p = mcnemar_exact(va, vb)["p_value"] if mcnemar_ok else None
        out[key] = Tested(key, ci(va), ci(vb), ci(np.asarray(vb, float) - np.asarray(va, float)), p)
    pairs = [(v["pair-gap.genuine_mean"][0], v["pair-gap.impostor_mean"][0]) for v in values]
    out.update(_verification_tests(pairs, groups, fars, n_boot, alpha, seed))
    return out


def _verification_tests(pairs, groups, fars, n_boot, alpha, seed) -> dict[str, Tested]:
    """EER and TAR@FAR over (genuine, impostor) scores per side, on the same resampled subjects."""
    g, i = pairs[0]
    if len(g) == 0 or len(i) == 0 or len(np.unique(groups["probe"])) < 2:
        return {}
    stats: dict[str, list[np.ndarray]] = {}
    for genuine, impostor in pairs:  # the same seed and subjects give the same draws per side
        per_side = bootstrap_verification_stats(genuine, impostor, groups["probe"], groups["impostor"], fars,
                                                n_boot, seed)
        for name, values in per_side.items():
            stats.setdefault(f"verification.{name}", []).append(values)
    out = {}
    for key, per_side in stats.items():  # row 0 of each is the point estimate on all subjects
        a = _interval(per_side[0][0], per_side[0][1:], alpha)
        if len(per_side) == 1:
            out[key] = Tested(key, a, None, None)
            continue
        d = per_side[1] - per_side[0]
        out[key] = Tested(key, a, _interval(per_side[1][0], per_side[1][1:], alpha),
                          _interval(d[0], d[1:], alpha))
    return out


# ------------------------------------------------------------------------ the report
@dataclass
class MetricRow:
    """One metric of A and B. ``verdict`` is None for metrics without a bootstrap test."""

    key: str  # "check.metric"
    a: float | None
    b: float | None
    higher_is_better: bool | None = None
    a_ci: list[float] | None = None  # [low, high]
    b_ci: list[float] | None = None
    delta_ci: list[float] | None = None
    p_value: float | None = None  # McNemar exact
    verdict: str | None = None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def check(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def metric(self) -> str:
        return self.key.split(".", 1)[1]

    def as_dict(self) -> dict:
        return {"key": self.key, "a": self.a, "b": self.b, "delta": self.delta,
                "higher_is_better": self.higher_is_better, "a_ci": self.a_ci, "b_ci": self.b_ci,
                "delta_ci": self.delta_ci, "p_value": self.p_value, "verdict": self.verdict}

    @classmethod
    def from_dict(cls, d: dict) -> "MetricRow":
        return cls(d["key"], d.get("a"), d.get("b"), d.get("higher_is_better"), d.get("a_ci"),
                   d.get("b_ci"), d.get("delta_ci"), d.get("p_value"), d.get("verdict"))


@dataclass
class CompareReport:
    """A side-by-side comparison of checkpoint A (reference) and B (candidate) on the same data."""

    command: str
    a: Report  # the suite as run on A (its checkpoints hold role "model" = A)
    b: Report
    metrics: list[MetricRow]
    shift: dict[str, Any]  # how far B moved: cka per view, mcnemar_rank1, score shifts, notes
    gate: dict[str, Any]  # {"passed": bool, "lines": [...], "failed": [keys]}
    settings: dict[str, Any]  # n_boot, alpha, seed, threshold
    labels: tuple[str, str] = ("A", "B")
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    facediag_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def row(self, key: str) -> MetricRow | None:
        return next((r for r in self.metrics if r.key == key), None)

    @property
    def tested(self) -> list[MetricRow]:
        """Metrics with a verdict, identification first (rank-1 is the headline)."""
        order = ("identification", "verification", "pair-gap")
        rows = [r for r in self.metrics if r.verdict is not None]
        return sorted(rows, key=lambda r: order.index(r.check) if r.check in order else len(order))

    @property
    def passed(self) -> bool:
        return bool(self.gate.get("passed", True))

    @property
    def dataset(self) -> dict[str, Any]:
        return self.a.dataset

    def summary(self) -> str:
        """One line: which tested metrics got significantly better or worse."""
        worse = [r.metric for r in self.tested if r.verdict == WORSE]
        better = [r.metric for r in self.tested if r.verdict == BETTER]
        parts = [f"worse on {', '.join(worse)}" if worse else "",
                 f"better on {', '.join(better)}" if better else ""]
        said = "; ".join(p for p in parts if p) or "no significant change on any tested metric"
        return f"{self.labels[1]} vs {self.labels[0]}: {said}"

    def as_dict(self) -> dict:
        return {"schema_version": self.schema_version, "kind": "compare",
                "facediag_version": self.facediag_version, "created": self.created,
                "command": self.command, "labels": list(self.labels), "passed": self.passed,
                "summary": self.summary(), "settings": self.settings, "gate": self.gate,
                "shift": self.shift, "metrics": [r.as_dict() for r in self.metrics],
                "a": self.a.as_dict(), "b": self.b.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "CompareReport":
        if d.get("schema_version") != SCHEMA_VERSION or d.get("kind") != "compare":
            raise FacediagError(f"not a facediag compare report (schema_version {d.get('schema_version')!r}, "
                                f"kind {d.get('kind')!r})")
        return cls(d.get("command", ""), Report.from_dict(d["a"]), Report.from_dict(d["b"]),
                   [MetricRow.from_dict(r) for r in d.get("metrics", [])], d.get("shift", {}),
                   d.get("gate", {}), d.get("settings", {}), tuple(d.get("labels", ("A", "B"))),
                   d.get("created", ""), d.get("facediag_version", ""), d["schema_version"])

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=json_default, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json())


def load_compare_report(path: str | Path) -> CompareReport:
    return CompareReport.from_dict(load_report_dict(path))


# ------------------------------------------------------------------------ comparing
def compare(weights_a=None, weights_b=None, data=None, *, suite: str | Path | Suite | None = None,
            model_a=None, model_b=None, max_drop: dict[str, float] | None = None, n_boot: int = 1000,
            alpha: float = 0.05, seed: int = 0, command: str | None = None,
            **session_options) -> CompareReport:
    """Compare checkpoint B with A on the same data (the Python API behind ``facediag compare``).

    ``model_a``/``model_b`` may be already-loaded checkpoints instead of paths;
    ``session_options`` are SessionConfig fields (vlr_size, dsr, device, cache_dir, ...);
    ``max_drop`` gates metrics (``check.metric`` -> tolerance), over the suite's ``[gate]``.
    """
    from facediag.gate import tolerances  # gate builds on this module: import it late

    config = SessionConfig(weights=weights_a, baseline_weights=weights_b, data=data, **session_options)
    models = {role: m for role, m in (("model", model_a), ("baseline", model_b)) if m is not None}
    session = Session(config, models=models)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    return compare_session(session, suite, max_drop=tolerances(suite, max_drop), n_boot=n_boot, alpha=alpha,
                           seed=seed, command=command or "facediag.compare(...)")


def compare_session(session: Session, suite: Suite, *, max_drop: dict[str, float], n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0, command: str | None = None) -> CompareReport:
    """Compare role "baseline" (B) with role "model" (A) of one Session."""
    from facediag.gate import gate_outcome, judge  # gate builds on this module: import it late

    command = command if command is not None else shlex.join(["facediag", *sys.argv[1:]])
    # The comparison is the baseline here: a check that wants one would compare a side with itself.
    side_suite = replace(suite, checks={n: p for n, p in suite.checks.items()
                                        if "baseline" not in get_check(n).requires})
    a = run_suite(session.for_role("model"), side_suite, command)
    b = run_suite(session.for_role("baseline"), side_suite, command)
    ev_a, ev_b = session.evaluation("model"), session.evaluation("baseline")
    params = {name: suite.params(name) if name in suite.checks else get_check(name).params
              for name in ("identification", "verification")}
    threshold = params["identification"]["threshold"]
    tests = bootstrap_tests(ev_a, ev_b, threshold=threshold, ranks=tuple(params["identification"]["ranks"]),
                            fars=tuple(params["verification"]["fars"]), n_boot=n_boot, alpha=alpha, seed=seed)
    rows = _rows(a, b, tests, alpha)
    by_key = {r.key: r for r in rows}
    judgements = []
    for key, tol in max_drop.items():
        row = by_key.get(key)
        judgements.append(judge(key, row.a if row else None, row.b if row else None, tol,
                                beyond_noise=None if row is None or row.verdict is None else row.verdict == WORSE,
                                noise=_noise_text(row) if row else "", labels=("A", "B")))
    shift = {"cka": _cka(session), "mcnemar_rank1": _mcnemar_rank1(ev_a, ev_b),
             "scores": {name: by_key[f"pair-gap.{name}_mean"].as_dict() for name in ("genuine", "impostor", "paired")
                        if f"pair-gap.{name}_mean" in by_key},
             "notes": _cautions(by_key, threshold)}
    return CompareReport(command, a, b, rows, shift, gate_outcome(judgements),
                         {"n_boot": n_boot, "alpha": alpha, "seed": seed, "threshold": threshold,
                          "method": "verdicts: McNemar's exact test for per-probe correctness (rank-k, accuracy "
                                    "at the threshold), else the subject-level bootstrap interval of B − A (the "
                                    "same resampled subjects on both sides)"},
                         (_label(a), _label(b)))


def _label(report: Report) -> str:
    path = report.checkpoints.get("model", {}).get("path") or ""
    return Path(path).name or "?"


def _rows(a: Report, b: Report, tests: dict[str, Tested], alpha: float) -> list[MetricRow]:
    """Every numeric metric of either side, in report order; tested ones carry intervals and a verdict."""
    keys: list[str] = []
    values: dict[str, list] = {}
    for side, report in enumerate((a, b)):
        for res in report.results:
            for name, v in res.metrics.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                key = f"{res.name}.{name}"
                if key not in values:
                    keys.append(key)
                    values[key] = [None, None]
                values[key][side] = float(v)
    keys += [k for k in tests if k not in values]
    rows = []
    for key in keys:
        direction = higher_is_better(key)
        t = tests.get(key)
        if t is None or t.b is None:
            va, vb = values.get(key, [None, None])
            rows.append(MetricRow(key, va, vb, direction))
            continue
        if t.p_value is not None:  # per-probe correctness: McNemar's exact test decides
            verdict = verdict_of(t.delta.point, t.p_value < alpha, direction)
        else:
            verdict = interval_verdict(t.delta.point, t.delta.low, t.delta.high, direction)
        rows.append(MetricRow(key, t.a.point, t.b.point, direction, [t.a.low, t.a.high], [t.b.low, t.b.high],
                              [t.delta.low, t.delta.high], t.p_value, verdict))
    return rows


def _cautions(by_key: dict[str, MetricRow], threshold: float) -> list[str]:
    """Changes that read better than they are."""
    acc, far = by_key.get("identification.accuracy_at_threshold"), by_key.get("identification.far_at_threshold")
    if acc and far and acc.verdict == BETTER and far.verdict == WORSE:
        return [f"accuracy at {threshold:g} rose ({acc.a:.3f} → {acc.b:.3f}) only with the false-accept rate "
                f"({far.a:.2%} → {far.b:.2%}): B accepts more of everyone, it does not recognise people better"]
    return []


def _noise_text(row: MetricRow) -> str:
    if row.delta_ci is None:
        return ""
    p = f", McNemar p {row.p_value:.2g}" if row.p_value is not None else ""
    return f"B − A interval [{row.delta_ci[0]:+.3f}, {row.delta_ci[1]:+.3f}]{p}"


def _mcnemar_rank1(ev_a: Evaluation, ev_b: Evaluation) -> dict:
    """Discordant probes of rank-1 on the probes both models scored."""
    ca, cb = (dict(zip(ev.probe_rows[ev.mated].tolist(), ev.rank1_correct().tolist())) for ev in (ev_a, ev_b))
    common = sorted(set(ca) & set(cb))
    return mcnemar_exact([ca[r] for r in common], [cb[r] for r in common])


def _cka(session: Session) -> dict[str, float | None]:
    """Linear CKA between A's and B's L2-normalised embeddings of the same images, per view."""
    out = {}
    for view in ("gallery", "probe_dsr"):
        ea, eb = session.embeddings("model", view), session.embeddings("baseline", view)
        ok = ea.valid & eb.valid
        out[view] = linear_cka(l2_normalize(ea.raw[ok]), l2_normalize(eb.raw[ok])) if ok.sum() > 1 else None
    return out


def exit_code(report: CompareReport) -> int:
    """0 unless B is significantly worse than A on a gated metric (then 1)."""
    return 0 if report.passed else 1
