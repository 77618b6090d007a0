"""Operating points: a threshold fixed on one set of scores by a criterion, then applied to another.

A threshold tuned on the set it is reported on overstates what a deployment gets, so biometric
evaluations fix it on a development set and report the evaluation set's error rates at it (bob's
protocols, NIST and ISO/IEC 19795-1 work this way). A comparison is accepted when its score is at
or above the threshold; FMR is the share of impostor comparisons accepted, FNMR the share of
genuine ones rejected, HTER their mean.

Criteria:

- ``"eer"``: where FMR and FNMR cross: the candidate threshold with the smallest max(FMR, FNMR);
- ``"fmr"`` at a target: :func:`facediag.metrics.identification.threshold_for_far`, the lowest
  threshold letting at most floor(target · n) impostors pass, refused unless n · target >= 10
  (the rule every FMR figure in facediag follows);
- ``"min-hter"``: the candidate with the smallest HTER = (FMR + FNMR) / 2.

Candidates: the rates on a set only change at its scores, so each stretch of thresholds with the
same rates is represented by its lowest point — a genuine score (the lowest threshold accepting
it) or the float just above an impostor score (the lowest rejecting it), the rule
threshold_for_far follows. Ties between candidates go to the lowest threshold. On summarised
impostor scores (metrics.streaming: a histogram, the exact top) the candidates are the kept top
scores and the histogram's bin edges below them, where impostor counts are exact; a threshold is
then at most one bin (``resolution``) from the one every score would give.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .identification import MIN_FALSE_ACCEPTS, far_supported, impostors_needed, threshold_for_far
from facediag.formatting import format_value

from .streaming import BIN_WIDTH, BINS, ImpostorScores, bin_edge

CRITERIA = ("eer", "fmr", "min-hter")
# What a Session fixes on its development set unless asked for others: the suite's operating-point
# check and --threshold-from add theirs.
DEFAULT_CRITERIA = ("eer", "min-hter", "fmr=0.01", "fmr=0.001")
_FMR = re.compile(r"fmr\s*=\s*(\S+)")


def parse_criterion(text: str) -> tuple[str, float | None]:
    """``"eer"``, ``"min-hter"`` or ``"fmr=1e-3"`` -> (criterion, FMR target or None).

    Raises ValueError with a sentence saying what is accepted."""
    word = str(text).strip().lower()
    if word in ("eer", "min-hter"):
        return word, None
    m = _FMR.fullmatch(word)
    if m:
        try:
            target = float(m[1])
        except ValueError:
            target = float("nan")
        if not 0 < target < 1:
            raise ValueError(f"{text!r}: an FMR target lies strictly between 0 and 1 (e.g. fmr=1e-3)")
        return "fmr", target
    raise ValueError(f"{text!r} is not a criterion: give eer, min-hter or fmr=TARGET (e.g. fmr=1e-3)")


def parse_threshold_from(text: str) -> tuple[str, float | None]:
    """``--threshold-from SET:CRITERION`` (``dev:eer``, ``dev:min-hter``, ``dev:fmr=1e-3``) -> (criterion,
    FMR target or None). Only the development set fixes thresholds: ValueError otherwise."""
    where, sep, criterion = str(text).strip().partition(":")
    if not sep or where.strip().lower() != "dev":
        raise ValueError(f"{text!r}: write dev:CRITERION, e.g. dev:fmr=1e-3, dev:eer or dev:min-hter (a threshold "
                         "is fixed on the development set)")
    return parse_criterion(criterion)


def criterion_key(criterion: str, fmr_target: float | None = None) -> str:
    """The name a threshold goes by in reports and in ``dev_thresholds``: eer, min-hter, fmr=0.001."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; criteria: {', '.join(CRITERIA)}")
    if criterion == "fmr":
        if fmr_target is None:
            raise ValueError("the fmr criterion needs a target")
        return f"fmr={fmr_target:g}"
    return criterion


