"""Closed-set retrieval over a gallery with several images per identity and distractors: the
CMC at ranks and the mean average precision, streamed over chunks of gallery columns.

The TinyFace protocol (bench/tinyface.py) ranks a gallery of ~158k images (a few mates per
probe, the rest distractors that belong to nobody) for each of ~3.7k probes. The full score
matrix would be 2.3 GB of float32; this pass holds one chunk of it. Each probe's mates are
known from the identities, so their scores are read first (one dot product each), and then one
pass over the gallery counts, for every mate, the non-mates scoring at least as high. That
count fixes the mate's position in the probe's ranked list, and every number here follows
from the positions:

* position of the i-th best mate (i = 1..n) = i + non-mates scoring >= its score. Ties count
  against the probe (a non-mate tied with a mate is ranked before it), as everywhere in
  facediag (metrics.identification), so equal scores can never look like a hit.
* rank of a probe = position of its best mate; CMC(k) = share of the probes with a mate in the
  gallery whose rank is <= k (closed set: probes whose identity is absent are left out, as
  AdaFace's DIR_FAR does, and counted apart).
* average precision as the TinyFace release's evaluation (compute_AP, the Market-1501 form):
  the trapezoid rule over recall, AP = (1/n) * sum_i (P(r_i - 1) + P(r_i)) / 2 with r_i the
  position of the i-th mate, P(r) = mates among the first r / r and P(0) = 1. The release's
  MATLAB version counts a mate only within the first 1000 positions (its CMC array is 1000
  long); ``ap_first_1000`` is that figure, ``ap`` counts every mate (its Python version).

Gallery identities below 0 belong to nobody (TinyFace labels its distractors -100).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

RANKS = (1, 5, 10, 20)
CHUNK_CELLS = 1 << 23      # scores per chunk (32 MB of float32): the pass's memory beyond its inputs
MATLAB_POSITIONS = 1000    # the TinyFace release's MATLAB compute_AP counts mates within these positions


@dataclass(frozen=True, eq=False)
class Retrieval:
    """Where every mate of every probe sits in the probe's ranked gallery."""

    probe_ids: np.ndarray      # int64 [P]
    n_mates: np.ndarray        # int64 [P]: gallery images of the probe's identity (0: not in the gallery)
    positions: np.ndarray      # int64 [P, M]: 1-based position of the i-th best mate; 0 past n_mates
    mate_scores: np.ndarray    # float64 [P, M]: the mates' scores, best first; NaN past n_mates
    n_gallery: int

    @property
    def mated(self) -> np.ndarray:
        """Probes whose identity has at least one gallery image (the closed set)."""
        return self.n_mates > 0

    @property
    def ranks(self) -> np.ndarray:
        """int64 [P]: position of the best mate (1 = first); 0 for a probe without a mate."""
        return self.positions[:, 0] if self.positions.shape[1] else np.zeros(len(self.n_mates), np.int64)

    @property
    def genuine(self) -> np.ndarray:
        """float64 [P]: the best mate's score; NaN for a probe without a mate."""
        return self.mate_scores[:, 0] if self.mate_scores.shape[1] else np.full(len(self.n_mates), np.nan)

    def cmc(self, ranks: Sequence[int] = RANKS) -> dict[int, float | None]:
        """{k: share of mated probes ranked <= k}; None for every k when no probe is mated."""
        m = self.mated
        if not m.any():
            return {int(k): None for k in ranks}
        r = self.ranks[m]
        return {int(k): float(np.mean(r <= k)) for k in ranks}

    def average_precision(self, first: int | None = None) -> np.ndarray:
        """float64 [P]: each probe's AP (module docstring); NaN without a mate. ``first``: count only
        mates within that many positions (the MATLAB release: MATLAB_POSITIONS)."""
        m = self.positions.shape[1]
        i = np.arange(1, m + 1, dtype=np.float64)[None, :]
        r = self.positions.astype(np.float64)
        valid = self.positions > 0
        if first is not None:
            valid &= self.positions <= first
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = i / r
            before = np.where(r > 1, (i - 1) / (r - 1), 1.0)
            terms = np.where(valid, (before + precision) / 2, 0.0)
            ap = terms.sum(axis=1) / self.n_mates
        return np.where(self.mated, ap, np.nan)

    def mean_ap(self, first: int | None = None) -> float | None:
        """Mean AP over the mated probes; None when no probe is mated."""
        ap = self.average_precision(first)[self.mated]
        return float(ap.mean()) if ap.size else None


