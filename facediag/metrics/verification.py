"""Verification metrics: genuine/impostor scores, ROC AUC, EER, TAR@FAR, DET, k-fold pair accuracy.

Convention: a pair is accepted when its cosine score >= threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .identification import MIN_FALSE_ACCEPTS, as_labels, similarity_matrix, threshold_for_far
from .streaming import BINS, ImpostorScores, bin_edge


def genuine_impostor_scores(probes, probe_subjects, templates, template_subjects,
                            with_subjects: bool = False):
    """Scores of every probe against every template, split into genuine and impostor.

    Genuine: probe vs its own subject's template; impostor: probe vs every other template.
    Returns (genuine, impostor), or with with_subjects=True
    (genuine, impostor, genuine_subjects, impostor_subjects), where the subjects are the
    probe's subject of each pair: the cluster to resample in a subject-level bootstrap.
    """
    scores = similarity_matrix(probes, templates)
    probe_subjects, template_subjects = as_labels(probe_subjects), as_labels(template_subjects)
    same = probe_subjects[:, None] == template_subjects[None, :]
    genuine, impostor = scores[same], scores[~same]
    if not with_subjects:
        return genuine, impostor
    pair_subjects = np.broadcast_to(probe_subjects[:, None], same.shape)
    return genuine, impostor, pair_subjects[same], pair_subjects[~same]


def eer_from_rates(fpr, fnr):
    """Equal error rate where fpr and fnr cross, linearly interpolated; works row-wise.

    fpr must be non-decreasing and fnr non-increasing along the last axis, starting at
    fpr=0, fnr=1 (reject everything) and ending at fpr=1, fnr=0. Returns (eer, index of
    the first point with fpr >= fnr).
    """
    fpr, fnr = np.atleast_2d(fpr), np.atleast_2d(fnr)
    d = fpr - fnr
    i = np.argmax(d >= 0, axis=1)
    r = np.arange(len(d))
    d0, d1 = d[r, i - 1], d[r, i]
    a = -d0 / (d1 - d0)
    eer = fpr[r, i - 1] + a * (fpr[r, i] - fpr[r, i - 1])
    return eer, i


def _plot_indices(fpr, max_points: int) -> np.ndarray:
    # Half the points spaced along the curve, half log-spaced in FPR so DET/low-FAR plots keep detail.
    n = len(fpr)
    if n <= max_points:
        return np.arange(n)
    half = max_points // 2
    lin = np.linspace(0, n - 1, half).round().astype(int)
    positive = fpr[fpr > 0]
    lo = positive.min() if len(positive) else 1.0
    logs = np.minimum(np.searchsorted(fpr, np.geomspace(lo, 1.0, half), side="left"), n - 1)
    return np.unique(np.r_[lin, logs])


@dataclass(frozen=True)
class TarAtFar:
    """One TAR@FAR operating point, with the counts behind it."""

    far: float
    supported: bool
    tar: float | None            # None when the impostor count cannot support this FAR
    threshold: float | None
    achieved_far: float | None
    n_genuine: int
    n_impostor: int
    reason: str                  # why unsupported; empty otherwise


@dataclass(frozen=True, eq=False)
class VerificationResult:
    auc: float
    eer: float
    eer_threshold: float         # first threshold (descending) at which FAR >= FRR
    n_genuine: int
    n_impostor: int
    tar_at_far: tuple            # TarAtFar per requested FAR
    roc_fpr: np.ndarray          # downsampled to <= max_points; roc_thresholds[0] is +inf
    roc_tpr: np.ndarray
    roc_thresholds: np.ndarray
    # 0 when every impostor score was kept; from a histogram: its bin width, and how far the
    # true AUC / EER can be from the reported ones (they are bounds, not estimates)
    score_resolution: float = 0.0
    auc_error_bound: float = 0.0
    eer_error_bound: float = 0.0

    @property
    def det_fpr(self) -> np.ndarray:
        return self.roc_fpr

    @property
    def det_fnr(self) -> np.ndarray:
        return 1.0 - self.roc_tpr

    def as_dict(self) -> dict:
        """Flat numbers. An unsupported FAR has only its `_supported: False` key, no value."""
        out = dict(auc=self.auc, eer=self.eer, eer_threshold=self.eer_threshold,
                   n_genuine=self.n_genuine, n_impostor=self.n_impostor, score_resolution=self.score_resolution,
                   auc_error_bound=self.auc_error_bound, eer_error_bound=self.eer_error_bound)
        for p in self.tar_at_far:
            key = f"tar_at_far_{p.far:g}"
            out[f"{key}_supported"] = p.supported
            if p.supported:
                out[key] = p.tar
                out[f"threshold_at_far_{p.far:g}"] = p.threshold
        return out


def verification_metrics(genuine, impostor, fars=(1e-1, 1e-2, 1e-3, 1e-4),
                         max_points: int = 2000,
                         min_false_accepts: int = MIN_FALSE_ACCEPTS) -> VerificationResult:
    """ROC AUC, EER, TAR at each FAR and a plottable ROC/DET from genuine and impostor scores.

    A FAR is reported unsupported (tar None) unless n_impostor * far >= min_false_accepts;
    see identification.threshold_for_far for the rule and the threshold definition.
    ``impostor`` is an array or an ImpostorScores summary (exact when it kept every score).
    """
    genuine = np.asarray(genuine, dtype=np.float64).ravel()
    by_far = impostor  # threshold_for_far reads an exact summary's scores already sorted
    if isinstance(impostor, ImpostorScores):
        if not impostor.exact:
            return _from_histogram(genuine, impostor, fars, max_points, min_false_accepts)
        impostor.scores()
        impostor = impostor.top  # every score, sorted: roc_curve's sort then finds them in order
    impostor = np.asarray(impostor, dtype=np.float64).ravel()
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError(f"need genuine and impostor scores (have {len(genuine)} genuine, "
                         f"{len(impostor)} impostor)")
    from sklearn.metrics import auc as area_under_curve, roc_curve  # heavy: a third of the CLI start-up

    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    scores = np.r_[genuine, impostor]
    # All points kept: dropping "collinear" ones could drop real operating points.
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    eer, i = eer_from_rates(fpr, 1.0 - tpr)

    points = _tar_points(genuine, by_far, len(impostor), fars, min_false_accepts)
    keep = _plot_indices(fpr, max_points)
    return VerificationResult(
        auc=float(area_under_curve(fpr, tpr)), eer=float(eer[0]),  # roc_auc_score's value, without sorting again
        eer_threshold=float(thr[i[0]]), n_genuine=len(genuine), n_impostor=len(impostor),
        tar_at_far=tuple(points), roc_fpr=fpr[keep], roc_tpr=tpr[keep], roc_thresholds=thr[keep])


def _tar_points(genuine, impostor, n_impostor: int, fars, min_false_accepts) -> tuple:
    points = []
    for far in fars:
        ft = threshold_for_far(impostor, far, min_false_accepts)
        tar = float((genuine >= ft.threshold).mean()) if ft.supported else None
        points.append(TarAtFar(far=far, supported=ft.supported, tar=tar, threshold=ft.threshold,
                               achieved_far=ft.achieved_far, n_genuine=len(genuine),
                               n_impostor=n_impostor, reason=ft.reason))
    return tuple(points)


def _from_histogram(genuine, imp: ImpostorScores, fars, max_points, min_false_accepts) -> VerificationResult:
    """verification_metrics when the impostors are a histogram: the ROC at every bin edge (FAR
    exact there, TAR exact), the EER interpolated between edges, AUC counting a genuine score
    inside an impostor's bin as half a win; both with the bound of what the bins hide."""
    if len(genuine) == 0 or imp.n == 0:
        raise ValueError(f"need genuine and impostor scores (have {len(genuine)} genuine, {imp.n} impostor)")
    g = np.sort(genuine)
    edges = bin_edge(np.arange(BINS + 1))                              # ascending, edge BINS = 1.0
    imp_above = np.r_[np.cumsum(imp.histogram[::-1])[::-1], 0]          # impostors >= each edge
    gen_above = len(g) - np.searchsorted(g, edges, side="left")         # genuine >= each edge
    # Thresholds descending (accept >= t), from +inf (accept nothing) to -inf (accept all).
    fpr = np.r_[0.0, imp_above[::-1] / imp.n, 1.0]
    tpr = np.r_[0.0, gen_above[::-1] / len(g), 1.0]
    thr = np.r_[np.inf, edges[::-1], -np.inf]
    eer, i = eer_from_rates(fpr, 1.0 - tpr)
    i = int(i[0])
    eer_bound = float(max(fpr[i] - fpr[i - 1], tpr[i] - tpr[i - 1]))
    gen_in = gen_above[:-1] - gen_above[1:]                             # genuine inside each bin
    wins = imp.histogram * (gen_above[1:] + 0.5 * gen_in)
    auc = float(wins.sum() / (imp.n * len(g)))
    auc_bound = float((imp.histogram * 0.5 * gen_in).sum() / (imp.n * len(g)))
    keep = _plot_indices(fpr, max_points)
    return VerificationResult(
        auc=auc, eer=float(eer[0]), eer_threshold=float(thr[i]), n_genuine=len(g), n_impostor=imp.n,
        tar_at_far=_tar_points(g, imp, imp.n, fars, min_false_accepts), roc_fpr=fpr[keep], roc_tpr=tpr[keep],
        roc_thresholds=thr[keep], score_resolution=imp.resolution, auc_error_bound=auc_bound,
        eer_error_bound=eer_bound)