@dataclass(frozen=True, eq=False)
class ErrorCurve:
    """Error counts at every candidate threshold of one set of scores (module docstring)."""

    thresholds: np.ndarray       # ascending
    n_false_accepts: np.ndarray  # impostor scores >= threshold
    n_false_rejects: np.ndarray  # genuine scores < threshold
    n_genuine: int
    n_impostor: int
    resolution: float            # 0 when every impostor score was kept, else the histogram's bin width

    @property
    def fmr(self) -> np.ndarray:
        return self.n_false_accepts / self.n_impostor

    @property
    def fnmr(self) -> np.ndarray:
        return self.n_false_rejects / self.n_genuine


def _genuine(genuine) -> np.ndarray:
    g = np.sort(np.asarray(genuine, dtype=np.float64).ravel())
    if np.isnan(g).any():
        raise ValueError("genuine scores contain NaN")
    return g


def error_curve(genuine, impostor) -> ErrorCurve:
    """FMR and FNMR counts at each candidate threshold; ``impostor`` an array or an ImpostorScores."""
    g = _genuine(genuine)
    if isinstance(impostor, ImpostorScores) and not impostor.exact:
        return _summary_curve(g, impostor)
    imp = impostor.scores() if isinstance(impostor, ImpostorScores) else impostor
    imp = np.sort(np.asarray(imp, dtype=np.float64).ravel())
    if np.isnan(imp).any():
        raise ValueError("impostor scores contain NaN")
    if not len(g) or not len(imp):
        raise ValueError(f"need genuine and impostor scores (have {len(g)} genuine, {len(imp)} impostor)")
    lowest, highest = min(g[0], imp[0]), max(g[-1], imp[-1])
    # every stretch's lowest point, plus "accept everything" and "reject everything"
    cand = np.unique(np.r_[g, np.nextafter(imp, np.inf), lowest, np.nextafter(highest, np.inf)])
    n_fa = len(imp) - np.searchsorted(imp, cand, side="left")
    n_fr = np.searchsorted(g, cand, side="left")
    return ErrorCurve(cand, n_fa.astype(np.int64), n_fr.astype(np.int64), len(g), len(imp), 0.0)


def _summary_curve(g: np.ndarray, imp: ImpostorScores) -> ErrorCurve:
    """The curve where the impostors are a histogram and an exact top: candidates above the top's
    lowest score count the top exactly; below it, only bin edges are exact."""
    if not len(g) or not imp.n or not len(imp.top):
        raise ValueError(f"need genuine and impostor scores (have {len(g)} genuine, {imp.n} impostor)")
    floor = float(imp.top[-1])  # every impostor above it is in the kept top
    above = np.r_[g[g > floor], np.nextafter(imp.top, np.inf), np.nextafter(max(g[-1], imp.top[0]), np.inf)]
    edges = bin_edge(np.arange(BINS))
    edges = edges[edges <= floor]
    cand = np.unique(np.r_[edges, above[above > floor]])
    in_hist = np.r_[np.cumsum(imp.histogram[::-1])[::-1]]  # in_hist[j]: impostors in bins >= j
    n_fa = np.where(cand > floor, np.searchsorted(-imp.top, -cand, side="right"),
                    in_hist[np.clip(np.round((cand + 1.0) / BIN_WIDTH).astype(np.int64), 0, BINS - 1)])
    n_fr = np.searchsorted(g, cand, side="left")
    return ErrorCurve(cand, n_fa.astype(np.int64), n_fr.astype(np.int64), len(g), imp.n, imp.resolution)


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold with where it came from (provenance) and the error rates on the set it was fixed
    on; ``threshold`` None when the criterion was refused there (``reason`` says why)."""

    criterion: str                 # "eer" | "fmr" | "min-hter"
    fmr_target: float | None
    set: str                       # the set it was fixed on: "dev"
    threshold: float | None
    reason: str = ""
    fmr: float | None = None       # on that set, at the threshold
    fnmr: float | None = None
    n_false_accepts: int | None = None
    n_false_rejects: int | None = None
    n_genuine: int = 0
    n_impostor: int = 0
    resolution: float = 0.0

    @property
    def key(self) -> str:
        return criterion_key(self.criterion, self.fmr_target)

    @property
    def supported(self) -> bool:
        return self.threshold is not None

    @property
    def hter(self) -> float | None:
        return None if self.fmr is None or self.fnmr is None else (self.fmr + self.fnmr) / 2

    def describe(self) -> str:
        """E.g. ``fixed on dev at FMR 0.001`` / ``fixed on dev at the EER``: the threshold's provenance in words."""
        how = {"eer": "at the EER (FMR = FNMR)", "min-hter": "at the minimum HTER",
               "fmr": f"at FMR {self.fmr_target:g}"}[self.criterion]
        return f"fixed on {self.set} {how}"

    def as_dict(self) -> dict:
        """The shape ``Session.dev_thresholds`` hands out: threshold, criterion, fmr_target, set,
        supported, reason, and the rates and counts on the set it was fixed on."""
        return {"threshold": self.threshold, "criterion": self.criterion, "fmr_target": self.fmr_target,
                "set": self.set, "key": self.key, "supported": self.supported, "reason": self.reason,
                "fmr": self.fmr, "fnmr": self.fnmr, "hter": self.hter, "n_false_accepts": self.n_false_accepts,
                "n_false_rejects": self.n_false_rejects, "n_genuine": self.n_genuine,
                "n_impostor": self.n_impostor, "resolution": self.resolution}


