"""Parity of two embedders on the same images: how far B's embeddings are from A's, image by
image, and whether B would name a different person anywhere A names one."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .identification import l2_normalize


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


def nearest_subjects(emb: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Leave-one-out rank-1 decision per image: the subject of its most similar other image."""
    x = l2_normalize(np.asarray(emb, dtype=np.float64))
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.asarray(subjects)[np.argmax(sim, axis=1)]


def embedding_parity(a: np.ndarray, b: np.ndarray, subjects) -> Parity:
    """A and B: raw [N, D] embeddings of the same N images (N ≥ 2), in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError(f"parity needs two [N, D] arrays of the same shape with N ≥ 2, got {a.shape} and {b.shape}")
    cos = np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    changed = int(np.sum(nearest_subjects(a, subjects) != nearest_subjects(b, subjects)))
    return Parity(images=len(a), cosine_min=float(cos.min()), cosine_p1=float(np.percentile(cos, 1)),
                  cosine_mean=float(cos.mean()), max_abs_diff=float(np.max(np.abs(a - b))),
                  rank1_changed=changed, rank1_changed_share=changed / len(a))
