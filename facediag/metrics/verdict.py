"""The one verdict: is a change better, worse, or no significant change?

compare, the gate, bench and the trainer all call :func:`verdict` (or :func:`interval_verdict`
on a bootstrap interval of the change); nobody else decides what a change means.
"""
from __future__ import annotations

BETTER, WORSE, NO_CHANGE = "better", "worse", "no significant change"
HIGHER, LOWER = "higher", "lower"  # significant changes of metrics that are a shift, not a quality

# Every tested metric is a rate or a mean cosine, computed from float32 scores (about 1e-7
# relative resolution). A change below this is arithmetic, not behaviour: an ONNX export of the
# float xxs moves ORL's impostor mean by 2e-8, consistently enough that its bootstrap interval
# leaves out 0, and would otherwise read "better".
NUMERIC_NOISE = 1e-6


def verdict(delta: float, significant: bool, higher_is_better: bool | None) -> str:
    """Better / worse (or higher / lower for a metric without a direction) when significant
    and larger than NUMERIC_NOISE, else no significant change."""
    if not significant or abs(delta) < NUMERIC_NOISE:
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
