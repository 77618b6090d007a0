"""One chunked pass over the probe × template scores, split by demographic group.

For the demographic check (protocols.demographics): at a few thresholds, each probe's impostor
pairs scoring at or above each threshold, counted per group of the template (so the FMR of a
group, over pairs with both sides in it, and the cross-group FMR matrix follow by summing over
the probes of each group); each probe's genuine score; and a histogram per group of the impostor
scores with both sides in the group (the per-group DET curves). Scores are computed a block of
probes and a tile of templates at a time (float32 matrix products on the embeddings' device)
and reduced on the spot, as protocols.matching does: memory grows with probes × groups, never
with probes × templates.

Groups are columns: every (attribute, group) pair is one column k, and each probe and each
template names its column per attribute (-1: in no group of that attribute).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CHUNK_CELLS = 1 << 22    # scores per block and tile (16 MB of float32)
MIN_BLOCK = 64           # probes per block at least: a block re-reads every template tile
HIST_BINS = 4096         # equal bins over [-1, 1] (width 4.9e-4): the per-group DET curves


@dataclass(frozen=True, eq=False)
class GroupScores:
    """What the pass counted."""

    thresholds: tuple[float, ...]
    genuine: np.ndarray      # float64 [P]: score against the own template (NaN: not enrolled)
    accepts: np.ndarray      # int32 [T, P, K]: impostor pairs >= each threshold, by the template's column
    histograms: np.ndarray   # int64 [K, HIST_BINS]: impostor scores with probe and template in column k


def group_pass(probes: np.ndarray, templates: np.ndarray, own: np.ndarray, probe_columns: np.ndarray,
               template_columns: np.ndarray, n_columns: int, thresholds, *, device: str | torch.device = "cpu",
               chunk_cells: int = CHUNK_CELLS) -> GroupScores:
    """Count impostor acceptances per group over every probe × template score.

    Parameters
    ----------
    probes : ndarray [P, D]
        L2-normalised probe embeddings.
    templates : ndarray [S, D]
        L2-normalised templates.
    own : ndarray of int [P]
        Each probe's own template (column of ``templates``), -1 when not enrolled.
    probe_columns, template_columns : ndarray of int [P, A] and [S, A]
        Per attribute, the group column (0 .. n_columns - 1) of each probe and template, -1 for none.
    n_columns : int
        Group columns over all attributes.
    thresholds : sequence of float
        Accept when score >= threshold.
    device : str or torch.device
        Where the scores are computed.
    chunk_cells : int
        Scores held at once.

    Returns
    -------
    GroupScores
    """
    thresholds = tuple(float(t) for t in thresholds)
    dev = torch.device(device)
    n_p, n_s = len(probes), len(templates)
    own = np.asarray(own, dtype=np.int64)
    t_all = torch.as_tensor(np.ascontiguousarray(templates, dtype=np.float32), device=dev)
    onehot = torch.zeros(n_s, max(n_columns, 1), dtype=torch.float32, device=dev)
    tc = torch.as_tensor(np.asarray(template_columns, dtype=np.int64).reshape(n_s, -1), device=dev)
    for a in range(tc.shape[1]):
        has = tc[:, a] >= 0
        onehot[has.nonzero(as_tuple=True)[0], tc[has, a]] = 1.0
    pc_all = np.asarray(probe_columns, dtype=np.int64).reshape(n_p, -1)
    accepts = np.zeros((len(thresholds), n_p, n_columns), dtype=np.int32)
    hist = torch.zeros(max(n_columns, 1) * HIST_BINS, dtype=torch.int64, device=dev)
    genuine = np.full(n_p, np.nan)
    block = min(max(n_p, 1), max(MIN_BLOCK, chunk_cells // max(n_s, 1)))
    tile = max(1, chunk_cells // block)
    for a0 in range(0, n_p, block):
        a1 = min(a0 + block, n_p)
        p = torch.as_tensor(np.ascontiguousarray(probes[a0:a1], dtype=np.float32), device=dev)
        own_b = torch.as_tensor(own[a0:a1], device=dev)
        pc = torch.as_tensor(pc_all[a0:a1], device=dev)
        gen = torch.full((a1 - a0,), float("nan"), device=dev)
        counts = torch.zeros(len(thresholds), a1 - a0, max(n_columns, 1), dtype=torch.float64, device=dev)
        for lo in range(0, n_s, tile):
            hi = min(lo + tile, n_s)
            scores = p @ t_all[lo:hi].T
            own_here = torch.where((own_b >= lo) & (own_b < hi), own_b - lo, -1)
            rows = (own_here >= 0).nonzero(as_tuple=True)[0]
            gen[rows] = scores[rows, own_here[rows]]
            for i, t in enumerate(thresholds):  # float32 sums of 0/1 are exact below 2**24 per tile row
                counts[i] += ((scores >= t).to(torch.float32) @ onehot[lo:hi]).double()
            _histogram(hist, scores, pc, tc[lo:hi], own_here)
        accepts[:, a0:a1] = counts[..., :n_columns].round().to(torch.int32).cpu().numpy()
        genuine[a0:a1] = gen.double().cpu().numpy()
    _own_out(accepts, thresholds, genuine, own, np.asarray(template_columns, dtype=np.int64).reshape(n_s, -1))
    return GroupScores(thresholds, genuine, accepts, hist.reshape(-1, HIST_BINS)[:n_columns].cpu().numpy())


def _histogram(hist: torch.Tensor, scores: torch.Tensor, pc: torch.Tensor, tc: torch.Tensor,
               own_here: torch.Tensor) -> None:
    """Add a tile's impostor scores with probe and template in the same group, per group column."""
    bins = ((scores.double() + 1.0) * (HIST_BINS / 2)).floor().clamp_(0, HIST_BINS - 1).long()
    mated = (own_here >= 0).nonzero(as_tuple=True)[0]
    for a in range(pc.shape[1]):
        same = (pc[:, a, None] == tc[None, :, a]) & (pc[:, a, None] >= 0)
        same[mated, own_here[mated]] = False  # the genuine pair is no impostor
        hist += torch.bincount((pc[:, a, None] * HIST_BINS + bins)[same], minlength=hist.numel())


def _own_out(accepts: np.ndarray, thresholds, genuine: np.ndarray, own: np.ndarray, tcols: np.ndarray) -> None:
    """Take each probe's genuine pair out of its own template's group counts (it is no impostor)."""
    mated = np.flatnonzero(own >= 0)
    for i, t in enumerate(thresholds):
        hit = mated[genuine[mated] >= t]
        for a in range(tcols.shape[1]):
            col = tcols[own[hit], a]
            ok = col >= 0
            np.subtract.at(accepts[i], (hit[ok], col[ok]), 1)