class _Mates:
    """Each probe's mate columns, as a padded matrix [P, M] (-1 past its count) and as flat
    (probe, slot, column) triples sorted by column, so a chunk finds its own with a search."""

    def __init__(self, probe_ids: np.ndarray, gallery_ids: np.ndarray):
        owned = np.flatnonzero(gallery_ids >= 0)
        order = owned[np.argsort(gallery_ids[owned], kind="stable")]  # gallery columns grouped by identity
        sorted_ids = gallery_ids[order]
        start = np.searchsorted(sorted_ids, probe_ids, side="left")
        stop = np.searchsorted(sorted_ids, probe_ids, side="right")
        self.count = (stop - start).astype(np.int64)
        self.width = int(self.count.max()) if len(self.count) else 0
        slot = np.arange(self.width)[None, :]
        inside = slot < self.count[:, None]
        at = np.minimum(start[:, None] + slot, max(len(order) - 1, 0))
        self.cols = np.where(inside, order[at] if len(order) else -1, -1).astype(np.int64)
        probe, slot_of = np.nonzero(inside)
        col = self.cols[probe, slot_of]
        by_col = np.argsort(col, kind="stable")
        self.flat_probe, self.flat_slot, self.flat_col = probe[by_col], slot_of[by_col], col[by_col]

    def in_chunk(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = np.searchsorted(self.flat_col, [lo, hi], side="left")
        return self.flat_probe[a:b], self.flat_slot[a:b], self.flat_col[a:b]


def _check_ids(probe_ids, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    probe_ids = np.asarray(probe_ids).astype(np.int64).ravel()
    gallery_ids = np.asarray(gallery_ids).astype(np.int64).ravel()
    if (probe_ids < 0).any():
        raise ValueError("probe identities must be >= 0 (a negative gallery identity means 'nobody')")
    return probe_ids, gallery_ids


def _best_first(mate_scores: np.ndarray) -> np.ndarray:
    """Each row's mate scores sorted best first, NaN padding last."""
    order = np.argsort(np.where(np.isnan(mate_scores), np.inf, -mate_scores), axis=1, kind="stable")
    return np.take_along_axis(mate_scores, order, axis=1)


def _positions(mates: _Mates, sorted_scores: np.ndarray, n_gallery: int,
               chunk_scores: Callable[[int, int], torch.Tensor], chunk: int, device: torch.device) -> np.ndarray:
    """The streamed pass: non-mates scoring >= each mate's score (``sorted_scores``: best first),
    counted chunk by chunk, then the mates' positions (int64 [P, M])."""
    n_probes, width = sorted_scores.shape
    if width == 0:
        return np.zeros((n_probes, 0), np.int64)
    thresholds = torch.as_tensor(np.where(np.isnan(sorted_scores), np.inf, sorted_scores), dtype=torch.float32,
                                 device=device)
    counts = torch.zeros((n_probes, width), dtype=torch.int64, device=device)
    # the probes holding a k-th mate, per k (k = 0: every mated probe)
    rows = [torch.as_tensor(np.flatnonzero(mates.count > k), device=device) for k in range(width)]
    everyone = len(rows[0]) == n_probes
    for lo in range(0, n_gallery, chunk):
        hi = min(lo + chunk, n_gallery)
        scores = chunk_scores(lo, hi)
        probe, _, col = mates.in_chunk(lo, hi)
        if len(probe):  # a mate is never counted against its probe's other mates
            scores[torch.as_tensor(probe, device=device), torch.as_tensor(col - lo, device=device)] = -torch.inf
        for k, r in enumerate(rows):
            if not len(r):
                break
            part = scores if (k == 0 and everyone) else scores.index_select(0, r)
            # a byte mask summed into int32 (exact: a chunk row has < 2**31 cells), far faster than bool -> int64
            above = (part >= thresholds[r, k:k + 1]).view(torch.uint8).sum(1, dtype=torch.int32)
            counts[r, k] += above.long()
    counts = counts.cpu().numpy()
    return np.where(np.isfinite(sorted_scores), np.arange(1, width + 1)[None, :] + counts, 0).astype(np.int64)


def _mate_scores(mates: _Mates, n_gallery: int, chunk_scores, chunk: int, device: torch.device) -> np.ndarray:
    """float64 [P, M]: each mate's score (NaN padding), read from the very chunk scores the
    counting pass compares against, so a non-mate tied with a mate is tied in both. Only the
    chunks that hold a mate are scored (TinyFace's are all in Gallery_Match, the first 3 %)."""
    out = np.full(mates.cols.shape, np.nan)
    for lo in np.unique(mates.flat_col // chunk) * chunk:
        lo = int(lo)
        hi = min(lo + chunk, n_gallery)
        probe, slot, col = mates.in_chunk(lo, hi)
        scores = chunk_scores(lo, hi)
        out[probe, slot] = scores[torch.as_tensor(probe, device=device),
                                  torch.as_tensor(col - lo, device=device)].double().cpu().numpy()
    return out


def _run(probe_ids, mates: _Mates, n_gallery: int, chunk_scores, chunk: int, device: torch.device) -> Retrieval:
    sorted_scores = _best_first(_mate_scores(mates, n_gallery, chunk_scores, chunk, device))
    positions = _positions(mates, sorted_scores, n_gallery, chunk_scores, chunk, device)
    return Retrieval(probe_ids=probe_ids, n_mates=mates.count, positions=positions,
                     mate_scores=sorted_scores.astype(np.float64), n_gallery=int(n_gallery))


def _chunk_width(n_probes: int, chunk_cells: int) -> int:
    return max(1, chunk_cells // max(n_probes, 1))


def retrieve(features, probe_rows, probe_ids, gallery_rows, gallery_ids, *, device: str | torch.device = "cpu",
             chunk_cells: int = CHUNK_CELLS) -> Retrieval:
    """Rank the gallery for every probe by inner product, a chunk of gallery columns at a time.

    Parameters
    ----------
    features : numpy.ndarray or torch.Tensor
        float32 [N, D] L2-normalised embeddings, probes' and gallery's rows of one table (read,
        never copied whole: a chunk of gallery rows is gathered at a time).
    probe_rows, gallery_rows : array_like of int
        Rows of ``features`` that are the probes [P] and the gallery [G], in protocol order.
    probe_ids : array_like of int
        Identity of each probe (>= 0).
    gallery_ids : array_like of int
        Identity of each gallery image; below 0: a distractor, nobody's mate.
    device : str or torch.device
        Where the scores are computed.
    chunk_cells : int
        Probe × gallery scores held at a time.

    Returns
    -------
    Retrieval
        The mates' positions and scores; ``cmc()`` and ``mean_ap()`` read the protocol's numbers.
    """
    probe_ids, gallery_ids = _check_ids(probe_ids, gallery_ids)
    probe_rows = np.asarray(probe_rows, np.int64).ravel()
    gallery_rows = np.asarray(gallery_rows, np.int64).ravel()
    if len(probe_rows) != len(probe_ids) or len(gallery_rows) != len(gallery_ids):
        raise ValueError(f"{len(probe_rows)} probe rows for {len(probe_ids)} identities, "
                         f"{len(gallery_rows)} gallery rows for {len(gallery_ids)}")
    device = torch.device(device)
    table = torch.as_tensor(features)
    if table.dtype != torch.float32:
        raise ValueError(f"features must be float32, not {table.dtype}")
    table = table.to(device)
    probes = table.index_select(0, torch.as_tensor(probe_rows, device=device))
    grows = torch.as_tensor(gallery_rows, device=device)
    mates = _Mates(probe_ids, gallery_ids)
    buffer = torch.empty(0, dtype=torch.float32, device=device)

    def chunk_scores(lo: int, hi: int) -> torch.Tensor:
        nonlocal buffer
        n = len(probes) * (hi - lo)
        if buffer.numel() < n:  # one buffer for every chunk: no fresh 32 MB block (and its page faults) each time
            buffer = torch.empty(n, dtype=torch.float32, device=device)
        out = buffer[:n].view(len(probes), hi - lo)
        return torch.matmul(probes, table.index_select(0, grows[lo:hi]).T, out=out)

    return _run(probe_ids, mates, len(gallery_rows), chunk_scores, _chunk_width(len(probes), chunk_cells), device)


def retrieve_scores(scores, probe_ids, gallery_ids, *, chunk: int | None = None) -> Retrieval:
    """The same pass over a given score matrix [P, G] (higher = more alike), ``chunk`` columns at a
    time (default: all): for known-answer tests and for scores made elsewhere. Scores must be finite."""
    probe_ids, gallery_ids = _check_ids(probe_ids, gallery_ids)
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    if s.dim() != 2 or s.shape != (len(probe_ids), len(gallery_ids)):
        raise ValueError(f"scores {tuple(s.shape)} do not match {len(probe_ids)} probes x {len(gallery_ids)} gallery")
    if not torch.isfinite(s).all():
        raise ValueError("scores must be finite")
    mates = _Mates(probe_ids, gallery_ids)
    return _run(probe_ids, mates, s.shape[1], lambda lo, hi: s[:, lo:hi].clone(), chunk or max(1, s.shape[1]),
                torch.device("cpu"))


__all__ = ["CHUNK_CELLS", "MATLAB_POSITIONS", "RANKS", "Retrieval", "retrieve", "retrieve_scores"]