def fix_threshold(genuine, impostor, criterion: str, fmr_target: float | None = None, *, set_name: str = "dev",
                  min_false_accepts: int = MIN_FALSE_ACCEPTS) -> OperatingPoint:
    """The threshold ``criterion`` fixes on these scores, with its rates there.

    ``impostor``: an array or an ImpostorScores (a matching pass's stream). An FMR target the
    impostor count cannot support (n · target < ``min_false_accepts``) gives threshold None and
    the reason, as threshold_for_far refuses it."""
    criterion_key(criterion, fmr_target)  # a bad criterion or target is refused here
    g = _genuine(genuine)
    n_imp = impostor.n if isinstance(impostor, ImpostorScores) else int(np.asarray(impostor).size)
    if not len(g) or not n_imp:
        raise ValueError(f"need genuine and impostor scores (have {len(g)} genuine, {n_imp} impostor)")
    resolution = impostor.resolution if isinstance(impostor, ImpostorScores) else 0.0
    if criterion == "fmr":
        ft = threshold_for_far(impostor, fmr_target, min_false_accepts)
        if not ft.supported:
            return OperatingPoint("fmr", fmr_target, set_name, None, fmr_refusal(n_imp, fmr_target, min_false_accepts),
                                  n_genuine=len(g), n_impostor=n_imp, resolution=resolution)
        n_fr = int(np.searchsorted(g, ft.threshold, side="left"))
        return OperatingPoint("fmr", fmr_target, set_name, float(ft.threshold), "", ft.achieved_far, n_fr / len(g),
                              ft.n_false_accepts, n_fr, len(g), n_imp, resolution)
    curve = error_curve(g, impostor)
    fmr, fnmr = curve.fmr, curve.fnmr
    cost = np.maximum(fmr, fnmr) if criterion == "eer" else fmr + fnmr
    i = int(np.argmin(cost))  # the first of equal costs: the lowest threshold
    return OperatingPoint(criterion, None, set_name, float(curve.thresholds[i]), "", float(fmr[i]), float(fnmr[i]),
                          int(curve.n_false_accepts[i]), int(curve.n_false_rejects[i]), len(g), n_imp,
                          curve.resolution)


