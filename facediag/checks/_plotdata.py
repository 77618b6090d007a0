"""Small helpers turning score arrays into the JSON plot data renderers read."""
from __future__ import annotations

import numpy as np

from facediag.metrics.streaming import ImpostorScores


def histogram(values, bins: int = 50, range_=(-1.0, 1.0)) -> dict:
    """Counts over ``bins`` equal bins; ``values`` is an array or an ImpostorScores summary."""
    if isinstance(values, ImpostorScores) and range_ == (-1.0, 1.0):
        counts, edges = values.plot_histogram(bins)
        return {"edges": edges.round(5).tolist(), "counts": counts.tolist()}
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=bins, range=range_)
    return {"edges": edges.round(5).tolist(), "counts": counts.tolist()}


def r(x, nd: int = 4):
    """Round for reports; keep None as None."""
    return None if x is None else round(float(x), nd)
