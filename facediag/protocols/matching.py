"""One chunked pass over the probe × template scores: every number the gallery protocol needs,
in memory that does not grow with probes × templates.

Scores are computed a block of probes at a time (float32 matrix products, on the CPU or GPU
the embeddings are sent to), a tile of templates at a time when they are many (a block of few
probes would re-read the whole template matrix for each), and reduced on the spot: each probe's
genuine score, the rank of its own template (exact up to RANK_LIMIT, higher ones read "beyond"), its best score and best
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
from facediag.metrics.streaming import BINS, SCALE, ImpostorScores, ImpostorStream, bin_counts, bin_edge
from facediag.protocols.index import MIN_BLOCK_PROBES, Candidates, merge_top, search

RANK_LIMIT = 50          # the CMC is reported to rank 50; a rank above it is "beyond 50"
TOP_K = 8                # each row's best scores kept per tile when its templates fit one tile
CHUNK_CELLS = 1 << 23    # scores per block (32 MB of float32): bounds the pass's memory
HIST_CELLS = 1 << 19     # scores binned at a time (2 MB of float32): a slice that stays in cache


class _Workspace:
    """Buffers the pass reuses for every block and tile (the scores; the histogram's scaled scores and bins).

    A fresh tensor per block costs the kernel's page faults each time it is touched, or, once
    glibc keeps such blocks on its heap, a fragmented heap (benchmarks/README.md, scale.py). One
    buffer of each kind, sliced to the block's shape, costs neither."""

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
    beyond = RANK_LIMIT + 1 if n_t > RANK_LIMIT else n_t  # not in the candidates
    ranks = _ranks(np.where(found, above + 1, beyond), mt.mated, mt.genuine, n_t)
    not_own = valid & ~is_own
    first = not_own.argmax(1)
    has_rival = not_own.any(1)
    rows = np.arange(len(first))
    return replace(mt, ranks=ranks, top_score=cand.scores[:, 0].astype(np.float64),
                   rival=np.where(has_rival, cand.ids[rows, first], -1).astype(np.int64),
                   rival_score=np.where(has_rival, cand.scores[rows, first], -np.inf).astype(np.float64),
                   index=cand.info())


def _ranks(at_least: np.ndarray, mated: np.ndarray, genuine: np.ndarray, n_templates: int) -> np.ndarray:
    """Each probe's rank from the templates scoring at least its genuine score (its own one
    included): at most RANK_LIMIT + 1 ("beyond"), every template where the genuine score is NaN
    (it matches nothing), 0 for a probe not enrolled."""
    ranks = np.minimum(at_least, RANK_LIMIT + 1)
    ranks = np.where(mated & np.isnan(genuine), n_templates, ranks)
    return np.where(mated, ranks, 0).astype(np.int64)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class _Shape:
    """How the pass cuts the probes × templates scores: blocks of probes, tiles of templates."""

    block: int         # probes per block
    tile: int          # templates per tile
    one_tile: bool     # every template in one tile: a block's genuine scores are known before counting
    top_k: int         # best scores kept per row (merged across tiles)
    sampled: int       # impostor columns sampled per probe; 0 when every pair is kept

    @classmethod
    def of(cls, n_templates: int, chunk_cells: int, stream: ImpostorStream) -> _Shape:
        """Every pair kept: about chunk_cells pairs in all, so a block is one tile. Summarised: a
        block re-reads every template, so it holds at least MIN_BLOCK_PROBES probes and the
        templates come in tiles of about chunk_cells scores, of even width (none a sliver)."""
        block = max(1, chunk_cells // max(n_templates, 1))
        tile = n_templates
        if not stream.exact:
            block = max(block, min(MIN_BLOCK_PROBES, chunk_cells))
            n_tiles = _ceil_div(n_templates, max(1, chunk_cells // block))
            tile = _ceil_div(n_templates, n_tiles)
        one_tile = tile >= n_templates
        top_k = min(n_templates, TOP_K if one_tile else RANK_LIMIT + 1)
        sampled = 0 if stream.exact else max(1, math.ceil(stream.keep * n_templates))
        return cls(block, tile, one_tile, top_k, sampled)


class _Block:
    """One block of probes (rows a:b) and what its tiles add up to."""

    def __init__(self, probes: np.ndarray, own: np.ndarray, probe_ids: np.ndarray, a: int, b: int,
                 thresholds: tuple[float, ...], device: torch.device):
        self.n = b - a
        self.p = torch.as_tensor(np.ascontiguousarray(probes[a:b], dtype=np.float32), device=device)
        self.rows = torch.arange(self.n, device=device)
        self.own = torch.as_tensor(own[a:b], device=device)
        self.mated = self.own >= 0
        self.ids = probe_ids[a:b]
        self.genuine = torch.full((self.n,), float("nan"), device=device)
        self.accepts = {t: torch.zeros(self.n, dtype=torch.long, device=device) for t in thresholds}
        self.at_least = None          # templates scoring >= the genuine score
        self.vals = self.idx = None   # the merged top-k: scores, template columns
        # Summarised only: the sampled columns and their scores, and the sum of squared scores.
        self.sample_cols = self.sampled = self.squares = None

    def start_sample(self, n_templates: int, n_sampled: int) -> None:
        device = self.p.device
        self.sample_cols = _sample_columns(self.ids, n_templates, n_sampled, device)
        self.sampled = torch.empty(self.sample_cols.shape, device=device)
        self.squares = torch.zeros(self.n, dtype=torch.float64, device=device)


class _ExactPass:
    """The chunked pass of :func:`match` over every probe × template score (module docstring)."""

    def __init__(self, templates: np.ndarray, own: np.ndarray, probe_ids: np.ndarray, thresholds,
                 device, chunk_cells: int, stream: ImpostorStream):
        self.device = torch.device(device)
        self.work = _Workspace(self.device)
        self.templates = torch.as_tensor(np.ascontiguousarray(templates, dtype=np.float32), device=self.device)
        self.n_templates = len(templates)
        self.own, self.probe_ids, self.thresholds, self.stream = own, probe_ids, thresholds, stream
        self.shape = _Shape.of(self.n_templates, chunk_cells, stream)
        # Summarised: each probe's sum of scores without the scores, Σ_t p·t = p·Σ_t t.
        self.template_sum = None if stream.exact else self.templates.sum(0)
        self.out = {name: [] for name in ("genuine", "at_least", "top", "rival", "rival_score", "imp_sum",
                                          *thresholds)}

    def run(self, probes: np.ndarray) -> dict:
        """Per-probe columns (numpy) of every block, by name."""
        for a in range(0, len(probes), self.shape.block):
            block = _Block(probes, self.own, self.probe_ids, a, min(a + self.shape.block, len(probes)),
                           self.thresholds, self.device)
            if not self.stream.exact:
                block.start_sample(self.n_templates, self.shape.sampled)
            for lo in range(0, self.n_templates, self.shape.tile):  # counts and sums add up, the top-k merges
                self.tile(block, lo, min(lo + self.shape.tile, self.n_templates))
            self.finish(block)
        return {name: torch.cat(v).cpu().numpy() if v else np.zeros(0) for name, v in self.out.items()}

    def tile(self, block: _Block, lo: int, hi: int) -> None:
        """Scores of the block against templates lo:hi, reduced on the spot."""
        k = self.shape.top_k
        scores = torch.matmul(block.p, self.templates[lo:hi].T,
                              out=self.work.take("scores", (block.n, hi - lo), torch.float32))
        own_here = torch.where(block.mated & (block.own >= lo) & (block.own < hi), block.own - lo, -1)  # -1: elsewhere
        block.genuine = torch.where(own_here >= 0, scores[block.rows, own_here.clamp(min=0)], block.genuine)
        top_vals, top_idx = scores.topk(min(k, hi - lo), dim=1)  # sorted, descending
        partial = top_vals.shape[1] < hi - lo  # the top-k is not the whole row
        if self.shape.one_tile:  # the genuine score is known (+inf, so none counted, where there is none)
            known = block.mated & ~torch.isnan(block.genuine)
            genuine_or_inf = torch.where(known, block.genuine, np.inf)[:, None]
            block.at_least = _count_at_least(scores, top_vals, genuine_or_inf, partial)
        for t in self.thresholds:
            block.accepts[t] += _count_at_least(scores, top_vals, t, partial)
        if self.stream.exact:
            self.keep_impostors(block, scores)
        else:
            self.summarise_impostors(block, scores, top_vals, top_idx, own_here, partial, lo)
        block.vals, block.idx = merge_top(block.vals, block.idx, top_vals, top_idx + lo, k)

    def keep_impostors(self, block: _Block, scores: torch.Tensor) -> None:
        """Every impostor pair to the stream (every pair kept: one tile, so columns are templates)."""
        impostor = torch.ones_like(scores, dtype=torch.bool)
        impostor[block.rows[block.mated], block.own[block.mated]] = False
        rows, cols = impostor.nonzero(as_tuple=True)
        values = scores[impostor].double()
        self.stream.add_exact(values.cpu().numpy(), block.ids[rows.cpu().numpy()], cols.cpu().numpy())
        per_probe = torch.zeros(block.n, dtype=torch.float64, device=self.device).index_add_(0, rows, values)
        self.out["imp_sum"].append(per_probe)

    def summarise_impostors(self, block: _Block, scores, top_vals, top_idx, own_here, partial: bool,
                            lo: int) -> None:
        """A tile's share of the summary: sampled scores, squares, histogram (genuine cells
        included, taken out in :meth:`finish`) and candidates for the kept top."""
        stream, hi = self.stream, lo + scores.shape[1]
        here = (block.sample_cols >= lo) & (block.sample_cols < hi)
        picked = scores.gather(1, (block.sample_cols - lo).clamp(0, hi - lo - 1))
        block.sampled = torch.where(here, picked, block.sampled)
        block.squares += torch.linalg.vector_norm(scores, dim=1).double() ** 2
        counts = _histogram(scores, self.work)
        if stream.floor == -np.inf and partial:
            stream.raise_floor(_provisional_floor(counts, int((own_here >= 0).sum()), stream.top_limit))
        _offer_top(stream, scores, top_vals, top_idx, own_here, block.ids, partial, lo)
        stream.add_histogram(counts)

    def finish(self, block: _Block) -> None:
        """The block's rows, once every tile is in."""
        if not self.shape.one_tile:  # from the merged top RANK_LIMIT + 1: its last still >= genuine means beyond
            block.at_least = (block.vals >= block.genuine[:, None]).sum(1)
            if self.shape.top_k < self.n_templates:
                beyond = torch.full_like(block.at_least, RANK_LIMIT + 1)
                block.at_least = torch.where(block.vals[:, -1] >= block.genuine, beyond, block.at_least)
        rival, rival_score = _rivals(block.vals, block.idx, block.own, self.n_templates)
        out = self.out
        out["rival"].append(rival)
        out["rival_score"].append(rival_score)
        out["genuine"].append(block.genuine)
        out["at_least"].append(block.at_least)
        out["top"].append(block.vals[:, 0])
        for t in self.thresholds:
            out[t].append(block.accepts[t] - (block.mated & (block.genuine >= t)).long())
        if not self.stream.exact:
            self.finish_summary(block)

    def finish_summary(self, block: _Block) -> None:
        """The block's impostor moments and sample; its genuine scores out of the histogram."""
        genuine = torch.where(block.mated, block.genuine, torch.zeros_like(block.genuine)).double()  # 0: none
        impostor_sum = (block.p @ self.template_sum).double() - genuine
        impostor_squares = float(block.squares.sum() - (genuine ** 2).sum())
        self.out["imp_sum"].append(impostor_sum)
        n_impostors = int(block.n * self.n_templates - block.mated.sum())
        self.stream.add_moments(n_impostors, float(impostor_sum.sum()), impostor_squares)
        self.stream.add_histogram(-bin_counts(block.genuine[block.mated].cpu().numpy()))
        keep = block.sample_cols != block.own[:, None]
        rows = block.rows[:, None].expand_as(block.sample_cols)[keep]
        self.stream.add_sample(block.sampled[keep].double().cpu().numpy(), block.ids[rows.cpu().numpy()],
                               block.sample_cols[keep].cpu().numpy())


def _rivals(vals, idx, own, n_templates: int):
    """Each row's best template other than its own, from its top-k (``vals``, ``idx``: columns),
    and that template's score; -1 and -inf where the top holds no other. Of the templates tied at
    the rival's score, the lowest column: topk orders ties as it likes, so the rival is then the
    same whatever the top-k's length and the tiles."""
    rows = torch.arange(len(idx), device=idx.device)
    not_own = idx != own[:, None]
    first = not_own.to(torch.int8).argmax(1)  # own is in the top at most once
    has_rival = not_own.any(1)
    tied = not_own & (vals == vals[rows, first][:, None])
    tied[rows, first] = True
    rival = torch.where(tied, idx, n_templates).min(1).values
    return (torch.where(has_rival, rival, torch.full_like(rival, -1)),
            torch.where(has_rival, vals[rows, first], torch.full_like(vals[:, 0], -np.inf)))


def _exact_pass(probes: np.ndarray, templates: np.ndarray, own: np.ndarray, probe_ids: np.ndarray, *,
                thresholds, device, chunk_cells, exact_limit, top_limit, sample_size) -> Matching:
    n_templates = len(templates)
    own = np.asarray(own, np.int64)
    mated = own >= 0
    limits = {k: v for k, v in (("exact_limit", exact_limit), ("top_limit", top_limit), ("sample_size", sample_size))
              if v is not None}
    stream = ImpostorStream(len(probes) * n_templates - int(mated.sum()), **limits)
    thresholds = tuple(float(t) for t in dict.fromkeys(thresholds))
    cols = _ExactPass(templates, own, probe_ids, thresholds, device, chunk_cells, stream).run(probes)
    genuine = cols["genuine"].astype(np.float64)
    return Matching(own=own, genuine=genuine, ranks=_ranks(cols["at_least"], mated, genuine, n_templates),
                    top_score=cols["top"].astype(np.float64), rival=cols["rival"].astype(np.int64),
                    rival_score=cols["rival_score"].astype(np.float64),
                    impostor_count=np.where(mated, n_templates - 1, n_templates).astype(np.int64),
                    impostor_sum=cols["imp_sum"].astype(np.float64),
                    false_accepts={t: cols[t].astype(np.int64) for t in thresholds},
                    impostors=stream.result(), n_templates=n_templates)


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
    at a time, so the comparison's mask is summed while in cache. The mask is summed as bytes
    into int32 (exact: a row has fewer than 2**31 cells): torch sums a bool tile into int64 about
    10x slower, as long as the matrix product (benchmarks/README.md, scale.py)."""
    n = len(scores) if rows is None else len(rows)
    step = max(1, HIST_CELLS // max(scores.shape[1], 1))
    out = torch.empty(n, dtype=torch.int32, device=scores.device)
    for a in range(0, n, step):
        part = slice(a, a + step) if rows is None else rows[a:a + step]
        t = threshold[part] if torch.is_tensor(threshold) else threshold
        out[a:a + step] = (scores[part] >= t).view(torch.uint8).sum(1, dtype=torch.int32)
    return out.long()


def _histogram(scores, work: _Workspace) -> np.ndarray:
    """metrics.streaming.bin_counts of a tile of scores, in torch. floor(s · 2**15) + 2**15
    is an exact integer in float32, so the bins are exactly bin_index's; torch counts int32 bins
    faster than int64 and than numpy. A slice of HIST_CELLS at a time: its five passes (scale,
    floor, shift, to int, clamp) then read a slice still in cache, not the 32 MB tile from memory
    each time (benchmarks/README.md, scale.py)."""
    flat = scores.reshape(-1)
    counts = torch.zeros(BINS, dtype=torch.int64, device=scores.device)
    for a in range(0, flat.numel(), HIST_CELLS):
        part = flat[a:a + HIST_CELLS]
        n = part.numel()
        binned = torch.mul(part, SCALE, out=work.take("binned", (n,), part.dtype)).floor_().add_(SCALE)
        bins = work.take("bins", (n,), torch.int32).copy_(binned).clamp_(0, BINS - 1)
        # One core: split over Python threads it counts faster, but torch's own threads then wait
        # for a core in the matrix products that follow, and the whole pass is slower.
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
