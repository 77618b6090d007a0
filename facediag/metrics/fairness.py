"""Demographic differentials: error rates per group at one global threshold, and their summaries.

At one threshold τ each group g has a false match rate FMR_g (impostor pairs with both sides in
g) and a false non-match rate FNMR_g (its genuine pairs). Summaries over the groups:

- max/min and max/geometric-mean ratios of each rate (NIST's summaries of demographic
  differentials, FRTE Part 3 / NIST IR 8429). A group without a single error would make them
  infinite: its rate is taken as the one-sided Clopper–Pearson upper bound instead (the ratios are
  then lower bounds of what the data cannot rule out, never infinities);
- the fairness discrepancy rate of de Freitas Pereira & Marcel,
  FDR(τ) = 1 − [α·A(τ) + (1 − α)·B(τ)], A and B the largest pairwise differences of FMR and of
  FNMR between groups (1: no differential; lower: a larger one);
- GARBE of Howard et al. (Gini Aggregation Rate for Biometric Equitability),
  GARBE(τ) = α·G_FMR(τ) + (1 − α)·G_FNMR(τ), G the Gini coefficient over the groups with the
  small-sample correction n/(n − 1): G(x) = n/(n − 1) · Σ_i Σ_j |x_i − x_j| / (2 n² x̄)
  (0: equal rates; 1: every error in one group). FDR and GARBE read the rates as measured.

Every function here works along the last axis, so the rows of a bootstrap (one row per
resample) are summarised at once. Pure numpy and scipy: nothing here knows about models.
"""
from __future__ import annotations

import numpy as np

WEIGHT = 0.5  # α of FDR and GARBE: FMR and FNMR weigh the same


