"""Significance: exact McNemar and subject-level (cluster) bootstrap confidence intervals.

Images of one subject are not independent, so the bootstrap resamples subjects with
replacement and takes every row of each drawn subject. A draw is represented by a
count matrix C [n_boot, n_subjects] (how often each subject was drawn); mean-type and
TAR/EER statistics are computed from C as row weights without building index arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from scipy.stats import binomtest

from .identification import MIN_FALSE_ACCEPTS, as_labels
from .verification import eer_from_rates

_CHUNK = 64  # resamples per vectorised block: bounds memory at 64 x n_pairs floats


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test on paired per-probe correctness of models A and B.

    b01 = probes A got wrong and B right; b10 = A right, B wrong. Two-sided exact binomial
    test of b01 against b01 + b10 at p = 0.5; statistic = min(b01, b10). p = 1.0 when no
    probe is discordant.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    b01, b10 = int((~a & b).sum()), int((a & ~b).sum())
    p = binomtest(b01, b01 + b10, 0.5).pvalue if b01 + b10 else 1.0
    return {"b01": b01, "b10": b10, "n": int(a.size), "statistic": min(b01, b10),
            "p_value": float(p)}


class BootstrapCI(NamedTuple):
    """Point estimate on all data and the percentile interval of the resampled estimates."""

    point: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return self._asdict()


@dataclass(frozen=True)
class DeltaResult:
    """Metric of model B minus model A, on the same probes and the same resampled subjects."""

    delta: float
    low: float
    high: float
    verdict: str      # "better" / "worse" (B vs A) or "no significant change" (CI covers 0)

    def as_dict(self) -> dict:
        return dict(delta=self.delta, low=self.low, high=self.high,
                    significant=self.verdict != "no significant change")


def _codes(*group_arrays):
    # One shared subject numbering across arrays (e.g. genuine and impostor pair subjects).
    labels = [as_labels(g).ravel() for g in group_arrays]
    uniq, codes = np.unique(np.concatenate(labels), return_inverse=True)
    return len(uniq), np.split(codes, np.cumsum([len(x) for x in labels])[:-1])


def _draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    # Drawing n_groups subjects uniformly with replacement == one multinomial count vector.
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)


def _ci(point, stats, alpha) -> BootstrapCI:
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(float(point), float(low), float(high))


def bootstrap_ci(metric_fn: Callable[[np.ndarray], float], groups, n_boot: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> BootstrapCI:
    """Cluster bootstrap of any metric. metric_fn(idx) gets row indices (with repeats).

    The point estimate is metric_fn(all rows). Calls metric_fn n_boot + 1 times; prefer the
    vectorised helpers below for means, rank-1, TAR@FAR and EER.
    """
    n_groups, (codes,) = _codes(groups)
    rows = np.arange(len(codes))
    stats = [metric_fn(np.repeat(rows, c[codes])) for c in _draws(n_groups, n_boot, seed)]
    return _ci(metric_fn(rows), stats, alpha)


def _mean_stats(values, groups, n_boot, seed):
    values = np.asarray(values, dtype=np.float64).ravel()
    n_groups, (codes,) = _codes(groups)
    sums = np.bincount(codes, weights=values, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups)
    c = _draws(n_groups, n_boot, seed)
    return values.mean(), (c @ sums) / (c @ counts)


def bootstrap_mean(values, groups, n_boot: int = 1000, alpha: float = 0.05,
                   seed: int = 0) -> BootstrapCI:
    """CI of the mean of per-row values, resampling the row groups (subjects)."""
    point, stats = _mean_stats(values, groups, n_boot, seed)
    return _ci(point, stats, alpha)


def bootstrap_rank1(correct, probe_subjects, n_boot: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> BootstrapCI:
    """CI of rank-1 accuracy from per-probe correctness (IdentificationResult.correct_rank1
    with the subjects of probe_index)."""
    return bootstrap_mean(np.asarray(correct, dtype=bool), probe_subjects, n_boot, alpha, seed)


def _pair_setup(genuine, impostor, genuine_groups, impostor_groups, n_boot, seed):
    n_groups, (g_codes, i_codes) = _codes(genuine_groups, impostor_groups)
    g = np.asarray(genuine, dtype=np.float64).ravel()
    i = np.asarray(impostor, dtype=np.float64).ravel()
    if len(g) != len(g_codes) or len(i) != len(i_codes):
        raise ValueError("each score needs one group label")
    draws = np.vstack([np.ones(n_groups, int), _draws(n_groups, n_boot, seed)])  # row 0 = point
    return g, i, g_codes, i_codes, draws


def _tar_at_far_weighted(g, i, g_codes, i_codes, draws, far):
    """TAR at FAR for every row of draws (weights per group). Same rule as threshold_for_far:
    accept scores strictly above the highest impostor score that would push the weighted
    false-accept share over far."""
    go, io = np.argsort(g), np.argsort(-i)
    g_sorted, i_desc = g[go], i[io]
    out = []
    for c in np.array_split(draws, max(1, len(draws) // _CHUNK)):
        wi = np.cumsum(c[:, i_codes[io]], axis=1)
        j = np.argmax(wi > far * wi[:, -1:], axis=1)
        k = np.searchsorted(g_sorted, i_desc[j], side="right")
        wg = np.cumsum(np.c_[np.zeros(len(c)), c[:, g_codes[go]]], axis=1)
        out.append((wg[:, -1] - wg[np.arange(len(c)), k]) / wg[:, -1])
    return np.concatenate(out)


def _eer_weighted(g, i, g_codes, i_codes, draws):
    """EER for every row of draws, from a weighted ROC over distinct thresholds."""
    scores = np.r_[g, i]
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    is_gen = (np.arange(len(scores)) < len(g))[order]
    codes = np.r_[g_codes, i_codes][order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tie run
    out = []
    for c in np.array_split(draws, max(1, len(draws) // _CHUNK)):
        w = c[:, codes]
        tp = np.cumsum(w * is_gen, axis=1)[:, ends]
        fp = np.cumsum(w * ~is_gen, axis=1)[:, ends]
        zero = np.zeros((len(c), 1))
        tpr = np.c_[zero, tp / tp[:, -1:]]
        fpr = np.c_[zero, fp / fp[:, -1:]]
        out.append(eer_from_rates(fpr, 1.0 - tpr)[0])
    return np.concatenate(out)


def bootstrap_tar_at_far(genuine, impostor, genuine_groups, impostor_groups, far: float,
                         n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                         min_false_accepts: int = MIN_FALSE_ACCEPTS) -> BootstrapCI | None:
    """CI of TAR@FAR, resampling pair subjects (genuine_impostor_scores(..., with_subjects=True)).

    None when the FAR is unsupported by the impostor count (same rule as verification_metrics).
    """
    if len(np.ravel(impostor)) * far < min_false_accepts:
        return None
    g, i, gc, ic, draws = _pair_setup(genuine, impostor, genuine_groups, impostor_groups,
                                      n_boot, seed)
    stats = _tar_at_far_weighted(g, i, gc, ic, draws, far)
    return _ci(stats[0], stats[1:], alpha)


def bootstrap_eer(genuine, impostor, genuine_groups, impostor_groups, n_boot: int = 1000,
                  alpha: float = 0.05, seed: int = 0) -> BootstrapCI:
    """CI of the equal error rate, resampling pair subjects."""
    g, i, gc, ic, draws = _pair_setup(genuine, impostor, genuine_groups, impostor_groups,
                                      n_boot, seed)
    stats = _eer_weighted(g, i, gc, ic, draws)
    return _ci(stats[0], stats[1:], alpha)


def bootstrap_verification_stats(genuine, impostor, genuine_groups, impostor_groups, fars=(),
                                 n_boot: int = 1000, seed: int = 0,
                                 min_false_accepts: int = MIN_FALSE_ACCEPTS) -> dict[str, np.ndarray]:
    """EER and TAR at each supported FAR on the same resampled subjects, for building
    paired comparisons: ``{"eer": s, "tar_at_far_0.01": s, ...}`` where ``s[0]`` is the
    point estimate and ``s[1:]`` the ``n_boot`` resamples. The same seed and groups give
    the same draws, so the arrays of two models on one protocol can be subtracted."""
    g, i, gc, ic, draws = _pair_setup(genuine, impostor, genuine_groups, impostor_groups, n_boot, seed)
    out = {"eer": _eer_weighted(g, i, gc, ic, draws)}
    for far in fars:
        if len(i) * far >= min_false_accepts:
            out[f"tar_at_far_{far:g}"] = _tar_at_far_weighted(g, i, gc, ic, draws, far)
    return out


def _verdict(delta, low, high, higher_is_better) -> DeltaResult:
    if low <= 0 <= high:
        verdict = "no significant change"
    else:
        verdict = "better" if (low > 0) == higher_is_better else "worse"
    return DeltaResult(float(delta), float(low), float(high), verdict)


def paired_bootstrap_delta(metric_a: Callable[[np.ndarray], float],
                           metric_b: Callable[[np.ndarray], float], groups,
                           n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                           higher_is_better: bool = True) -> DeltaResult:
    """CI of metric_b - metric_a over the same resampled subjects; both get the same idx."""
    ci = bootstrap_ci(lambda idx: metric_b(idx) - metric_a(idx), groups, n_boot, alpha, seed)
    return _verdict(*ci, higher_is_better)


def paired_bootstrap_rank1(correct_a, correct_b, probe_subjects, n_boot: int = 1000,
                           alpha: float = 0.05, seed: int = 0) -> DeltaResult:
    """Rank-1 of model B minus model A on the same probes (vectorised)."""
    diff = np.asarray(correct_b, dtype=float) - np.asarray(correct_a, dtype=float)
    return _verdict(*bootstrap_mean(diff, probe_subjects, n_boot, alpha, seed), True)
