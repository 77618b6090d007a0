"""Distribution statistics of scores and embeddings: d', summaries, spectrum, collapse, CKA."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .identification import subject_sums


def dprime(genuine, impostor) -> float:
    """Decidability d' = |mu_g - mu_i| / sqrt((var_g + var_i) / 2).

    0.0 when both means are equal (including fully collapsed scores); inf when the means
    differ but neither distribution has spread.
    """
    g = np.asarray(genuine, dtype=np.float64).ravel()
    i = np.asarray(impostor, dtype=np.float64).ravel()
    return dprime_from_moments(g.mean(), g.var(), i.mean(), i.var())


def dprime_from_moments(mean_g: float, var_g: float, mean_i: float, var_i: float) -> float:
    """dprime from the means and variances of the two score sets (a stream keeps only these)."""
    diff = abs(mean_g - mean_i)
    spread = np.sqrt((var_g + var_i) / 2)
    if spread == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / spread)


def score_summary(x, percentiles=(1, 5, 25, 50, 75, 95, 99)) -> dict:
    """n, mean, std, min, max and percentiles (keys p1, p5, ...) of the finite values of x."""
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    out = {"n": int(len(finite)), "n_nonfinite": int(len(x) - len(finite))}
    if len(finite):
        out.update(mean=float(finite.mean()), std=float(finite.std()),
                   min=float(finite.min()), max=float(finite.max()))
        out.update({f"p{p:g}": float(v) for p, v in zip(percentiles, np.percentile(finite, percentiles))})
    return out


def effective_rank(emb, center: bool = False) -> float:
    """Roy & Vetterli (2007) effective rank: exp of the entropy of the normalised singular values.

    Between 1 (all rows on one line, e.g. collapsed embeddings) and min(N, D). Not centred by
    default, so that identical rows give 1 rather than an undefined zero matrix.
    """
    x = np.asarray(emb, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


@dataclass(frozen=True, eq=False)
class DeadDimensions:
    n_dead: int
    n_dims: int
    indices: np.ndarray     # the dead dimensions

    def as_dict(self) -> dict:
        return dict(n_dead=self.n_dead, n_dims=self.n_dims,
                    fraction_dead=self.n_dead / self.n_dims if self.n_dims else 0.0)


def dead_dimensions(raw, eps: float = 1e-3) -> DeadDimensions:
    """Dimensions whose std over the finite rows is <= eps x the typical per-dimension std.

    Relative, because raw (pre-norm) embedding scales differ between models; the typical std
    is the root-mean-square of the per-dimension stds. All dimensions are dead when nothing varies.
    """
    x = np.asarray(raw, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    std = x.std(axis=0) if len(x) else np.zeros(x.shape[1])
    scale = np.sqrt((std ** 2).mean())
    dead = np.flatnonzero(std <= eps * scale)
    return DeadDimensions(n_dead=len(dead), n_dims=x.shape[1], indices=dead)


def mean_pairwise_cosine(emb_normed, subjects=None) -> float:
    """Mean cosine over pairs of different rows (subjects=None) or of different subjects.

    Exact over all pairs, no sampling: the sum of x_i . x_j over all ordered pairs is
    ||sum x||^2, and the same-subject part is sum over subjects of ||sum of that subject||^2.
    With subjects given this is the mean impostor cosine (about 0 healthy, 1 collapsed).
    """
    x = np.asarray(emb_normed, dtype=np.float64)
    total = x.sum(axis=0)
    all_pairs = total @ total
    if subjects is None:
        inside, n_inside = (x * x).sum(), len(x)
    else:
        _, per_subject, counts = subject_sums(x, subjects)
        inside, n_inside = (per_subject ** 2).sum(), (counts ** 2).sum()
    n_pairs = len(x) ** 2 - n_inside
    if n_pairs == 0:
        raise ValueError("no pairs of different rows/subjects")
    return float((all_pairs - inside) / n_pairs)


def norm_stats(raw) -> dict:
    """L2 norms of raw (pre-normalisation) embeddings, plus rows holding NaN or Inf."""
    x = np.asarray(raw, dtype=np.float64)
    nan_rows = np.isnan(x).any(axis=1)
    inf_rows = np.isinf(x).any(axis=1)
    norms = np.linalg.norm(x[~(nan_rows | inf_rows)], axis=1)
    out = {"n": int(len(x)), "n_nan_rows": int(nan_rows.sum()), "n_inf_rows": int(inf_rows.sum()),
           "n_zero_norm": int((norms == 0).sum())}
    if len(norms):
        out.update(norm_mean=float(norms.mean()), norm_std=float(norms.std()),
                   norm_min=float(norms.min()), norm_max=float(norms.max()))
    return out


def linear_cka(x, y) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same N images.

    Columns are centred; invariant to rotation and isotropic scaling, 1 = same geometry.
    0.0 when either side has no variance.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same images on both sides ({len(x)} vs {len(y)} rows)")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    n = len(x)
    if x.shape[1] * y.shape[1] <= n * n:       # feature-space form is the cheaper one
        cross = np.linalg.norm(x.T @ y) ** 2
        xx, yy = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    else:                                      # Gram form: <Kx, Ky> = ||x.T y||_F^2
        kx, ky = x @ x.T, y @ y.T
        cross, xx, yy = (kx * ky).sum(), np.linalg.norm(kx), np.linalg.norm(ky)
    if xx == 0 or yy == 0:
        return 0.0
    return float(cross / (xx * yy))


# The one definition of embedding collapse ("everything matches everything"). pair-gap
# applies it with a suite's thresholds; the trainer flags epochs with the defaults.
COLLAPSE_IMPOSTOR = 0.7    # mean impostor cosine at or above this: collapsed (healthy EdgeFace ≈ 0.05)
MIN_SEPARATION = 0.1       # genuine − impostor mean below this, with impostors already high
COLLAPSE_NEAR = 0.2        # "already high": within this of collapse_impostor


def collapsed(genuine_mean: float | None, impostor_mean: float | None, *,
              collapse_impostor: float = COLLAPSE_IMPOSTOR, min_separation: float = MIN_SEPARATION) -> bool:
    """Collapse: high impostor similarity, or genuine barely above an already high impostor
    level. Low similarity all round is lost signal (resolution, untrained weights), not collapse."""
    if genuine_mean is None or impostor_mean is None:
        return False
    return bool(impostor_mean >= collapse_impostor
                or (genuine_mean - impostor_mean < min_separation
                    and impostor_mean >= collapse_impostor - COLLAPSE_NEAR))