def clopper_pearson_upper(errors, trials, alpha: float = 0.05) -> np.ndarray:
    """One-sided Clopper–Pearson upper bound of a binomial rate at level 1 − alpha.

    Parameters
    ----------
    errors, trials : array_like of int
        Errors observed and trials (broadcast together).
    alpha : float
        1 − the confidence level.

    Returns
    -------
    ndarray of float
        The largest rate the observation does not rule out at that level (1.0 when every trial
        erred, NaN without trials). For 0 errors in n trials it is 1 − alpha^(1/n): about 3/n.
    """
    from scipy.stats import beta  # heavy: loaded where a rate is bounded

    errors, trials = np.broadcast_arrays(np.asarray(errors, dtype=np.float64), np.asarray(trials, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = beta.ppf(1 - alpha, errors + 1, np.maximum(trials - errors, 1e-300))
    return np.where(trials <= 0, np.nan, np.where(errors >= trials, 1.0, bound))


def rates(errors, trials) -> np.ndarray:
    """errors / trials, NaN where there are no trials."""
    errors, trials = np.asarray(errors, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(trials > 0, errors / np.where(trials > 0, trials, 1), np.nan)


def floored_rates(errors, trials, alpha: float = 0.05) -> np.ndarray:
    """The rates the ratios read: as measured, but a group without errors at its Clopper–Pearson
    upper bound (a ratio to 0 is not a number the data supports)."""
    errors, trials = np.broadcast_arrays(np.asarray(errors, dtype=np.float64), np.asarray(trials, dtype=np.float64))
    measured = rates(errors, trials)
    return np.where((errors == 0) & (trials > 0), clopper_pearson_upper(0, trials, alpha), measured)


def max_min_ratio(values) -> np.ndarray:
    """max / min along the last axis (NaN entries left out; NaN with fewer than two groups; inf
    when the smallest is 0)."""
    v = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(v), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.nanmax(_nan_safe(v), axis=-1) / np.nanmin(_nan_safe(v), axis=-1)
    return np.where(n >= 2, out, np.nan)


def max_geomean_ratio(values) -> np.ndarray:
    """max / geometric mean along the last axis (NaN entries left out; NaN with fewer than two
    groups; inf when some group's value is 0)."""
    v = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(v), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_mean = np.nansum(np.log(_nan_safe(v)), axis=-1) / np.maximum(n, 1)
        out = np.nanmax(_nan_safe(v), axis=-1) / np.exp(log_mean)
    return np.where(n >= 2, out, np.nan)


def max_difference(values) -> np.ndarray:
    """The largest pairwise difference |x_i − x_j| along the last axis: max − min (NaN left out)."""
    v = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(v), axis=-1)
    out = np.nanmax(_nan_safe(v), axis=-1) - np.nanmin(_nan_safe(v), axis=-1)
    return np.where(n >= 2, out, np.nan)


def gini(values) -> np.ndarray:
    """The Gini coefficient along the last axis with the small-sample correction n/(n − 1):
    n/(n − 1) · Σ_i Σ_j |x_i − x_j| / (2 n² x̄). 0 when every value is equal (0 included); NaN
    with fewer than two values (NaN entries left out)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    n = finite.sum(axis=-1)
    x = np.where(finite, v, 0.0)
    pair_sum = np.abs(x[..., :, None] - x[..., None, :]) * (finite[..., :, None] & finite[..., None, :])
    total = pair_sum.sum(axis=(-2, -1))
    mean = x.sum(axis=-1) / np.maximum(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = n / np.maximum(n - 1, 1) * total / (2.0 * n ** 2 * mean)
    g = np.where(mean > 0, g, 0.0)
    return np.where(n >= 2, g, np.nan)


def fdr(fmr, fnmr, weight: float = WEIGHT) -> np.ndarray:
    """Fairness discrepancy rate, 1 − [α·A + (1 − α)·B], A and B the largest pairwise differences
    of FMR and FNMR over the groups (last axis)."""
    return 1.0 - (weight * max_difference(fmr) + (1 - weight) * max_difference(fnmr))


def garbe(fmr, fnmr, weight: float = WEIGHT) -> np.ndarray:
    """GARBE, α·G(FMR) + (1 − α)·G(FNMR), G the sample-corrected Gini coefficient (last axis)."""
    return weight * gini(fmr) + (1 - weight) * gini(fnmr)


def _nan_safe(v: np.ndarray) -> np.ndarray:
    """NaN (groups without a rate) and inf alike as NaN, and a row with no rate at all as zeros
    (its result is then set to NaN by the caller's count of rates), so nanmax/nanmin never warn."""
    v = np.where(np.isfinite(v), v, np.nan)
    empty = np.isnan(v).all(axis=-1, keepdims=True)
    return np.where(empty, 0.0, v)


def stratified_draws(strata, n_boot: int, seed: int = 0) -> np.ndarray:
    """Subject-bootstrap weights, resampling each stratum's units with replacement.

    Parameters
    ----------
    strata : array_like of int [U]
        Each unit's stratum (a subject's group); -1 for a unit in no stratum (weight 0).
    n_boot : int
        Resamples.
    seed : int

    Returns
    -------
    ndarray of int [n_boot + 1, U]
        How often each unit is drawn; row 0 is the data itself (every unit once), so row 0 of a
        statistic computed from these weights is its point estimate. Each stratum keeps its size,
        so a group is never drawn empty.
    """
    strata = np.asarray(strata, dtype=np.int64)
    rng = np.random.default_rng(seed)
    draws = np.zeros((n_boot + 1, len(strata)), dtype=np.int64)
    draws[0] = strata >= 0
    for s in np.unique(strata[strata >= 0]):
        members = np.flatnonzero(strata == s)
        draws[1:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=n_boot)
    return draws


def interval(values, alpha: float = 0.05) -> tuple[float, float] | tuple[None, None]:
    """The percentile interval (NaN resamples left out) of resampled values; (None, None) when
    no resample gave a number."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None, None
    low, high = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def det_from_histogram(genuine, counts, max_points: int = 200) -> dict:
    """A DET curve from genuine scores and a histogram of impostor scores over [-1, 1].

    Parameters
    ----------
    genuine : array_like of float
        The genuine scores.
    counts : array_like of int [bins]
        Impostor scores per equal bin over [-1, 1].
    max_points : int
        Points kept (log-spaced in FMR, so the low-FMR end keeps its detail).

    Returns
    -------
    dict
        ``fmr`` and ``fnmr`` lists at thresholds on the bin edges (accept score >= edge, FMR exact
        there), and ``eer`` (interpolated where they cross; None without both kinds of scores).
    """
    from facediag.metrics.verification import eer_from_rates

    g = np.sort(np.asarray(genuine, dtype=np.float64))
    counts = np.asarray(counts, dtype=np.float64)
    n_imp = counts.sum()
    if not g.size or n_imp <= 0:
        return {"fmr": [], "fnmr": [], "eer": None}
    edges = np.linspace(-1.0, 1.0, len(counts) + 1)[::-1]                 # descending: accept nothing first
    imp_at_least = np.r_[0.0, np.cumsum(counts[::-1])]                      # impostors >= each edge
    fmr = imp_at_least / n_imp
    fnmr = np.searchsorted(g, edges, side="left") / g.size                 # genuine below each edge
    fmr, fnmr = np.r_[0.0, fmr, 1.0], np.r_[1.0, fnmr, 0.0]
    eer, _ = eer_from_rates(fmr, fnmr)
    keep = fmr > 0
    f, r = fmr[keep], fnmr[keep]
    if f.size > max_points:
        at = np.unique(np.searchsorted(f, np.geomspace(f[0], 1.0, max_points), side="left").clip(0, f.size - 1))
        f, r = f[at], r[at]
    return {"fmr": [round(float(x), 6) for x in f], "fnmr": [round(float(x), 6) for x in r],
            "eer": round(float(eer[0]), 6)}
