"""Identification metrics: templates, closed-set rank-k/CMC, accuracy at a threshold, open set.

Scores are cosine similarities, a probe x template matrix [P, S]. A probe is *mated* when
its subject has a template in the gallery. Ties between the true template and an impostor
template count against the probe (the true template must score strictly highest to be
rank 1), so a collapsed model whose scores are all equal cannot look perfect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .streaming import ImpostorScores, bin_edge

#: A FAR target f is supported by n impostor scores only if n * f >= MIN_FALSE_ACCEPTS.
MIN_FALSE_ACCEPTS = 10


def as_labels(x) -> np.ndarray:
    # str labels everywhere, so "7" and 7 from two data sources cannot silently mismatch.
    return np.asarray(x).astype(str)


def l2_normalize(x, eps: float = 1e-12) -> np.ndarray:
    """Rows of x divided by their L2 norm (zero rows stay zero)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def subject_sums(x, subjects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row sums per subject: (sorted unique subjects [S], sums [S, D], row counts [S])."""
    x = np.asarray(x)
    subjects = as_labels(subjects)
    if len(subjects) != len(x):
        raise ValueError(f"{len(x)} embeddings but {len(subjects)} subject labels")
    uniq, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    return uniq, np.add.reduceat(x[order], starts, axis=0), counts


def build_templates(emb_normed, subjects) -> tuple[np.ndarray, np.ndarray]:
    """One template per subject: mean of its L2-normalised embeddings, renormalised.

    Returns (template_subjects [S] sorted, templates [S, D]); row i belongs to subject i.
    """
    uniq, sums, _ = subject_sums(l2_normalize(emb_normed), subjects)
    return uniq, l2_normalize(sums)


def similarity_matrix(probes, templates) -> np.ndarray:
    """Cosine similarity [P, S] of L2-normalised probes against L2-normalised templates."""
    return np.asarray(probes) @ np.asarray(templates).T


@dataclass(frozen=True, eq=False)
class MatchSummary:
    """Where each probe's true template sits in its score row: everything closed-set, open-set
    and threshold metrics need, whether it came from a full score matrix (``summarize``) or from
    a chunked pass that never held one (protocols.matching)."""

    mated: np.ndarray         # bool [P]
    genuine: np.ndarray       # float [n_mated], score against the own template
    ranks: np.ndarray         # int [n_mated], 1 = own template strictly highest; rank_limit + 1 = beyond
    top_score: np.ndarray     # float [P], best score of every probe
    n_gallery: int
    rank_limit: int | None = None  # ranks above it are not resolved (None: every rank is exact)


def summarize(scores, probe_subjects, template_subjects) -> MatchSummary:
    """The MatchSummary of a full probe x template score matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    probe_subjects, template_subjects = as_labels(probe_subjects), as_labels(template_subjects)
    if scores.ndim != 2 or scores.shape != (len(probe_subjects), len(template_subjects)):
        raise ValueError(f"scores {scores.shape} do not match {len(probe_subjects)} probes "
                         f"x {len(template_subjects)} templates")
    if len(template_subjects) == 0:
        raise ValueError("empty gallery: no templates")
    if len(np.unique(template_subjects)) != len(template_subjects):
        raise ValueError("template_subjects must be unique: one template per subject")
    order = np.argsort(template_subjects)
    pos = np.searchsorted(template_subjects, probe_subjects, sorter=order)
    pos = np.minimum(pos, len(order) - 1)
    cols = order[pos]
    mated = template_subjects[cols] == probe_subjects
    rows = scores[mated]
    genuine = rows[np.arange(len(rows)), cols[mated]]
    # Count templates scoring >= the true one (itself included): ties go against the probe.
    ranks = (rows >= genuine[:, None]).sum(axis=1)
    ranks[np.isnan(genuine)] = scores.shape[1]
    return MatchSummary(mated, genuine, ranks, scores.max(axis=1, initial=-np.inf), scores.shape[1])


@dataclass(frozen=True, eq=False)
class IdentificationResult:
    """Closed-set identification over the mated probes only."""

    rank_accuracy: dict          # {k: accuracy}
    cmc: np.ndarray              # [S], cmc[k-1] = share of used probes with rank <= k
    ranks: np.ndarray            # int [n_used], rank of the true template (1 = best)
    correct_rank1: np.ndarray    # bool [n_used], per-probe rank-1 correctness (for McNemar)
    probe_index: np.ndarray      # int [n_used], row of each used probe in the input
    worst_subjects: tuple        # ((subject, rank1, n_probes), ...) lowest rank-1 first, rank-1 < 1 only
    n_probes_used: int
    n_probes_total: int
    n_gallery: int

    def as_dict(self) -> dict:
        out = {f"rank{k}": float(v) for k, v in self.rank_accuracy.items()}
        out.update(n_probes_used=self.n_probes_used, n_probes_total=self.n_probes_total,
                   n_gallery=self.n_gallery)
        return out


def closed_set(scores, probe_subjects, template_subjects, ranks=(1, 5, 10),
               n_worst: int = 5) -> IdentificationResult:
    """Rank-k accuracies, CMC and per-probe correctness; probes without a template are left out."""
    return closed_set_from(summarize(scores, probe_subjects, template_subjects), probe_subjects, ranks, n_worst)


def closed_set_from(m: MatchSummary, probe_subjects, ranks=(1, 5, 10), n_worst: int = 5) -> IdentificationResult:
    """closed_set from a MatchSummary. The CMC stops at the summary's rank limit, if any; a rank
    beyond the limit is asked for is refused."""
    n_used, n_gallery = int(m.mated.sum()), m.n_gallery
    if n_used == 0:
        raise ValueError("no probe has a template in the gallery: closed-set needs mated probes")
    depth = n_gallery if m.rank_limit is None else min(n_gallery, m.rank_limit)
    if any(min(k, n_gallery) > depth for k in ranks):
        raise ValueError(f"ranks {list(ranks)} go beyond the {depth} resolved by the matching pass")
    cmc = np.cumsum(np.bincount(np.minimum(m.ranks, depth + 1), minlength=depth + 2)[1:depth + 1]) / n_used
    correct = m.ranks == 1

    used_subjects = as_labels(probe_subjects)[m.mated]
    subj, inv = np.unique(used_subjects, return_inverse=True)
    counts = np.bincount(inv)
    per_subject = np.bincount(inv, weights=correct) / counts
    worst = [i for i in np.lexsort((subj, per_subject)) if per_subject[i] < 1][:n_worst]
    return IdentificationResult(
        rank_accuracy={int(k): float(cmc[min(k, n_gallery) - 1]) for k in ranks},
        cmc=cmc, ranks=m.ranks, correct_rank1=correct, probe_index=np.flatnonzero(m.mated),
        worst_subjects=tuple((str(subj[i]), float(per_subject[i]), int(counts[i])) for i in worst),
        n_probes_used=n_used, n_probes_total=len(m.mated), n_gallery=n_gallery)


@dataclass(frozen=True)
class ThresholdResult:
    """What a fixed acceptance threshold (accept when cosine >= threshold) does."""

    threshold: float
    accuracy: float              # mated probes with correct top-1 AND top score >= threshold
    n_correct_accepted: int
    genuine_accept_rate: float   # mated probes whose own-template score >= threshold
    n_genuine_accepted: int
    n_genuine: int               # mated probes (denominator of both rates above)
    false_accept_rate: float     # impostor (probe, other-subject template) pairs >= threshold
    n_false_accepts: int
    n_impostor: int

    def as_dict(self) -> dict:
        return dict(vars(self))


def threshold_accuracy(scores, probe_subjects, template_subjects, threshold: float) -> ThresholdResult:
    """Accuracy, genuine acceptance and false acceptance at one cosine threshold.

    Impostor pairs are every probe (mated or not) against every template of another subject.
    """
    scores = np.asarray(scores, dtype=np.float64)
    m = summarize(scores, probe_subjects, template_subjects)
    impostor = as_labels(probe_subjects)[:, None] != as_labels(template_subjects)[None, :]
    return threshold_accuracy_from(m, threshold, int(((scores >= threshold) & impostor).sum()), int(impostor.sum()))


def threshold_accuracy_from(m: MatchSummary, threshold: float, n_fa: int, n_imp: int) -> ThresholdResult:
    """threshold_accuracy from a MatchSummary and the impostor pairs (n_fa of n_imp) at or above
    the threshold."""
    n_genuine = int(m.mated.sum())
    if n_genuine == 0:
        raise ValueError("no probe has a template in the gallery")
    n_correct = int(((m.ranks == 1) & (m.genuine >= threshold)).sum())
    n_gen_acc = int((m.genuine >= threshold).sum())
    return ThresholdResult(
        threshold=float(threshold),
        accuracy=n_correct / n_genuine, n_correct_accepted=n_correct,
        genuine_accept_rate=n_gen_acc / n_genuine, n_genuine_accepted=n_gen_acc,
        n_genuine=n_genuine,
        false_accept_rate=n_fa / n_imp if n_imp else 0.0, n_false_accepts=n_fa,
        n_impostor=n_imp)


@dataclass(frozen=True)
class FarThreshold:
    """The lowest threshold whose false-accept rate does not exceed a target, or why none is given."""

    far: float                   # target
    supported: bool
    threshold: float | None      # accept when score >= threshold; None when unsupported
    achieved_far: float | None   # share of impostor scores >= threshold
    n_false_accepts: int | None
    n_impostor: int
    reason: str                  # empty when supported

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None and k != "reason"}


