"""One chunked pass over the probe × template scores: every number the gallery protocol needs,
in memory that does not grow with probes × templates.

Scores are computed a block of probes at a time (float32 matrix products, on the CPU or GPU
the embeddings are sent to), a tile of templates at a time when they are many (a block of few
probes would re-read the whole template matrix for each), and reduced on the spot: each probe's genuine score, the rank of
its own template (exact up to RANK_LIMIT, higher ones read "beyond"), its best score and best
rival, its false accepts at each threshold asked for, and the impostor stream
(metrics.streaming): every impostor pair when they are few, else a histogram, the exact top and
a deterministic sample.

Every count ("scores >= x in this row": the rank, the false accepts, the top's candidates) is
read from the row's top-k where its k-th best is below x, and counted over the row otherwise. When
a block's templates fit one tile its genuine scores are known before anything is counted, so the
rank is such a count and the top-k is short (TOP_K: a top-51 costs 2.5x a top-8); over several
tiles the genuine score may sit in a later tile, so the rank comes from the merged top RANK_LIMIT + 1.

The candidate search — each probe's top-k templates, hence its rank (exact to RANK_LIMIT), best
score and best rival — can come from a faiss index instead (``index``, protocols.index): the rank
of the own template is then its place in the index's answer (beyond the list when the index
missed it), as a system searching that index would answer. Everything else keeps coming from this
exact pass, whatever the index: the genuine score of each probe (a dot product with its own
template), and the false accepts and the impostor stream, which need every score and which an
approximate index cannot give. So an index changes rank-k, the CMC and the open-set metrics
(best score), never the verification metrics, and it saves no time here: it shows what a
deployment on that index would identify, with the index's recall against exact search measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from facediag.metrics.identification import MatchSummary
from facediag.metrics.streaming import BINS, SCALE, ImpostorScores, ImpostorStream, bin_edge, bin_index
from facediag.protocols.index import MIN_BLOCK_PROBES, Candidates, merge_top, search

RANK_LIMIT = 50          # the CMC is reported to rank 50; a rank above it is "beyond 50"
TOP_K = 8                # each row's best scores kept per tile when its templates fit one tile
CHUNK_CELLS = 1 << 23    # scores per block (32 MB of float32): bounds the pass's memory
HIST_CELLS = 1 << 19     # scores binned at a time (2 MB of float32): a slice that stays in cache


class _Workspace:
    """Buffers the pass reuses for every block and tile (the scores; the histogram's scaled scores and bins).

    A fresh tensor per block costs the kernel's page faults each time it is touched
    (measured: 660k faults, a third of a 20k x 5k pass), or, once glibc keeps such blocks on its
    heap, a fragmented heap (resident memory grew by 3 GB over a 50k x 10k pass). One buffer of
    each kind, sliced to the block's shape, costs neither."""

    def __init__(self, device: torch.device):
        self.device = device
        self._flat: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        n = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < n or flat.dtype != dtype:
            flat = self._flat[name] = torch.empty(n, dtype=dtype, device=self.device)
        return flat[:n].view(shape)


@dataclass(frozen=True, eq=False)
class Matching:
    """Per probe (rows of the evaluation) and over all impostor pairs."""

    own: np.ndarray              # int [P]: column of the probe's own template, -1 when not enrolled
    genuine: np.ndarray          # float64 [P]: score against the own template (NaN when not enrolled)
    ranks: np.ndarray            # int [P]: templates scoring >= the own one; RANK_LIMIT + 1 = beyond; 0 not enrolled
    top_score: np.ndarray        # float64 [P]: best score over every template
    rival: np.ndarray            # int [P]: best template other than the own one (-1: none)
    rival_score: np.ndarray      # float64 [P]
    impostor_count: np.ndarray   # int [P]: impostor pairs of each probe
    impostor_sum: np.ndarray     # float64 [P]: sum of those scores
    false_accepts: dict          # threshold -> int [P]: impostor pairs scoring >= threshold
    impostors: ImpostorScores
    n_templates: int
    index: dict | None = None    # the candidate search when not "exact": kind, parameters, recall (Candidates.info)

    @property
    def mated(self) -> np.ndarray:
        return self.own >= 0

    @property
    def rank_limit(self) -> int | None:
        return None if self.n_templates <= RANK_LIMIT else RANK_LIMIT

    def summary(self) -> MatchSummary:
        m = self.mated
        return MatchSummary(m, self.genuine[m], self.ranks[m], self.top_score, self.n_templates, self.rank_limit)


def match(probes: np.ndarray, templates: np.ndarray, own: np.ndarray, probe_ids: np.ndarray, *,
          thresholds=(), device: str | torch.device = "cpu", chunk_cells: int = CHUNK_CELLS,
          exact_limit: int | None = None, top_limit: int | None = None, sample_size: int | None = None,
          index: str = "exact") -> Matching:
    """Match L2-normalised probes [P, D] against L2-normalised templates [S, D].

    ``own[i]``: probe i's template column or -1; ``probe_ids``: a stable id per probe (its protocol
    row), which picks the sampled impostor pairs so two models on the same probes sample the same
    pairs. ``index``: where the candidate search comes from (protocols.index.INDEXES)."""
    mt = _exact_pass(probes, templates, own, probe_ids, thresholds=thresholds, device=device,
                     chunk_cells=chunk_cells, exact_limit=exact_limit, top_limit=top_limit, sample_size=sample_size)
    if index == "exact" or not len(probes) or not len(templates):
        return mt
    return with_candidates(mt, search(index, probes, templates, min(len(templates), RANK_LIMIT + 1)))


def with_candidates(mt: Matching, cand: Candidates) -> Matching:
    """The pass's ranks, best scores and rivals as the index's candidates give them (the genuine
    scores stay the pass's exact ones). Ties count against the probe, as in the exact pass."""
    n_t = mt.n_templates
    mated = mt.mated[:, None]
    valid = cand.ids >= 0
    is_own = (cand.ids == mt.own[:, None]) & mated
    found = is_own.any(1)
    above = ((cand.scores >= mt.genuine[:, None]) & valid & ~is_own).sum(1)
    beyond = RANK_LIMIT + 1 if n_t > RANK_LIMIT else n_t
    ranks = np.where(found, np.minimum(above + 1, beyond), beyond)
    ranks = np.where(mt.mated & np.isnan(mt.genuine), n_t, ranks)
    ranks = np.where(mt.mated, ranks, 0)
    not_own = valid & ~is_own
    first = not_own.argmax(1)
    has_rival = not_own.any(1)
    rows = np.arange(len(first))
    return replace(mt, ranks=ranks.astype(np.int64), top_score=cand.scores[:, 0].astype(np.float64),
                   rival=np.where(has_rival, cand.ids[rows, first], -1).astype(np.int64),
                   rival_score=np.where(has_rival, cand.scores[rows, first], -np.inf).astype(np.float64),
                   index=cand.info())


def _exact_pass(probes: np.ndarray, templates: np.ndarray, own: np.ndarray, probe_ids: np.ndarray, *,
                thresholds, device, chunk_cells, exact_limit, top_limit, sample_size) -> Matching:
    n_p, n_t = len(probes), len(templates)
    own = np.asarray(own, np.int64)
    mated = own >= 0
    n_imp = n_p * n_t - int(mated.sum())
    limits = {k: v for k, v in (("exact_limit", exact_limit), ("top_limit", top_limit), ("sample_size", sample_size))
              if v is not None}
    stream = ImpostorStream(n_imp, **limits)
    thresholds = tuple(float(t) for t in dict.fromkeys(thresholds))
    out = {name: [] for name in ("genuine", "ranks", "top", "rival", "rival_score", "imp_sum", *thresholds)}
    dev = torch.device(device)
    work = _Workspace(dev)
    tmpl = torch.as_tensor(np.ascontiguousarray(templates, dtype=np.float32), device=dev)
    n_sample = 0 if stream.exact else max(1, int(np.ceil(stream.keep * n_t)))  # sampled columns per probe
    if not stream.exact:  # each probe's sum of scores without the scores: Σ_t p·t = p·Σt
        t_sum = tmpl.sum(0)
    step = max(1, chunk_cells // max(n_t, 1))
    width = n_t  # exact: at most about chunk_cells pairs in all, one tile
    if not stream.exact:  # a block re-reads every template: at least MIN_BLOCK_PROBES probes, templates in tiles
        step = max(step, min(MIN_BLOCK_PROBES, chunk_cells))
        width = -(-n_t // -(-n_t // max(1, chunk_cells // step)))  # tiles of even width, none a sliver
    one_tile = width >= n_t
    k = min(n_t, TOP_K if one_tile else RANK_LIMIT + 1)
    for a in range(0, n_p, step):
        b = min(a + step, n_p)
        p = torch.as_tensor(np.ascontiguousarray(probes[a:b], dtype=np.float32), device=dev)
        r = torch.arange(b - a, device=dev)
        own_c = torch.as_tensor(own[a:b], device=dev)
        mated_c = own_c >= 0
        ids = probe_ids[a:b]
        genuine = torch.full((b - a,), float("nan"), device=dev)
        accepts = {t: torch.zeros(b - a, dtype=torch.long, device=dev) for t in thresholds}
        vals = idx = above = None
        if not stream.exact:
            sample_cols = _sample_columns(ids, n_t, n_sample, dev)
            sampled = torch.empty(sample_cols.shape, device=dev)
            squares = torch.zeros(b - a, dtype=torch.float64, device=dev)
        for lo in range(0, n_t, width):  # tile by tile; counts and sums add up, the top-k merges
            hi = min(lo + width, n_t)
            scores = torch.matmul(p, tmpl[lo:hi].T, out=work.take("scores", (b - a, hi - lo), torch.float32))
            own_t = torch.where(mated_c & (own_c >= lo) & (own_c < hi), own_c - lo, -1)  # -1: not in this tile
            genuine = torch.where(own_t >= 0, scores[r, own_t.clamp(min=0)], genuine)
            tile_vals, tile_idx = scores.topk(min(k, hi - lo), dim=1)  # sorted, descending
            partial = tile_vals.shape[1] < hi - lo
            if one_tile:  # templates scoring >= the genuine score (+inf, so none, where there is none)
                known = mated_c & ~torch.isnan(genuine)
                above = _count_at_least(scores, tile_vals, torch.where(known, genuine, np.inf)[:, None], partial)
            for t in thresholds:
                accepts[t] += _count_at_least(scores, tile_vals, t, partial)
            if stream.exact:
                impostor = torch.ones_like(scores, dtype=torch.bool)
                impostor[r[mated_c], own_c[mated_c]] = False
                rows, cols = impostor.nonzero(as_tuple=True)
                vals_imp = scores[impostor].double()
                stream.add_exact(vals_imp.cpu().numpy(), ids[rows.cpu().numpy()], cols.cpu().numpy())
                out["imp_sum"].append(torch.zeros(b - a, dtype=torch.float64, device=dev).index_add_(0, rows, vals_imp))
            else:
                here = (sample_cols >= lo) & (sample_cols < hi)
                sampled = torch.where(here, scores.gather(1, (sample_cols - lo).clamp(0, hi - lo - 1)), sampled)
                squares += torch.linalg.vector_norm(scores, dim=1).double() ** 2
                counts = _histogram(scores, work)
                if stream.floor == -np.inf and partial:
                    stream.raise_floor(_provisional_floor(counts, int((own_t >= 0).sum()), stream.top_limit))
                _offer_top(stream, scores, tile_vals, tile_idx, own_t, ids, partial, lo)
                stream.add_histogram(counts)
            vals, idx = merge_top(vals, idx, tile_vals, tile_idx + lo, k)
        if not one_tile:  # from the merged top RANK_LIMIT + 1: its last still >= genuine means beyond
            above = (vals >= genuine[:, None]).sum(1)
            if k < n_t:
                above = torch.where(vals[:, -1] >= genuine, torch.full_like(above, RANK_LIMIT + 1), above)
        ranks = above.clamp(max=RANK_LIMIT + 1)
        ranks = torch.where(mated_c & torch.isnan(genuine), torch.full_like(ranks, n_t), ranks)
        ranks = torch.where(mated_c, ranks, torch.zeros_like(ranks))
        not_own = idx != own_c[:, None]
        first = not_own.to(torch.int8).argmax(1)                      # own is in the top at most once
        has_rival = not_own.any(1)
        # Of the templates tied at the rival's score, the lowest column: topk orders ties as it
        # likes, so the rival is then the same whatever the top-k's length and the tiles.
        tied = not_own & (vals == vals[r, first][:, None])
        tied[r, first] = True
        rival = torch.where(tied, idx, n_t).min(1).values
        out["rival"].append(torch.where(has_rival, rival, torch.full_like(rival, -1)))
        out["rival_score"].append(torch.where(has_rival, vals[r, first], torch.full_like(vals[:, 0], -np.inf)))
        out["genuine"].append(genuine)
        out["ranks"].append(ranks)
        out["top"].append(vals[:, 0])
        for t in thresholds:
            out[t].append(accepts[t] - (mated_c & (genuine >= t)).long())
        if not stream.exact:
            g0 = torch.where(mated_c, genuine, torch.zeros_like(genuine)).double()
            row_sum = (p @ t_sum).double() - g0
            total_sq = float(squares.sum() - (g0 ** 2).sum())
            out["imp_sum"].append(row_sum)
            stream.add_moments(int((b - a) * n_t - mated_c.sum()), float(row_sum.sum()), total_sq)
            stream.add_histogram(-np.bincount(bin_index(genuine[mated_c].cpu().numpy()), minlength=BINS))
            keep = sample_cols != own_c[:, None]
            rows = r[:, None].expand_as(sample_cols)[keep]
            stream.add_sample(sampled[keep].double().cpu().numpy(), ids[rows.cpu().numpy()],
                              sample_cols[keep].cpu().numpy())
    cat = {name: torch.cat(v).cpu().numpy() if v else np.zeros(0) for name, v in out.items()}
    imp_count = np.where(mated, n_t - 1, n_t).astype(np.int64)
    return Matching(own=own, genuine=cat["genuine"].astype(np.float64), ranks=cat["ranks"].astype(np.int64),
                    top_score=cat["top"].astype(np.float64), rival=cat["rival"].astype(np.int64),
                    rival_score=cat["rival_score"].astype(np.float64), impostor_count=imp_count,
                    impostor_sum=cat["imp_sum"].astype(np.float64),
                    false_accepts={t: cat[t].astype(np.int64) for t in thresholds},
                    impostors=stream.result(), n_templates=n_t)


def _count_at_least(scores, vals, threshold, partial: bool):
    """Scores >= threshold per row of a tile, from the row's top-k (``vals``) where its k-th best
    is below the threshold (every such score is then in the top-k), else counted over the row.
    ``threshold``: a float, or a column [rows, 1], one per row."""
    counts = (vals >= threshold).sum(1)
    if partial:
        full = (~(vals[:, -1:] < threshold)).squeeze(1).nonzero(as_tuple=True)[0]  # NaN counts in full too
        if 2 * len(full) > len(counts):  # most rows: one pass over the tile costs less than gathering them
            return _row_counts(scores, threshold)
        if len(full):
            counts[full] = _row_counts(scores, threshold, full)
    return counts


def _row_counts(scores, threshold, rows=None):
    """Cells >= threshold in each row of a tile (or in its ``rows``), as int64, HIST_CELLS cells
    at a time, so the comparison's mask is summed while in cache (measured: 3.5 ms against 5.9 ms
    a 1,677 x 5,000 tile). The mask is summed as bytes into int32 (exact: a row has fewer than
    2**31 cells): torch sums a bool tile into int64 about 10x slower (37 ms against 3 ms a
    1,677 x 5,000 tile on 2 cores), as long as the matrix product."""
    n = len(scores) if rows is None else len(rows)
    step = max(1, HIST_CELLS // max(scores.shape[1], 1))
    out = torch.empty(n, dtype=torch.int32, device=scores.device)
    for a in range(0, n, step):
        part = slice(a, a + step) if rows is None else rows[a:a + step]
        t = threshold[part] if torch.is_tensor(threshold) else threshold
        out[a:a + step] = (scores[part] >= t).view(torch.uint8).sum(1, dtype=torch.int32)
    return out.long()


def _histogram(scores, work: _Workspace) -> np.ndarray:
    """Counts per bin (metrics.streaming.bin_index) of a tile of scores. floor(s · 2**15) + 2**15
    is an exact integer in float32, so the bins are exactly bin_index's; torch counts int32 bins
    about 2.5x faster than int64 and than numpy. A slice of HIST_CELLS at a time: its five passes
    (scale, floor, shift, to int, clamp) then read a slice still in cache, not the 32 MB tile
    from memory each time (measured: 8.5 ms against 14 ms a 1,677 x 5,000 tile)."""
    flat = scores.reshape(-1)
    counts = torch.zeros(BINS, dtype=torch.int64, device=scores.device)
    for a in range(0, flat.numel(), HIST_CELLS):
        part = flat[a:a + HIST_CELLS]
        n = part.numel()
        binned = torch.mul(part, SCALE, out=work.take("binned", (n,), part.dtype)).floor_().add_(SCALE)
        bins = work.take("bins", (n,), torch.int32).copy_(binned).clamp_(0, BINS - 1)
        # One core: split over Python threads it counted 2x faster, but the pass grew by a fifth
        # (torch's own threads then wait for a core in the matrix products that follow).
        counts += torch.bincount(bins, minlength=BINS)
    return counts.cpu().numpy()


def _sample_columns(ids: np.ndarray, n_t: int, n_cols: int, device) -> torch.Tensor:
    """The sampled template columns of each probe [n, n_cols]: a pseudo-random walk seeded by the
    probe's id (the same for every model); the own template is left out by the caller."""
    h = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
    start, stride = h % np.uint64(n_t), (h // np.uint64(n_t)) % np.uint64(max(n_t - 1, 1)) + np.uint64(1)
    cols = (start[:, None] + np.arange(n_cols, dtype=np.uint64)[None, :] * stride[:, None]) % np.uint64(n_t)
    return torch.as_tensor(cols.astype(np.int64), device=device)


def _provisional_floor(counts: np.ndarray, n_own: int, top_limit: int) -> float:
    """A score at least top_limit impostor scores of a tile reach, so that no lower one can be in
    the final top, from the tile's histogram (``counts``, own cells included): the highest bin
    edge with top_limit + n_own scores at or above it (at most n_own of them are genuine); -inf
    when the tile holds fewer (bin 0 also holds NaN and scores below -1: never an edge here)."""
    at_least = np.cumsum(counts[::-1])[::-1]  # at_least[i]: scores in bins >= i
    i = int(np.searchsorted(-at_least, -(top_limit + n_own), side="right")) - 1
    return float(bin_edge(i)) if i >= 1 else -np.inf


def _offer_top(stream: ImpostorStream, scores, vals, idx, own_c, ids: np.ndarray, partial: bool,
               col0: int = 0) -> None:
    """Impostor scores at or above the kept top's floor, in a tile of template columns starting at
    col0 (own_c, idx: columns in the tile). A row's top-k has them all unless its k-th
    best is itself above the floor: only such rows are scanned in full."""
    floor = stream.floor
    not_own = idx != own_c[:, None]
    full_rows = (vals[:, -1] >= floor).nonzero(as_tuple=True)[0] if partial else torch.zeros(0, dtype=torch.long)
    in_top = not_own & (vals >= floor)
    if len(full_rows):
        in_top[full_rows] = False
    rows, pos = in_top.nonzero(as_tuple=True)
    parts = [(vals[rows, pos], rows, idx[rows, pos])]
    if len(full_rows):
        sub = scores[full_rows]
        hit = sub >= floor
        own_sub = own_c[full_rows]
        hit[torch.arange(len(full_rows), device=sub.device)[own_sub >= 0], own_sub[own_sub >= 0]] = False
        rr, cc = hit.nonzero(as_tuple=True)
        parts.append((sub[rr, cc], full_rows[rr], cc))
    for v, rr, cc in parts:
        if len(v):
            stream.offer_top(v.double().cpu().numpy(), ids[rr.cpu().numpy()], cc.cpu().numpy() + col0)