@dataclass(frozen=True, eq=False)
class KFoldResult:
    """k-fold pair accuracy. `std` is the sample standard deviation (ddof=1) of the fold
    accuracies; `sem` = std / sqrt(folds) is the standard error of the mean."""

    mean: float
    std: float
    sem: float
    folds: int
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    n_genuine: int
    n_impostor: int

    def as_dict(self) -> dict:
        return dict(accuracy_mean=self.mean, accuracy_std=self.std, accuracy_sem=self.sem,
                    folds=self.folds, threshold_mean=float(self.fold_thresholds.mean()),
                    n_genuine=self.n_genuine, n_impostor=self.n_impostor)


def _best_threshold(genuine, impostor) -> float:
    # Every observed score is a candidate; accuracy for all of them at once via sorted counts.
    cand = np.unique(np.r_[genuine, impostor])
    accepted_gen = len(genuine) - np.searchsorted(np.sort(genuine), cand, side="left")
    rejected_imp = np.searchsorted(np.sort(impostor), cand, side="left")
    k = int(np.argmax(accepted_gen + rejected_imp))
    # Same training decisions anywhere in the gap below cand[k]; its middle generalises best.
    return float((cand[k - 1] + cand[k]) / 2) if k else float(cand[0])


def kfold_pair_accuracy(genuine, impostor, folds: int = 10, seed: int = 0,
                        balance: bool = True) -> KFoldResult:
    """LFW-style accuracy: choose the best threshold on k-1 folds, measure on the held-out one.

    balance=True (default) subsamples the larger class (seeded) so both are equally many,
    as in LFW's 50/50 pair lists; otherwise a probe x template impostor set (S-1 impostors
    per genuine) would let "reject everything" score ~97 %. Folds are stratified.
    """
    rng = np.random.default_rng(seed)
    genuine = np.asarray(genuine, dtype=np.float64).ravel()
    impostor = np.asarray(impostor, dtype=np.float64).ravel()
    if balance:
        n = min(len(genuine), len(impostor))
        genuine = rng.choice(genuine, n, replace=False)
        impostor = rng.choice(impostor, n, replace=False)
    if min(len(genuine), len(impostor)) < folds:
        raise ValueError(f"{folds}-fold accuracy needs at least {folds} genuine and impostor pairs")
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]
    from sklearn.model_selection import StratifiedKFold  # heavy: a third of the CLI start-up

    accs, thrs = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(scores, labels):
        t = _best_threshold(scores[train][labels[train]], scores[train][~labels[train]])
        accs.append(np.mean((scores[test] >= t) == labels[test]))
        thrs.append(t)
    accs = np.asarray(accs)
    std = float(accs.std(ddof=1))
    return KFoldResult(mean=float(accs.mean()), std=std, sem=float(std / np.sqrt(folds)), folds=folds,
                       fold_accuracies=accs, fold_thresholds=np.asarray(thrs),
                       n_genuine=len(genuine), n_impostor=len(impostor))
