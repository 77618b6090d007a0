"""The reference 10-fold pair protocol of the verification sets (LFW, CFP-FP, AgeDB-30, ...).

This is the protocol the published figures (insightface's ``verification.py``, EdgeFace's
tables) are measured with, run on squared L2 distances between L2-normalised embeddings:

- folds: 10 blocks of consecutive pairs, in file order, never shuffled (sizes as
  ``np.array_split``: the first ``n % 10`` folds one pair longer), unless the set names its
  own folds (an LFW ``pairs.txt`` header, a CSV ``fold`` column);
- a pair is called "same" when its distance is strictly below the threshold;
- each fold's threshold: the first of ``np.arange(0, 4, 0.01)`` with the best accuracy on
  the other folds; accuracy = mean ± std (population std, ddof=0, as ``np.std``) of the
  test folds' accuracies;
- VAL@FAR: per fold, the threshold (of ``np.arange(0, 4, 0.001)``) at which the other
  folds' false-accept rate reaches the target, linearly interpolated; VAL and FAR measured
  on the test fold; mean and std over folds. VAL@FAR is *flagged* (``val_unsupported``), its
  number kept, when a training split holds fewer impostor pairs than the project's one FAR
  support rule (:func:`facediag.metrics.identification.far_supported`) asks for: LFW's 2,700
  impostors per split do not support 1e-3 either; the reference reports the number regardless.

Not :func:`facediag.metrics.verification.kfold_pair_accuracy`, which is the verification
check's own estimate on probe × template scores (stratified, shuffled, class-balanced, best
threshold anywhere between observed scores, ddof=1): use this module to reproduce a paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .identification import MIN_FALSE_ACCEPTS, far_supported, impostors_needed

ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)   # the reference's grid: 0.00 ... 3.99
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
DEFAULT_FOLDS = 10
DEFAULT_FAR_TARGET = 1e-3


def consecutive_folds(n_pairs: int, folds: int = DEFAULT_FOLDS) -> np.ndarray:
    """Fold id of each pair: ``folds`` consecutive blocks, as sklearn's unshuffled KFold."""
    if folds < 2 or n_pairs < folds:
        raise ValueError(f"{folds}-fold protocol needs at least {max(folds, 2)} pairs (have {n_pairs})")
    ids = np.empty(n_pairs, dtype=np.int64)
    for k, block in enumerate(np.array_split(np.arange(n_pairs), folds)):
        ids[block] = k
    return ids


@dataclass(frozen=True, eq=False)
class ReferenceKFoldResult:
    """The reference protocol's numbers. ``accuracy_std`` and ``val_std`` are population
    standard deviations over the test folds (ddof=0), as the reference reports them."""

    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray       # squared-L2 distance thresholds, one per fold
    val_mean: float
    val_std: float
    far_mean: float                   # the FAR the VAL thresholds actually gave on the test folds
    far_target: float
    fold_val: np.ndarray
    fold_far: np.ndarray
    folds: int
    n_genuine: int
    n_impostor: int
    pair_correct: np.ndarray          # [N] bool: the pair's test fold's threshold classifies it right
    val_unsupported: str = ""         # why VAL@FAR rests on too few impostors; empty when supported

    def as_dict(self) -> dict:
        return dict(accuracy_mean=self.accuracy_mean, accuracy_std=self.accuracy_std,
                    fold_accuracies=self.fold_accuracies.tolist(), fold_thresholds=self.fold_thresholds.tolist(),
                    val_mean=self.val_mean, val_std=self.val_std, far_mean=self.far_mean,
                    far_target=self.far_target, fold_val=self.fold_val.tolist(), fold_far=self.fold_far.tolist(),
                    folds=self.folds, n_genuine=self.n_genuine, n_impostor=self.n_impostor,
                    val_unsupported=self.val_unsupported)


