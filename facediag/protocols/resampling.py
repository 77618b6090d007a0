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
from facediag.metrics.significance import (BootstrapCI, bootstrap_mean, bootstrap_verification_stats, mcnemar_exact,
                                           percentile_ci)
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


def _per_row_values(ev: Evaluation, rows, templates, paired_rows, threshold, ranks) -> dict[str, tuple[np.ndarray, bool]]:
    """key -> (one value per probe or pair, is it per-probe correctness (McNemar applies)),
    over the probes and templates both models have: the Evaluation's own definitions."""
    sub = ev.subset(rows, templates)
    rank, genuine = sub.genuine_ranks(), sub.genuine_scores()
    impostor = sub.impostor_scores()
    out = {f"identification.rank{k}": (rank <= k, True) for k in ranks}
    out["identification.accuracy_at_threshold"] = ((rank == 1) & (genuine >= threshold), True)
    out["identification.far_at_threshold"] = (impostor >= threshold, False)
    out["pair-gap.genuine_mean"] = (genuine, False)
    out["pair-gap.impostor_mean"] = (impostor, False)
    out["pair-gap.paired_mean"] = (ev.subset(paired_rows, templates).paired_scores(), False)
    return out


def _groups(subjects, templates, paired_subjects) -> dict[str, np.ndarray]:
    """The subject each row belongs to, per kind of row: the cluster a bootstrap resamples."""
    mated = np.isin(subjects, templates)
    impostor_groups = np.broadcast_to(subjects[:, None], (len(subjects), len(templates)))
    return {"probe": subjects[mated], "impostor": impostor_groups[subjects[:, None] != templates[None, :]],
            "paired": paired_subjects}


def bootstrap_tests(ev_a: Evaluation, ev_b: Evaluation | None = None, *, threshold: float = DEFAULT_THRESHOLD,
                    ranks=(1, 5, 10), fars=(0.1, 0.01, 0.001, 0.0001), n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0) -> dict[str, Tested]:
    """Subject-bootstrap intervals of the resamplable metrics, for A alone or A and B paired.

    Every interval of one metric uses the same resampled subjects, so B − A is a paired
    difference. Keys are ``check.metric`` as the checks name them; a FAR the impostor count
    cannot support (n·FAR < 10) is left out, as verification leaves it out."""
    rows, subjects, templates, paired_rows, paired_subjects = _common(ev_a, ev_b)
    groups = _groups(subjects, templates, paired_subjects)
    values = [_per_row_values(ev, rows, templates, paired_rows, threshold, ranks)
              for ev in ((ev_a,) if ev_b is None else (ev_a, ev_b))]
    out: dict[str, Tested] = {}
    for key, (va, mcnemar_ok) in values[0].items():
        g = groups[resample_kind(key)]
        if len(va) == 0 or len(np.unique(g)) < 2:
            continue  # nothing to resample (e.g. no probe has its own HR image)

        def ci(v, g=g):  # the same seed and groups give the same resampled subjects every call
            return bootstrap_mean(np.asarray(v, float), g, n_boot, alpha, seed)

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
        a = percentile_ci(per_side[0][0], per_side[0][1:], alpha)
        if len(per_side) == 1:
            out[key] = Tested(key, a, None, None)
            continue
        d = per_side[1] - per_side[0]
        out[key] = Tested(key, a, percentile_ci(per_side[1][0], per_side[1][1:], alpha),
                          percentile_ci(d[0], d[1:], alpha))
    return out
