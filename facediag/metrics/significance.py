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

from .identification import MIN_FALSE_ACCEPTS, as_labels
from .ordering import descending_stable
from .verdict import NO_CHANGE, excludes_zero, verdict
from .verification import eer_from_rates

_CHUNK_CELLS = 1 << 22


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
    from scipy.stats import binomtest  # heavy: a third of the CLI start-up

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
                    significant=self.verdict != NO_CHANGE)


def _codes(*group_arrays):
    # One shared subject numbering across arrays (e.g. genuine and impostor pair subjects).
    labels = [as_labels(g).ravel() for g in group_arrays]
    uniq, codes = np.unique(np.concatenate(labels), return_inverse=True)
    return len(uniq), np.split(codes, np.cumsum([len(x) for x in labels])[:-1])


def _draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    # Drawing n_groups subjects uniformly with replacement == one multinomial count vector.
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)


def percentile_ci(point, stats, alpha: float = 0.05) -> BootstrapCI:
    """The point estimate with the percentile interval of its resampled values."""
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
    return percentile_ci(metric_fn(rows), stats, alpha)


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
    return percentile_ci(point, stats, alpha)


def bootstrap_ratio(numerators, denominators, groups, n_boot: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> BootstrapCI:
    """CI of sum(numerators) / sum(denominators), resampling the row groups: the mean over
    pairs when each row aggregates many pairs (a probe's false accepts over its impostor pairs),
    without the pairs. Equals bootstrap_mean over the pairs, the same draws for the same groups."""
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    n_groups, (codes,) = _codes(groups)
    c = _draws(n_groups, n_boot, seed)
    sums = np.bincount(codes, weights=num, minlength=n_groups)
    counts = np.bincount(codes, weights=den, minlength=n_groups)
    return percentile_ci(num.sum() / den.sum(), (c @ sums) / (c @ counts), alpha)


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


class _WeightedCounter:
    """Weighted counts of the first q positions of an ordered score list, for many weight
    vectors (resamples) at once, without a cumulative sum over every pair per resample.

    ``codes[p]`` is the group of position p. Positions are keyed (group, position) in one
    sorted array, so "how many of group g's positions lie below q" is a single searchsorted
    for every group and every resample together: O(resamples x groups x log pairs)."""

    def __init__(self, codes: np.ndarray, n_groups: int):
        stride = len(codes) + 1
        order = np.argsort(codes, kind="stable")
        self.keys = codes[order].astype(np.int64) * stride + order
        self.offsets = np.arange(n_groups, dtype=np.int64) * stride
        self.starts = np.searchsorted(self.keys, self.offsets)
        self.totals = np.bincount(codes, minlength=n_groups)

    def below(self, c: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Row r: the weight, under group weights c[r], of the positions < q[r]."""
        counts = np.searchsorted(self.keys, self.offsets[None, :] + q[:, None]) - self.starts[None, :]
        return (c * counts).sum(axis=1)

    def total(self, c: np.ndarray) -> np.ndarray:
        return c @ self.totals


def _first_true(pred, n_rows: int, hi: int) -> np.ndarray:
    """Per row, the smallest k in [0, hi] with pred(k) true, for pred false-then-true in k
    and true at hi: a binary search run for every row at once."""
    lo, up = np.zeros(n_rows, np.int64), np.full(n_rows, hi, np.int64)
    while np.any(lo < up):
        mid = (lo + up) // 2
        ok = pred(mid)
        up, lo = np.where(ok, mid, up), np.where(ok, lo, mid + 1)
    return lo


def _row_chunks(draws: np.ndarray):
    # Bounds the (resamples x groups) query matrices to ~4M cells.
    return np.array_split(draws, max(1, len(draws) * draws.shape[1] // _CHUNK_CELLS))


def _tar_at_far_weighted(g, i, g_codes, i_codes, draws, far):
    """TAR at FAR for every row of draws (weights per group). Same rule as threshold_for_far:
    accept scores strictly above the highest impostor score that would push the weighted
    false-accept share over far."""
    n_groups = draws.shape[1]
    go, io = np.argsort(g), np.argsort(-i)
    g_sorted, i_desc = g[go], i[io]
    gen, imp = _WeightedCounter(g_codes[go], n_groups), _WeightedCounter(i_codes[io], n_groups)
    out = []
    for c in _row_chunks(draws):
        limit = far * imp.total(c)
        j = _first_true(lambda k: imp.below(c, k + 1) > limit, len(c), len(i) - 1)
        k = np.searchsorted(g_sorted, i_desc[j], side="right")  # genuine scores <= threshold
        total = gen.total(c)
        out.append((total - gen.below(c, k)) / total)
    return np.concatenate(out)


def _eer_weighted(g, i, g_codes, i_codes, draws):
    """EER for every row of draws, from a weighted ROC over distinct thresholds: found by
    binary search for the first threshold where FPR >= FNR (the ROC is monotone)."""
    n_groups = draws.shape[1]
    scores = np.r_[g, i]
    order = descending_stable(scores)
    is_gen = (np.arange(len(scores)) < len(g))[order]
    codes = np.r_[g_codes, i_codes][order]
    ends = np.flatnonzero(np.r_[np.diff(scores[order]), -1])  # last index of each tie run
    cut = np.r_[0, ends + 1]  # ROC point t accepts the first cut[t] pairs
    # One counter per kind of pair over the merged order; the other kind goes to a dummy
    # group of weight 0.
    gen = _WeightedCounter(np.where(is_gen, codes, n_groups), n_groups + 1)
    imp = _WeightedCounter(np.where(is_gen, n_groups, codes), n_groups + 1)
    out = []
    for c in _row_chunks(draws):
        c = np.c_[c, np.zeros(len(c), c.dtype)]
        tp_total, fp_total = gen.total(c), imp.total(c)

        def rates(t, c=c, tp_total=tp_total, fp_total=fp_total):
            return imp.below(c, cut[t]) / fp_total, 1.0 - gen.below(c, cut[t]) / tp_total

        t = _first_true(lambda t: np.subtract(*rates(t)) >= 0, len(c), len(ends))
        (f0, n0), (f1, n1) = rates(t - 1), rates(t)
        out.append(eer_from_rates(np.c_[f0, f1], np.c_[n0, n1])[0])  # interpolates between the two
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
    return percentile_ci(stats[0], stats[1:], alpha)


def bootstrap_eer(genuine, impostor, genuine_groups, impostor_groups, n_boot: int = 1000,
                  alpha: float = 0.05, seed: int = 0) -> BootstrapCI:
    """CI of the equal error rate, resampling pair subjects."""
    g, i, gc, ic, draws = _pair_setup(genuine, impostor, genuine_groups, impostor_groups,
                                      n_boot, seed)
    stats = _eer_weighted(g, i, gc, ic, draws)
    return percentile_ci(stats[0], stats[1:], alpha)


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
    # The sign of the interval decides (it excludes 0), as interval_verdict does.
    return DeltaResult(float(delta), float(low), float(high),
                       verdict(low if low > 0 else high, excludes_zero(low, high), higher_is_better))


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


def _weighted_auc(scores: np.ndarray, same: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of same (positive) against different pairs for each row of pair weights [n_boot, pairs];
    ties count half, as roc_auc_score counts them."""
    order = np.argsort(scores, kind="stable")
    s, pos, w = scores[order], same[order], weights[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]  # runs of tied scores
    ends = np.r_[starts[1:], len(s)] - 1
    group = np.repeat(np.arange(len(starts)), ends - starts + 1)
    negative = w * ~pos
    cum = np.cumsum(negative, axis=1)
    below = np.where(starts > 0, cum[:, np.maximum(starts - 1, 0)], 0.0)
    within = cum[:, ends] - below
    credit = below[:, group] + 0.5 * within[:, group]  # negative weight beaten by each pair
    positive = w * pos
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw with no same- or no different-person pair: NaN
        return (positive * credit).sum(axis=1) / (positive.sum(axis=1) * negative.sum(axis=1))


def paired_auc_gain(scores_a, scores_b, same, subjects_i, subjects_j, n_boot: int = 400, alpha: float = 0.05,
                    seed: int = 0) -> BootstrapCI:
    """AUC(B) − AUC(A) over the same image pairs of one sample, with a subject bootstrap interval.

    Pair k joins images of ``subjects_i[k]`` and ``subjects_j[k]``; ``same`` says whether they are
    one person. A drawn subject brings all its images, so a pair whose subjects were drawn c_i and
    c_j times stands c_i·c_j times in the draw (pairs of an image with its own copy are left out).
    The interval is two-sided at ``alpha``: its low end is a one-sided bound at ``alpha / 2``.
    """
    a, b = np.asarray(scores_a, np.float64).ravel(), np.asarray(scores_b, np.float64).ravel()
    same = np.asarray(same, bool).ravel()
    if not (a.shape == b.shape == same.shape):
        raise ValueError(f"paired arrays differ in shape: {a.shape}, {b.shape}, {same.shape}")
    if same.all() or not same.any():
        raise ValueError("AUC needs both same-person and different-person pairs")
    n_groups, (ci, cj) = _codes(subjects_i, subjects_j)
    draws = _draws(n_groups, n_boot, seed).astype(np.float64)
    weights = draws[:, ci] * draws[:, cj]
    ones = np.ones((1, len(a)))
    point = float(_weighted_auc(b, same, ones)[0] - _weighted_auc(a, same, ones)[0])
    stats = _weighted_auc(b, same, weights) - _weighted_auc(a, same, weights)
    return percentile_ci(point, stats[np.isfinite(stats)], alpha)
