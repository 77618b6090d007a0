"""Parity of two embedders on the same images: how far B's embeddings are from A's, image by
image, and whether B would name a different person anywhere A names one.

Two readings of "rank-1 decision": ``embedding_parity`` (export verification, a bare sample of
faces) takes each image's nearest other image, leave-one-out; ``deployment_parity`` (compare)
takes each probe's best gallery template, the decision the deployed system makes."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from .identification import l2_normalize

# Quantiles of the per-image cosine a report lists (0 and 1: the min and the max).
QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 1.0)
# Histogram bins of 1 − cosine, by decade: a float export sits in the first bins, an int8 one
# around 1e-2 .. 1e-1, a broken one beyond.
DISTANCE_EDGES = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 2.0)


@dataclass(frozen=True)
class Parity:
    images: int
    cosine_min: float          # per-image cosine between A's and B's embedding of the same image
    cosine_p1: float           # its 1st percentile
    cosine_mean: float
    max_abs_diff: float        # largest |a − b| over every coordinate of the raw embeddings
    rank1_changed: int         # images whose nearest other image's subject differs between A and B
    rank1_changed_share: float

    def as_dict(self) -> dict:
        return asdict(self)


def per_image_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for raw [N, D] embeddings of the same N images."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"parity needs two [N, D] arrays of the same shape, got {a.shape} and {b.shape}")
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def nearest_subjects(emb: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Leave-one-out rank-1 decision per image: the subject of its most similar other image."""
    x = l2_normalize(np.asarray(emb, dtype=np.float64))
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.asarray(subjects)[np.argmax(sim, axis=1)]


def embedding_parity(a: np.ndarray, b: np.ndarray, subjects) -> Parity:
    """A and B: raw [N, D] embeddings of the same N images (N ≥ 2), in the same order."""
    if len(a) < 2:
        raise ValueError(f"parity needs N ≥ 2 images, got {len(a)}")
    cos = per_image_cosine(a, b)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    changed = int(np.sum(nearest_subjects(a, subjects) != nearest_subjects(b, subjects)))
    return Parity(images=len(a), cosine_min=float(cos.min()), cosine_p1=float(np.percentile(cos, 1)),
                  cosine_mean=float(cos.mean()), max_abs_diff=float(np.max(np.abs(a - b))),
                  rank1_changed=changed, rank1_changed_share=changed / len(a))


def deployment_parity(views: Mapping[str, tuple[np.ndarray, np.ndarray]], decided_a, decided_b) -> dict:
    """Parity of B with A over every view both embedded, and over the probes' rank-1 decisions.

    ``views``: name -> (A's raw [N, D], B's raw [N, D]) of the same images; rows either side left
    non-finite (unreadable images) are left out. ``decided_a``/``decided_b``: the subject each side
    names for the same probes (its best gallery template), in the same order.

    Returns the JSON-ready section compare stores: the per-image cosine pooled over the views
    (min, p1, p5, median, mean, quantiles, a histogram of 1 − cosine by decade), each view's
    images and min, the largest coordinate difference, and the probes whose decision changed."""
    cos, per_view, max_abs = [], {}, 0.0
    for name, (a, b) in views.items():
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        c = per_image_cosine(a[ok], b[ok])
        if not len(c):
            continue
        cos.append(c)
        per_view[name] = {"images": int(len(c)), "cosine_min": float(c.min())}
        max_abs = max(max_abs, float(np.max(np.abs(a[ok] - b[ok]))))
    if not cos:
        raise ValueError("parity needs at least one image both models embedded")
    cos = np.concatenate(cos)
    decided_a, decided_b = np.asarray(decided_a), np.asarray(decided_b)
    if decided_a.shape != decided_b.shape:
        raise ValueError(f"rank-1 decisions of different probes: {decided_a.shape} and {decided_b.shape}")
    changed = int(np.sum(decided_a != decided_b))
    counts, _ = np.histogram(np.clip(1.0 - cos, 0.0, 2.0), bins=DISTANCE_EDGES)
    return {"images": int(len(cos)), "views": per_view,
            "cosine": {"min": float(cos.min()), "p1": _q(cos, 0.01), "p5": _q(cos, 0.05),
                       "median": _q(cos, 0.5), "mean": float(cos.mean())},
            "quantiles": [[q, _q(cos, q)] for q in QUANTILES],
            "distance_histogram": {"edges": list(DISTANCE_EDGES), "counts": counts.astype(int).tolist()},
            "max_abs_diff": max_abs,
            "probes": int(len(decided_a)), "rank1_changed": changed,
            "rank1_changed_share": changed / len(decided_a) if len(decided_a) else 0.0}


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q))