@dataclass(frozen=True)
class AppliedRates:
    """A threshold's error rates on a set it was not fixed on, with the counts behind them."""

    threshold: float
    fmr: float
    fnmr: float
    n_false_accepts: int
    n_false_rejects: int
    n_genuine: int
    n_impostor: int

    @property
    def hter(self) -> float:
        return (self.fmr + self.fnmr) / 2

    def fmr_supported(self, target: float, min_false_accepts: int = MIN_FALSE_ACCEPTS) -> bool:
        """Whether this set's impostor count can measure an FMR near ``target`` (n · target >= 10)."""
        return far_supported(self.n_impostor, target, min_false_accepts)

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "fmr": self.fmr, "fnmr": self.fnmr, "hter": self.hter,
                "n_false_accepts": self.n_false_accepts, "n_false_rejects": self.n_false_rejects,
                "n_genuine": self.n_genuine, "n_impostor": self.n_impostor}


def apply_threshold(threshold: float, genuine, n_false_accepts: int, n_impostor: int) -> AppliedRates:
    """FMR, FNMR and HTER at ``threshold`` from the genuine scores and the impostor pairs at or
    above it (``n_false_accepts`` of ``n_impostor``: an exact count, e.g. a matching pass's)."""
    g = _genuine(genuine)
    if not len(g) or n_impostor <= 0:
        raise ValueError(f"need genuine and impostor scores (have {len(g)} genuine, {n_impostor} impostor)")
    n_fr = int(np.searchsorted(g, threshold, side="left"))
    return AppliedRates(float(threshold), n_false_accepts / n_impostor, n_fr / len(g), int(n_false_accepts), n_fr,
                        len(g), int(n_impostor))


def rates_at(threshold: float, genuine, impostor) -> AppliedRates:
    """apply_threshold on an array of impostor scores, or an ImpostorScores that can count exactly
    at ``threshold`` (every score kept, a threshold within the kept top, or a bin edge)."""
    if isinstance(impostor, ImpostorScores):
        n_fa, n = impostor.count_at_least(threshold), impostor.n
        if n_fa is None:
            raise ValueError(f"the summarised impostor scores cannot count exactly at {threshold:g}")
    else:
        imp = np.asarray(impostor, dtype=np.float64).ravel()
        n_fa, n = int((imp >= threshold).sum()), len(imp)
    return apply_threshold(threshold, genuine, n_fa, n)


def fmr_refusal(n_impostor: int, target: float, min_false_accepts: int = MIN_FALSE_ACCEPTS) -> str | None:
    """Why ``n_impostor`` impostor pairs cannot support an FMR target (None when they can): the
    sentence a command gives before any work."""
    if far_supported(n_impostor, target, min_false_accepts):
        return None
    return (f"FMR {target:g} needs >= {impostors_needed(target, min_false_accepts):,} impostor pairs "
            f"(n*fmr >= {min_false_accepts}); only {n_impostor:,} available")


_HOW = {"eer": "at the EER (FMR = FNMR)", "min-hter": "at the minimum HTER"}


def provenance_text(p: dict[str, Any], what: str = "operating threshold") -> str:
    """A threshold with where it came from: ``operating threshold 0.35: source preset (EdgeFace's
    preset)``, or for one fixed on the development set its criterion, target and rates there."""
    if p.get("source") == "dev" or p.get("set") == "dev":
        how = f"at FMR {p['fmr_target']:g}" if p.get("criterion") == "fmr" else _HOW[p.get("criterion")]
        rates = (f"; there FMR {format_value(p['fmr'])}, FNMR {format_value(p['fnmr'])} over "
                 f"{format_value(p.get('n_impostor'))} impostor / {format_value(p.get('n_genuine'))} genuine "
                 "comparisons" if p.get("fmr") is not None else "")
        where = f" ({p['where']})" if p.get("where") else ""
        return f"{what} {p['threshold']:.4g}: source dev, fixed on the development set {how}{rates}{where}"
    return f"{what} {p['threshold']:.4g}: source {p.get('source')} ({p.get('where')})"