def threshold_for_far(impostor_scores, far: float,
                      min_false_accepts: int = MIN_FALSE_ACCEPTS) -> FarThreshold:
    """Score threshold achieving false-accept rate <= far on these impostor scores.

    Support rule: a target is refused (threshold None + reason) unless
    n_impostor * far >= min_false_accepts (default 10), i.e. at least 10 impostor scores
    are expected above the threshold. Below that the threshold is set by a handful of the
    highest impostor scores and the FAR estimate's relative error (~1/sqrt(n*far)) exceeds
    about 30 %. Example: 1,000 impostors support FAR 1e-2, not 1e-3 or 1e-4.

    The threshold is the smallest value letting at most floor(far * n) impostors pass
    (just above the (floor(far*n)+1)-th highest impostor score, so ties are never split).
    """
    if not 0 < far < 1:
        raise ValueError(f"far must be in (0, 1), got {far}")
    if isinstance(impostor_scores, ImpostorScores) and not impostor_scores.exact:
        return _threshold_for_far_summary(impostor_scores, far, min_false_accepts)
    if isinstance(impostor_scores, ImpostorScores):  # every score kept: its top is all of them, sorted
        impostor_scores.scores()
        imp = impostor_scores.top
    else:
        imp = np.sort(np.asarray(impostor_scores, dtype=np.float64).ravel())[::-1]
    if np.isnan(imp).any():
        raise ValueError("impostor scores contain NaN")
    n = len(imp)
    refused = _unsupported(far, n, min_false_accepts)
    if refused:
        return refused
    k = int(np.floor(far * n))
    threshold = float(np.nextafter(imp[k], np.inf))
    n_fa = int((imp >= threshold).sum())
    return FarThreshold(far=far, supported=True, threshold=threshold, achieved_far=n_fa / n,
                        n_false_accepts=n_fa, n_impostor=n, reason="")


