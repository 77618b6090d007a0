"""Orderings of score arrays that several metrics share."""
from __future__ import annotations

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)


def descending_stable(x) -> np.ndarray:
    """``np.argsort(-x, kind="stable")``: highest first, equal values in their first order, NaN last.

    Scores are float32 values (the matching pass computes them so, whatever array holds them):
    then each becomes one uint64, its order-preserving float32 bits above its position, and a
    plain sort of those (numpy's SIMD sort) is the stable order, several times faster than the
    stable argsort (benchmarks/README.md, scale.py). Other values (or more than 2**32 of them)
    take the stable argsort itself."""
    x = np.asarray(x)
    if len(x) >= 1 << 32 or x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        return np.argsort(-x, kind="stable")
    with np.errstate(over="ignore"):
        y = (-x).astype(np.float32)
    y += np.float32(0)                         # -0.0 becomes 0.0: equal, as the argsort sees them
    if not np.array_equal(y, -x, equal_nan=True):
        return np.argsort(-x, kind="stable")
    flip = (y.view(np.int32) >> 31).view(np.uint32)  # all ones where negative
    flip |= np.uint32(1 << 31)
    bits = flip ^ y.view(np.uint32)            # as unsigned, in the floats' order
    bits[np.isnan(y)] = np.uint32(0xFFFFFFFF)  # NaN after +inf, as argsort puts it
    keys = bits.astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(len(x), dtype=np.uint64)
    keys.sort()
    keys &= _LOW32
    return keys.view(np.int64)
