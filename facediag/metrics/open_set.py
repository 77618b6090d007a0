"""Open-set (watch-list) identification at rank k: TPIR at FPIR targets and the area under the
TPIR–FPIR curve, as QMUL-SurvFace reports them (TPIR at rank 20 and rank 1, FPIR 0.3, 0.2, 0.1).

Definitions (the protocol page of QMUL-SurvFace, after NIST's FRVT identification report):

- FPIR(t): share of non-mated searches (no mate in the gallery) whose best score is >= t.
- TPIR_k(t) = 1 − FNIR_k(t): share of mated searches whose mate is among the k best gallery
  identities *and* scores >= t. Ties count against the probe (the rule of
  :mod:`facediag.metrics.identification`): a mate tied with another identity sits below it.
- TPIR_k at a target FPIR f: at the lowest threshold whose FPIR does not exceed f
  (:func:`facediag.metrics.identification.threshold_for_far` on the non-mated best scores); a
  target is refused, with the reason, unless non-mated searches × f >= MIN_FALSE_ACCEPTS (10).
- Area: under the curve traced by every threshold, FPIR from 0 to 1, straight segments between
  operating points (a mate and a non-mate of equal score make a diagonal, counted half): the
  share of (mated, non-mated) search pairs where the mated one is identified at rank k with a
  score above the non-mated one's best, ties counted half. The public ports of the SurvFace
  evaluation sample 1,000 thresholds between the lowest and highest non-mated score and
  integrate with the trapezoid rule; this is the same area without the sampling.
"""
from __future__ import annotations

import numpy as np

from .identification import MIN_FALSE_ACCEPTS, MatchSummary, impostors_needed, open_set_hits, threshold_for_far

#: QMUL-SurvFace's headline operating points and ranks.
WATCHLIST_FPIRS = (0.3, 0.2, 0.1)
WATCHLIST_RANKS = (20, 1)


def _counts(m: MatchSummary) -> tuple[int, int]:
    return int(m.mated.sum()), int((~m.mated).sum())


def tpir_at_fpir(m: MatchSummary, fpirs=WATCHLIST_FPIRS, *, rank: int = 1,
                 min_false_alarms: int = MIN_FALSE_ACCEPTS) -> dict:
    """TPIR at rank ``rank`` at each target FPIR, JSON-ready.

    Parameters
    ----------
    m : MatchSummary
        Mated and non-mated searches against one gallery (one template per identity).
    fpirs : sequence of float
        Target FPIRs in (0, 1).
    rank : int
        A mated search counts when its mate is among the ``rank`` best identities (and scores at
        or above the threshold).
    min_false_alarms : int
        Support rule: a target f needs non-mated searches × f >= this.

    Returns
    -------
    dict
        ``tpir_at_fpir`` {"0.1": TPIR or None}, ``tpir_unsupported`` {"0.1": why} for the
        refused targets, ``fpir_thresholds`` {"0.1": {"threshold", "fpir", "false_alarms"}} for
        the supported ones (the FPIR the threshold gives, at most the target).
    """
    n_mated, n_nonmated = _counts(m)
    keys = [f"{f:g}" for f in fpirs]
    if not n_mated or not n_nonmated:
        why = "no non-mated probes" if n_mated else "no mated probes"
        return {"tpir_at_fpir": dict.fromkeys(keys), "tpir_unsupported": dict.fromkeys(keys, why),
                "fpir_thresholds": {}}
    hits = open_set_hits(m, rank)
    alarms = m.top_score[~m.mated]
    tpir, unsupported, thresholds = {}, {}, {}
    for key, f in zip(keys, fpirs):
        ft = threshold_for_far(alarms, f, min_false_alarms)
        if not ft.supported:  # the metrics' rule, said of searches: FPIR counts non-mated probes, not pairs
            tpir[key] = None
            unsupported[key] = (f"FPIR {f:g} needs >= {impostors_needed(f, min_false_alarms)} non-mated probes "
                                f"(n·FPIR >= {min_false_alarms}); only {n_nonmated} available")
            continue
        tpir[key] = float((len(hits) - np.searchsorted(hits, ft.threshold, side="left")) / n_mated)
        thresholds[key] = {"threshold": ft.threshold, "fpir": ft.achieved_far, "false_alarms": ft.n_false_accepts}
    return {"tpir_at_fpir": tpir, "tpir_unsupported": unsupported, "fpir_thresholds": thresholds}


def tpir_fpir_area(m: MatchSummary, *, rank: int = 1) -> float | None:
    """Area under the TPIR–FPIR curve at rank ``rank`` (FPIR 0 to 1; see the module docstring);
    None without mated or without non-mated searches. 1.0: every mate found at rank ``rank``
    above every non-mated search's best score; its maximum is the closed-set rank-k rate."""
    n_mated, n_nonmated = _counts(m)
    if not n_mated or not n_nonmated:
        return None
    hits = open_set_hits(m, rank)
    alarms = np.sort(m.top_score[~m.mated])
    below = np.searchsorted(alarms, hits, side="left")       # non-mated best scores under each hit
    at_most = np.searchsorted(alarms, hits, side="right")    # ... and those equal to it
    return float((below.sum() + at_most.sum()) / 2.0 / (n_mated * n_nonmated))


def watchlist(m: MatchSummary, *, ranks=WATCHLIST_RANKS, fpirs=WATCHLIST_FPIRS,
              min_false_alarms: int = MIN_FALSE_ACCEPTS) -> dict:
    """The open-set figures at each rank: ``{"rank20": {tpir_at_fpir, tpir_unsupported,
    fpir_thresholds, area}, "rank1": {...}}`` (JSON-ready), with the search counts."""
    n_mated, n_nonmated = _counts(m)
    out = {"n_mated": n_mated, "n_nonmated": n_nonmated, "n_gallery": int(m.n_gallery)}
    for k in ranks:
        out[f"rank{k}"] = {**tpir_at_fpir(m, fpirs, rank=k, min_false_alarms=min_false_alarms),
                           "area": tpir_fpir_area(m, rank=k)}
    return out


__all__ = ["WATCHLIST_FPIRS", "WATCHLIST_RANKS", "tpir_at_fpir", "tpir_fpir_area", "watchlist"]
