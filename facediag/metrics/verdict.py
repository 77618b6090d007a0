"""The one verdict: is a change better, worse, or no significant change?

compare, the gate, bench and the trainer all call :func:`verdict` (or :func:`interval_verdict`
on a bootstrap interval of the change); nobody else decides what a change means.
"""
from __future__ import annotations

BETTER, WORSE, NO_CHANGE = "better", "worse", "no significant change"
HIGHER, LOWER = "higher", "lower"  # significant changes of metrics that are a shift, not a quality


def verdict(delta: float, significant: bool, higher_is_better: bool | None) -> str:
    """Better / worse (or higher / lower for a metric without a direction) when significant,
    else no significant change."""
    if not significant or delta == 0:
        return NO_CHANGE
    if higher_is_better is None:
        return HIGHER if delta > 0 else LOWER
    return BETTER if (delta > 0) == higher_is_better else WORSE


def excludes_zero(low: float, high: float) -> bool:
    """A change is significant when its interval leaves out 0."""
    return not low <= 0 <= high


def interval_verdict(delta: float, low: float, high: float, higher_is_better: bool | None) -> str:
    """The verdict of a change from its (bootstrap) interval."""
    return verdict(delta, excludes_zero(low, high), higher_is_better)
