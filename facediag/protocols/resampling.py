"""The gallery protocol's metrics under the subject bootstrap: intervals for one model, or for
two models and their paired difference (the same resampled subjects on both sides).

Images of one subject are not independent, so subjects are resampled (metrics.significance).
Which rows a metric resamples (mated probes, impostor pairs, paired probes, or genuine +
impostor pairs for EER/TAR) comes from the metric catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facediag.metrics.catalogue import resample_kind
from facediag.metrics.significance import (BootstrapCI, bootstrap_mean, bootstrap_ratio, bootstrap_verification_stats,
                                           mcnemar_exact, percentile_ci)
from facediag.metrics.verification import verification_metrics
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.protocols.gallery import Evaluation


@dataclass
class Tested:
    """One metric with bootstrap intervals for A, B and B − A (and McNemar where it applies)."""

    key: str
    a: BootstrapCI
    b: BootstrapCI | None
    delta: BootstrapCI | None
    p_value: float | None = None  # McNemar exact, per-probe correctness metrics only


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


@dataclass
class _Values:
    """One metric's rows for the bootstrap: per-row values, or per-row (numerator, denominator)
    when a row aggregates many pairs (a probe's impostor pairs); McNemar applies to per-probe
    correctness only."""

    values: np.ndarray
    denominators: np.ndarray | None = None
    mcnemar: bool = False


def _per_row_values(ev: Evaluation, rows, templates, paired_rows, threshold, ranks) -> dict[str, _Values]:
    """key -> its rows, over the probes and templates both models have: the Evaluation's own
    definitions, from its matching pass (impostor pairs as per-probe counts and sums)."""
    sub = ev.subset(rows, templates)
    rank, genuine = sub.genuine_ranks(), sub.genuine_scores()
    mt = sub.matching
    out = {f"identification.rank{k}": _Values(rank <= k, mcnemar=True) for k in ranks}
    out["identification.accuracy_at_threshold"] = _Values((rank == 1) & (genuine >= threshold), mcnemar=True)
    out["identification.far_at_threshold"] = _Values(sub.false_accepts(threshold), mt.impostor_count)
    out["pair-gap.genuine_mean"] = _Values(genuine)
    out["pair-gap.impostor_mean"] = _Values(mt.impostor_sum, mt.impostor_count)
    out["pair-gap.paired_mean"] = _Values(ev.subset(paired_rows, templates).paired_scores())
    return out


def _groups(subjects, templates, paired_subjects) -> dict[str, np.ndarray]:
    """The subject each row belongs to, per kind of row: the cluster a bootstrap resamples.
    Impostor rows are probes (each holding its impostor pairs)."""
    mated = np.isin(subjects, templates)
    return {"probe": subjects[mated], "impostor": subjects, "paired": paired_subjects}


def bootstrap_tests(ev_a: Evaluation, ev_b: Evaluation | None = None, *,
                    threshold: float | tuple[float, float] = DEFAULT_THRESHOLD, ranks=(1, 5, 10),
                    fars=(0.1, 0.01, 0.001, 0.0001), n_boot: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> dict[str, Tested]:
    """Subject-bootstrap intervals of the resamplable metrics, for A alone or A and B paired.

    Every interval of one metric uses the same resampled subjects, so B − A is a paired
    difference. Keys are ``check.metric`` as the checks name them; a FAR the impostor count
    cannot support (n·FAR < 10) is left out, as verification leaves it out. ``threshold``: one
    for both sides, or (A's, B's) when each is judged at its own (fixed on a development set)."""
    rows, subjects, templates, paired_rows, paired_subjects = _common(ev_a, ev_b)
    groups = _groups(subjects, templates, paired_subjects)
    per_side = threshold if isinstance(threshold, tuple) else (threshold, threshold)
    values = [_per_row_values(ev, rows, templates, paired_rows, t, ranks)
              for ev, t in zip((ev_a,) if ev_b is None else (ev_a, ev_b), per_side)]
    out: dict[str, Tested] = {}
    for key, a in values[0].items():
        g = groups[resample_kind(key)]
        if len(a.values) == 0 or len(np.unique(g)) < 2:
            continue  # nothing to resample (e.g. no probe has its own HR image)

        def ci(v, den=a.denominators, g=g):  # the same seed and groups give the same resampled subjects
            v = np.asarray(v, float)
            return bootstrap_mean(v, g, n_boot, alpha, seed) if den is None else bootstrap_ratio(
                v, den, g, n_boot, alpha, seed)

        if ev_b is None:
            out[key] = Tested(key, ci(a.values), None, None)
            continue
        b = values[1][key]  # same probes and templates: a ratio's denominators are the same on both sides
        p = mcnemar_exact(a.values, b.values)["p_value"] if a.mcnemar else None
        out[key] = Tested(key, ci(a.values), ci(b.values),
                          ci(np.asarray(b.values, float) - np.asarray(a.values, float)), p)
    evs = [ev.subset(rows, templates) for ev in ((ev_a,) if ev_b is None else (ev_a, ev_b))]
    out.update(_verification_tests(evs, fars, n_boot, alpha, seed))
    return out


def _verification_tests(evs: list[Evaluation], fars, n_boot, alpha, seed) -> dict[str, Tested]:
    """EER and TAR@FAR per side, on the same resampled subjects. The resamples use every impostor
    pair when they were kept, else the matching pass's sample of pairs (the same pairs on both
    sides); the point estimate is always the one over every pair."""
    genuine_groups = evs[0].probe_subjects[evs[0].mated]
    if len(evs[0].genuine_scores()) == 0 or evs[0].impostors.n == 0 or len(np.unique(genuine_groups)) < 2:
        return {}
    stats: dict[str, list[np.ndarray]] = {}
    for ev in evs:  # the same seed and subjects give the same draws per side
        imp = ev.impostors
        per_side = bootstrap_verification_stats(ev.genuine_scores(), imp.sample, genuine_groups,
                                                ev.impostor_subjects(imp.sample_probe), fars, n_boot, seed)
        if not imp.exact:
            exact = verification_metrics(ev.genuine_scores(), imp, fars=fars).as_dict()
            for name, values in per_side.items():
                if exact.get(name) is not None:
                    values[0] = exact[name]
        for name, values in per_side.items():
            stats.setdefault(f"verification.{name}", []).append(values)
    out = {}
    for key, per_side in stats.items():  # row 0 of each is the point estimate on all subjects
        a = percentile_ci(per_side[0][0], per_side[0][1:], alpha)
        if len(per_side) == 1:
            out[key] = Tested(key, a, None, None)
            continue
        d = per_side[1] - per_side[0]
        out[key] = Tested(key, a, percentile_ci(per_side[1][0], per_side[1][1:], alpha),
                          percentile_ci(d[0], d[1:], alpha))
    return out
