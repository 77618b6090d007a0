"""Candidate search for leaked images between two sets of compact fingerprints
(data.pixels.Fingerprints): identical files by digest, and near-duplicate candidates by
thumbnail correlation in chunks, so memory stays bounded (no A × B matrix) at a million images.

The candidates are for an exact pixel test to decide; here recall matters, not precision.
"""
from __future__ import annotations

import numpy as np
import torch

# Thumbnail correlation at or above which a pair is a candidate for the exact test: a margin
# below the lowest score of the copies the exact test accepts on ORL; the other photos that pass
# it are few, and the exact test sorts them out (benchmarks/README.md, leakage_scale.py).
CANDIDATE_CORRELATION = 0.90
# The most candidates of one image the exact test looks at, nearest thumbnail first. Frames of one
# video (or bursts of one camera) make every image of a person a candidate of every other: without
# a cap the exact test's work grows with the square of the frames per person. A copy is nearer
# than the other frames (benchmarks/README.md); the check says how many images had more.
MAX_CANDIDATES = 16


def identical_pairs(digests_a: np.ndarray, digests_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of a, rows of b) with equal file digests, by sorting (no Python object per image)."""
    order = np.argsort(digests_a, kind="stable")
    sorted_a = digests_a[order]
    lo = np.searchsorted(sorted_a, digests_b, side="left")
    hi = np.searchsorted(sorted_a, digests_b, side="right")
    counts = hi - lo
    rows_b = np.repeat(np.arange(len(digests_b)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows_a = order[np.repeat(lo, counts) + offsets]
    return rows_a.astype(np.int64), rows_b.astype(np.int64)


def candidate_pairs(thumbs_a: np.ndarray, thumbs_b: np.ndarray, min_corr: float = CANDIDATE_CORRELATION, *,
                    chunk: int = 4096, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of a, rows of b, correlation) of every pair whose normalised thumbnails correlate at
    least ``min_corr``: an exact search, in float32 blocks of ``chunk`` × ``chunk`` (64 MiB at
    the default), sorted by (a, b). A torch matrix product; ``device`` may be a GPU."""
    out_a, out_b, out_c = [], [], []
    b_all = torch.from_numpy(np.ascontiguousarray(thumbs_b, dtype=np.float32)).to(device)
    for s in range(0, len(thumbs_a), chunk):
        a = torch.from_numpy(np.ascontiguousarray(thumbs_a[s:s + chunk], dtype=np.float32)).to(device)
        for t in range(0, len(b_all), chunk):
            scores = a @ b_all[t:t + chunk].T
            ia, ib = torch.nonzero(scores >= min_corr, as_tuple=True)
            if len(ia):
                out_c.append(scores[ia, ib].cpu().numpy())
                out_a.append(ia.cpu().numpy() + s)
                out_b.append(ib.cpu().numpy() + t)
    if not out_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows_a, rows_b, corr = np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_c)
    order = np.lexsort((rows_b, rows_a))
    return rows_a[order].astype(np.int64), rows_b[order].astype(np.int64), corr[order]


def nearest_candidates(thumbs_a: np.ndarray, thumbs_b: np.ndarray, min_corr: float = CANDIDATE_CORRELATION,
                       k: int = MAX_CANDIDATES, *, chunk: int = 4096, device: str | torch.device = "cpu",
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """candidate_pairs with at most ``k`` candidates per row of b, the nearest first.

    Returns (rows of a, rows of b, correlation, capped): the pairs sorted by (b, a), and the rows
    of b that had more than ``k`` candidates (the ones whose farther candidates were dropped).
    A running top-k over the a chunks keeps memory at ``chunk`` × ``k`` whatever the candidates."""
    a_all = torch.from_numpy(np.ascontiguousarray(thumbs_a, dtype=np.float32)).to(device)
    out_a, out_b, out_c, capped = [], [], [], []
    for t in range(0, len(thumbs_b), chunk):
        b = torch.from_numpy(np.ascontiguousarray(thumbs_b[t:t + chunk], dtype=np.float32)).to(device)
        best_v = torch.empty(len(b), 0, device=device)
        best_i = torch.empty(len(b), 0, dtype=torch.long, device=device)
        over = torch.zeros(len(b), dtype=torch.long, device=device)
        for s in range(0, len(a_all), chunk):
            scores = b @ a_all[s:s + chunk].T
            over += (scores >= min_corr).sum(dim=1)
            v, i = scores.topk(min(k, scores.shape[1]), dim=1)
            best_v, best_i = torch.cat([best_v, v], dim=1), torch.cat([best_i, i + s], dim=1)
            if best_v.shape[1] > k:
                best_v, keep = best_v.topk(k, dim=1)
                best_i = best_i.gather(1, keep)
        rb, col = torch.nonzero(best_v >= min_corr, as_tuple=True)
        out_b.append(rb.cpu().numpy() + t)
        out_a.append(best_i[rb, col].cpu().numpy())
        out_c.append(best_v[rb, col].cpu().numpy())
        capped.append(torch.nonzero(over > k).flatten().cpu().numpy() + t)
    if not out_a:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), empty
    rows_a, rows_b, corr = np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_c)
    order = np.lexsort((rows_a, rows_b))
    return (rows_a[order].astype(np.int64), rows_b[order].astype(np.int64), corr[order],
            np.concatenate(capped).astype(np.int64))