def far_supported(n_impostor: int, far: float, min_false_accepts: int = MIN_FALSE_ACCEPTS) -> bool:
    """The support rule every FAR-based figure follows: ``n_impostor * far >= min_false_accepts``."""
    return n_impostor * far >= min_false_accepts


def impostors_needed(far: float, min_false_accepts: int = MIN_FALSE_ACCEPTS) -> int:
    """The fewest impostor pairs that support ``far`` under :func:`far_supported`."""
    return int(np.ceil(min_false_accepts / far))


def _unsupported(far: float, n: int, min_false_accepts: int) -> FarThreshold | None:
    if far_supported(n, far, min_false_accepts):
        return None
    need = impostors_needed(far, min_false_accepts)
    return FarThreshold(far=far, supported=False, threshold=None, achieved_far=None,
                        n_false_accepts=None, n_impostor=n,
                        reason=f"FAR {far:g} needs >= {need} impostor pairs "
                               f"(n*far >= {min_false_accepts}); only {n} available")


def _threshold_for_far_summary(imp: ImpostorScores, far: float, min_false_accepts: int) -> FarThreshold:
    """The same rule on summarised scores: exact while the (floor(far*n)+1)-th highest score is
    among the kept top; beyond it, the lowest histogram edge letting at most floor(far*n)
    impostors pass (an exact count; the threshold is then at most one bin above the exact one)."""
    n = imp.n
    refused = _unsupported(far, n, min_false_accepts)
    if refused:
        return refused
    k = int(np.floor(far * n))
    if k < len(imp.top):
        threshold = float(np.nextafter(imp.top[k], np.inf))
        n_fa = int(np.searchsorted(-imp.top, -threshold, side="right"))
    else:
        above = np.r_[np.cumsum(imp.histogram[::-1])[::-1], 0]  # above[j]: impostors in bins >= j
        j = int(np.argmax(above <= k))
        threshold, n_fa = float(bin_edge(j)), int(above[j])
    return FarThreshold(far=far, supported=True, threshold=threshold, achieved_far=n_fa / n,
                        n_false_accepts=n_fa, n_impostor=n, reason="")