def _accepted_below(sorted_dist: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many distances are strictly below each threshold (a pair is "same" when d < t)."""
    return np.searchsorted(sorted_dist, thresholds, side="left")


def _fold_counts(dist, issame, fold_ids, folds, thresholds):
    """Per fold and threshold: accepted genuine and impostor pairs; and each fold's class sizes."""
    acc_gen = np.zeros((folds, len(thresholds)), dtype=np.int64)
    acc_imp = np.zeros_like(acc_gen)
    n_gen = np.zeros(folds, dtype=np.int64)
    n_imp = np.zeros(folds, dtype=np.int64)
    for k in range(folds):
        in_fold = fold_ids == k
        g, i = np.sort(dist[in_fold & issame]), np.sort(dist[in_fold & ~issame])
        acc_gen[k], acc_imp[k] = _accepted_below(g, thresholds), _accepted_below(i, thresholds)
        n_gen[k], n_imp[k] = len(g), len(i)
    return acc_gen, acc_imp, n_gen, n_imp


def threshold_at_far(far: np.ndarray, thresholds: np.ndarray, target: float) -> float:
    """The threshold at which a (non-decreasing) FAR curve reaches ``target``: linear between
    the last grid threshold with FAR ≤ target and the next one, as the reference's
    ``interp1d(far, thresholds, kind='slinear')`` evaluates it (written out: SciPy ≥ 1.9
    refuses the repeated FAR values every such curve has). 0.0 when FAR never reaches the
    target, as the reference."""
    if far.max() < target:
        return 0.0
    j = int(np.flatnonzero(far <= target)[-1])  # far[0] is 0 (nothing is below threshold 0)
    if far[j] == target or j + 1 == len(far):
        return float(thresholds[j])
    k = j + 1
    return float(thresholds[j] + (target - far[j]) * (thresholds[k] - thresholds[j]) / (far[k] - far[j]))


def reference_kfold(dist, issame, *, folds: int = DEFAULT_FOLDS, fold_ids=None,
                    far_target: float = DEFAULT_FAR_TARGET) -> ReferenceKFoldResult:
    """The reference protocol on squared L2 distances ``dist`` (0..4 for unit vectors) and
    booleans ``issame``, one per pair, in the set's order. ``fold_ids``: the set's own folds
    (0..folds-1 per pair); default: consecutive blocks."""
    dist = np.asarray(dist, dtype=np.float64).ravel()
    issame = np.asarray(issame, dtype=bool).ravel()
    if len(dist) != len(issame):
        raise ValueError(f"{len(dist)} distances for {len(issame)} labels")
    if not np.isfinite(dist).all():
        raise ValueError("distances must be finite (drop the pairs whose images could not be read)")
    if fold_ids is None:
        fold_ids = consecutive_folds(len(dist), folds)
    else:
        fold_ids = np.asarray(fold_ids, dtype=np.int64).ravel()
        if len(fold_ids) != len(dist):
            raise ValueError(f"{len(fold_ids)} fold ids for {len(dist)} pairs")
        present = np.unique(fold_ids)
        folds = len(present)
        if folds < 2:
            raise ValueError("the pairs name fewer than 2 folds")
        fold_ids = np.searchsorted(present, fold_ids)  # any labels -> 0..folds-1, in label order

    # Accuracy: every threshold's counts per fold once; training counts = all folds − the test fold.
    acc_gen, acc_imp, n_gen, n_imp = _fold_counts(dist, issame, fold_ids, folds, ACCURACY_THRESHOLDS)
    accs, thrs = np.zeros(folds), np.zeros(folds)
    for k in range(folds):
        train_correct = (acc_gen.sum(0) - acc_gen[k]) + ((n_imp.sum() - n_imp[k]) - (acc_imp.sum(0) - acc_imp[k]))
        best = int(np.argmax(train_correct))  # the first best, as np.argmax in the reference
        thrs[k] = ACCURACY_THRESHOLDS[best]
        accs[k] = (acc_gen[k, best] + n_imp[k] - acc_imp[k, best]) / (n_gen[k] + n_imp[k])
    # Each pair's decision at its own test fold's threshold: what paired tests (McNemar) compare.
    pair_correct = (dist < thrs[fold_ids]) == issame

    # VAL@FAR: the training folds' FAR curve on the finer grid, its threshold applied to the test fold.
    val_gen, val_imp, _, _ = _fold_counts(dist, issame, fold_ids, folds, VAL_THRESHOLDS)
    vals, fars = np.full(folds, np.nan), np.full(folds, np.nan)
    for k in range(folds):
        train_imp = n_imp.sum() - n_imp[k]
        if train_imp == 0 or n_gen[k] == 0 or n_imp[k] == 0:
            continue  # the reference divides by zero here; we leave the fold's VAL undefined
        t = threshold_at_far((val_imp.sum(0) - val_imp[k]) / train_imp, VAL_THRESHOLDS, far_target)
        test = fold_ids == k
        accepted = dist[test] < t
        vals[k] = np.sum(accepted & issame[test]) / n_gen[k]
        fars[k] = np.sum(accepted & ~issame[test]) / n_imp[k]
    defined = np.isfinite(vals)
    train_impostors = int((n_imp.sum() - n_imp).min())  # the smallest training split's
    val_unsupported = "" if far_supported(train_impostors, far_target) else (
        f"VAL@FAR {far_target:g} not supported by {train_impostors} impostors per split "
        f"(n·FAR ≥ {MIN_FALSE_ACCEPTS} needs ≥ {impostors_needed(far_target)})")
    return ReferenceKFoldResult(
        accuracy_mean=float(accs.mean()), accuracy_std=float(accs.std()), fold_accuracies=accs,
        fold_thresholds=thrs,
        val_mean=float(vals[defined].mean()) if defined.any() else float("nan"),
        val_std=float(vals[defined].std()) if defined.any() else float("nan"),
        far_mean=float(fars[defined].mean()) if defined.any() else float("nan"),
        far_target=far_target, fold_val=vals, fold_far=fars, folds=folds,
        n_genuine=int(issame.sum()), n_impostor=int((~issame).sum()), pair_correct=pair_correct,
        val_unsupported=val_unsupported)


__all__ = ["ACCURACY_THRESHOLDS", "DEFAULT_FAR_TARGET", "DEFAULT_FOLDS", "ReferenceKFoldResult", "VAL_THRESHOLDS",
           "consecutive_folds", "reference_kfold", "threshold_at_far"]
