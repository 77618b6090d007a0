"""Score calibration: from a cosine to a match probability fitted on a development set.

A cosine similarity is not a probability: 0.4 between two faces does not mean a 40 % chance of
one person, and the same cosine means different things for two models, two resolutions or two
populations. A probability needs data behind it: here an isotonic regression (monotone, no shape
assumed) or a logistic regression (Platt scaling: two parameters) of "same person" on the score,
fitted on the development set's genuine and impostor comparisons (scikit-learn), and judged on
the evaluation set:

- expected calibration error (ECE): the predicted probabilities cut into ``bins`` equal-width
  bins over [0, 1] (the last one closed), ECE = sum over bins of (weight in bin / total weight)
  · |share of genuine comparisons in the bin − mean predicted probability in the bin|;
- Brier score: the weighted mean of (probability − outcome)², outcome 1 for genuine.

The probability is P(same person | score) at the development set's share of genuine comparisons
(its ``prior``): a set with another share (more people in the gallery, say) needs its own fit.
Comparisons may carry weights, e.g. 1 / sample fraction for impostor pairs sampled from a larger
set (metrics.streaming), so the prior is the full set's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("isotonic", "logistic")
ECE_BINS = 10
FIT_LIMIT = 1 << 20  # impostor scores a fit uses at most (evenly spaced quantiles of the rest, weighted)


@dataclass(frozen=True, eq=False)
class Calibration:
    """A fitted map from score to match probability (``probability``), and what it was fitted on."""

    method: str          # "isotonic" | "logistic"
    model: object        # the fitted scikit-learn estimator
    prior: float         # weighted share of genuine comparisons in the fitting set
    n_genuine: int
    n_impostor: int

    def probability(self, scores) -> np.ndarray:
        """P(same person | score) for each score, in [0, 1]."""
        x = np.asarray(scores, dtype=np.float64).ravel()
        if self.method == "isotonic":
            return np.clip(self.model.predict(x), 0.0, 1.0)
        return self.model.predict_proba(x[:, None])[:, 1]

    def as_dict(self) -> dict:
        out = {"method": self.method, "prior": self.prior, "n_genuine": self.n_genuine,
               "n_impostor": self.n_impostor}
        if self.method == "logistic":  # P = 1 / (1 + exp(-(slope · score + intercept)))
            out.update(slope=float(self.model.coef_[0, 0]), intercept=float(self.model.intercept_[0]))
        return out


def _scores(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError(f"{what} scores contain NaN or Inf")
    return x


def labelled(genuine, impostor, impostor_weight: float = 1.0, limit: int | None = FIT_LIMIT):
    """(scores, outcomes, weights) of genuine (1) and impostor (0) comparisons, the impostors
    weighted by ``impostor_weight`` (1 / sample fraction for sampled pairs). More than ``limit``
    impostors are thinned to evenly spaced quantiles, each weighted for the ones it stands for."""
    g, imp = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    if not len(g) or not len(imp):
        raise ValueError(f"calibration needs genuine and impostor scores (have {len(g)} genuine, {len(imp)} impostor)")
    w_imp = np.full(len(imp), float(impostor_weight))
    if limit is not None and len(imp) > limit:
        picked = np.sort(imp)[np.linspace(0, len(imp) - 1, limit).round().astype(np.int64)]
        w_imp = np.full(limit, float(impostor_weight) * len(imp) / limit)
        imp = picked
    scores = np.r_[g, imp]
    outcomes = np.r_[np.ones(len(g)), np.zeros(len(imp))]
    return scores, outcomes, np.r_[np.ones(len(g)), w_imp]


def fit_calibration(genuine, impostor, method: str = "isotonic", *, impostor_weight: float = 1.0) -> Calibration:
    """Fit ``method`` ("isotonic" or "logistic") of P(same person | score) on genuine and impostor
    scores (normally the development set's). ``impostor_weight``: what one impostor score stands
    for (1 / sample fraction when the impostors are a sample)."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration {method!r}; methods: {', '.join(METHODS)}")
    x, y, w = labelled(genuine, impostor, impostor_weight)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression  # heavy: loaded when a fit runs

        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        model.fit(x, y, sample_weight=w)
    else:
        from sklearn.linear_model import LogisticRegression

        # Weak regularisation, so perfectly separated scores give a steep but finite slope (the
        # loss is a sum over comparisons: at C = 1e4 the penalty is negligible on any real set).
        model = LogisticRegression(C=1e4, max_iter=1000)
        model.fit(x[:, None], y.astype(int), sample_weight=w)
    prior = float(np.sum(w * y) / np.sum(w))
    return Calibration(method, model, prior, int(len(_scores(genuine, "genuine"))),
                       int(len(_scores(impostor, "impostor"))))


def cosine_as_probability(scores) -> np.ndarray:
    """The naive reading of a cosine as a probability (clipped to [0, 1]): what calibration is
    judged against, to show how far a raw score is from one."""
    return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)


@dataclass(frozen=True)
class Reliability:
    """How well probabilities match outcomes: ECE over equal-width bins, the Brier score, and the
    bins themselves (for a reliability diagram)."""

    ece: float
    brier: float
    bins: int
    bin_edges: tuple[float, ...]
    bin_weight: tuple[float, ...]       # total weight (comparisons) per bin
    bin_predicted: tuple[float | None, ...]  # mean predicted probability per bin (None: empty)
    bin_observed: tuple[float | None, ...]   # share of genuine comparisons per bin (None: empty)
    n: int

    def as_dict(self) -> dict:
        return {"ece": self.ece, "brier": self.brier, "bins": self.bins, "n": self.n,
                "binning": f"{self.bins} equal-width bins of the predicted probability over [0, 1]",
                "bin_edges": list(self.bin_edges), "bin_weight": list(self.bin_weight),
                "bin_predicted": list(self.bin_predicted), "bin_observed": list(self.bin_observed)}


def reliability(probabilities, outcomes, weights=None, bins: int = ECE_BINS) -> Reliability:
    """ECE (``bins`` equal-width bins over [0, 1], the last closed) and Brier score of predicted
    probabilities against outcomes (1 genuine, 0 impostor), optionally weighted."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(outcomes, dtype=np.float64).ravel()
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(p) == len(y) == len(w)) or not len(p):
        raise ValueError(f"{len(p)} probabilities, {len(y)} outcomes, {len(w)} weights: need as many, at least one")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    weight = np.bincount(which, weights=w, minlength=bins)
    predicted = np.bincount(which, weights=w * p, minlength=bins)
    observed = np.bincount(which, weights=w * y, minlength=bins)
    total = float(w.sum())
    full = weight > 0
    ece = float(np.abs(observed[full] - predicted[full]).sum() / total)
    brier = float(np.sum(w * (p - y) ** 2) / total)

    def means(s):
        return tuple(float(s[i] / weight[i]) if full[i] else None for i in range(bins))

    return Reliability(ece, brier, bins, tuple(np.linspace(0.0, 1.0, bins + 1).tolist()),
                       tuple(weight.tolist()), means(predicted), means(observed), len(p))