@dataclass(frozen=True, eq=False)
class OpenSetResult:
    """Open-set identification: mated probes must be found, non-mated probes rejected.

    false_alarm_rate = share of non-mated probes whose best score >= threshold (wrongly
    accepted); correct_rejection_rate = 1 - false_alarm_rate. A correct-rejection rate of
    0.0024 therefore means 99.76 % false alarms.
    """

    threshold: float
    dir: float                       # detection-and-identification rate at threshold
    false_alarm_rate: float
    correct_rejection_rate: float
    n_detected_identified: int
    n_false_alarms: int
    n_mated: int
    n_nonmated: int
    dir_at_false_alarm: dict         # {far: FarThreshold-based DIR or None when unsupported}
    curve_thresholds: np.ndarray
    curve_dir: np.ndarray
    curve_false_alarm_rate: np.ndarray

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "threshold", "dir", "false_alarm_rate", "correct_rejection_rate",
            "n_detected_identified", "n_false_alarms", "n_mated", "n_nonmated")}
        out.update({f"dir_at_false_alarm_{f:g}": v
                    for f, v in self.dir_at_false_alarm.items() if v is not None})
        return out


def open_set(scores, probe_subjects, template_subjects, thresholds=None, *,
             threshold: float, fars=(1e-2, 1e-1), rank: int = 1) -> OpenSetResult:
    """DIR vs false-alarm rate over thresholds, the values at `threshold`, and DIR at target FARs.

    DIR(t) at rank k (default 1): mated probes whose true template is among the k best (ties
    against the probe, as everywhere) and scores >= t, over all mated probes.
    False alarm(t): non-mated probes whose best score >= t, over all non-mated probes.
    DIR at a false-alarm target uses threshold_for_far on the non-mated best scores (same
    support rule). `thresholds` defaults to -1..1 in steps of 0.01.
    """
    return open_set_from(summarize(scores, probe_subjects, template_subjects), thresholds,
                         threshold=threshold, fars=fars, rank=rank)


def open_set_hits(m: MatchSummary, rank: int = 1) -> np.ndarray:
    """Genuine scores of the mated probes whose own template is among the ``rank`` best, sorted:
    the probes that count as identified at any threshold at or below their score. A rank beyond
    the summary's rank limit is refused (those ranks were not resolved)."""
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if m.rank_limit is not None and rank > m.rank_limit:
        raise ValueError(f"rank {rank} goes beyond the {m.rank_limit} resolved by the matching pass")
    return np.sort(m.genuine[(m.ranks <= rank) & np.isfinite(m.genuine)])


def open_set_from(m: MatchSummary, thresholds=None, *, threshold: float, fars=(1e-2, 1e-1),
                  rank: int = 1) -> OpenSetResult:
    """open_set from a MatchSummary."""
    n_mated, n_nonmated = int(m.mated.sum()), int((~m.mated).sum())
    if n_mated == 0 or n_nonmated == 0:
        raise ValueError(f"open-set needs mated and non-mated probes "
                         f"(have {n_mated} mated, {n_nonmated} non-mated)")
    hits = open_set_hits(m, rank)
    alarms = np.sort(m.top_score[~m.mated])

    def n_hits(t):
        return len(hits) - np.searchsorted(hits, t, side="left")

    def n_alarms(t):
        return n_nonmated - np.searchsorted(alarms, t, side="left")

    grid = np.linspace(-1, 1, 201) if thresholds is None else np.asarray(thresholds, float)
    n_hit, n_fa = int(n_hits(threshold)), int(n_alarms(threshold))
    dir_far = {}
    for f in fars:
        ft = threshold_for_far(alarms, f)
        dir_far[f] = float(n_hits(ft.threshold) / n_mated) if ft.supported else None
    return OpenSetResult(
        threshold=float(threshold), dir=n_hit / n_mated, false_alarm_rate=n_fa / n_nonmated,
        correct_rejection_rate=1.0 - n_fa / n_nonmated,
        n_detected_identified=n_hit, n_false_alarms=n_fa, n_mated=n_mated, n_nonmated=n_nonmated,
        dir_at_false_alarm=dir_far, curve_thresholds=grid, curve_dir=n_hits(grid) / n_mated,
        curve_false_alarm_rate=n_alarms(grid) / n_nonmated)
