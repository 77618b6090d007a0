"""The candidate search of the matching pass: each probe's top-k templates, from an index.

``exact`` is the chunked torch pass itself (protocols.matching). The faiss indexes (the optional
``faiss`` extra) search L2-normalised embeddings by inner product, i.e. cosine:

- ``faiss``: IndexFlatIP, exact: the same ranks and top scores as ``exact`` (to float rounding);
- ``faiss-ivf``: IndexIVFFlat, approximate: NLIST ≈ √templates k-means cells, NPROBE of them
  scanned per probe;
- ``faiss-hnsw``: IndexHNSWFlat, approximate: a graph of M links per template, searched with a
  beam of EF_SEARCH.

An approximate index can miss a probe's best templates, so what it costs is measured, never
assumed: its recall@1 and @10 against exact search (a torch pass over a deterministic sample of
up to RECALL_PROBES probes) goes into the report with the index's parameters. HNSW's graph is
built with several threads, so it (and its recall) may differ slightly from run to run.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np
import torch

from facediag.errors import FacediagError

INDEXES = ("exact", "faiss", "faiss-ivf", "faiss-hnsw")
INSTALL_FAISS = "pip install 'facediag[faiss]'  (or: pip install faiss-cpu)"
RECALL_PROBES = 1000   # probes whose exact top-k the approximate index is measured against
RECALL_AT = (1, 10)
MIN_BLOCK_PROBES = 256   # each block reads every template once: with fewer probes per block a large gallery
                         # is re-read so often that the pass grows with its square (tiles of templates instead)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
IVF_NPROBE = 32
IVF_TRAIN_PER_CELL = 64  # k-means trains on this many templates per cell (faiss asks for >= 39)


def missing_extra(kind: str) -> str | None:
    """Why ``--index kind`` cannot run here (one line naming the install command), or None."""
    if kind not in INDEXES:
        return f"--index {kind!r}: choose one of {', '.join(INDEXES)}"
    if kind != "exact" and importlib.util.find_spec("faiss") is None:
        return f"--index {kind} needs faiss, which is not installed: {INSTALL_FAISS}"
    return None


def require_extra(kind: str) -> None:
    """FacediagError (one line, exit 2) unless ``--index kind`` can run."""
    reason = missing_extra(kind)
    if reason:
        raise FacediagError(reason)


@dataclass
class Candidates:
    """Per probe, the index's best templates, best first: ``ids`` -1 and ``scores`` -inf where the
    index found fewer than k (an IVF whose scanned cells hold fewer templates)."""

    ids: np.ndarray       # int64 [P, k]
    scores: np.ndarray    # float32 [P, k]
    kind: str
    params: dict = field(default_factory=dict)
    recall: dict = field(default_factory=dict)  # k -> recall@k against exact search
    recall_probes: int = 0

    def info(self) -> dict:
        """What the report says of the search."""
        out = {"index": self.kind, "params": self.params}
        if self.recall:
            out.update({f"index_recall_at_{k}": v for k, v in self.recall.items()}, recall_probes=self.recall_probes)
        return out


def recall_metrics(info: dict | None) -> dict:
    """The recall entries of a Candidates.info (none for an exact search), as report metrics."""
    return {k: v for k, v in (info or {}).items() if k.startswith("index_recall_at_")}


def search(kind: str, probes: np.ndarray, templates: np.ndarray, k: int) -> Candidates:
    """The top-k templates of every probe by one of the faiss indexes; an approximate one is
    measured against exact search (``Candidates.recall``)."""
    index, params = build_index(kind, templates, k)
    scores, ids = index.search(np.ascontiguousarray(probes, dtype=np.float32), k)
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    out = Candidates(ids.astype(np.int64), scores, kind, params)
    if kind != "faiss":
        rows = recall_sample(len(probes))
        out.recall_probes = len(rows)
        out.recall = recall(out.ids[rows], exact_top(probes[rows], templates, max(RECALL_AT)))
    return out


def build_index(kind: str, templates: np.ndarray, k: int):
    """(a faiss index holding the templates, its parameters) for a search of the top k."""
    require_extra(kind)
    # the faiss extra: optional, and only for --index faiss*
    import faiss

    tmpl = np.ascontiguousarray(templates, dtype=np.float32)
    n_t, dim = tmpl.shape
    if kind == "faiss":
        index, params = faiss.IndexFlatIP(dim), {}
    elif kind == "faiss-ivf":
        nlist = int(max(1, min(round(np.sqrt(n_t)), n_t // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        step = max(1, n_t // (nlist * IVF_TRAIN_PER_CELL))  # an even subsample: training cost bounded
        index.train(tmpl[::step])
        index.nprobe = min(nlist, IVF_NPROBE)
        params = {"nlist": nlist, "nprobe": index.nprobe, "trained_on": len(tmpl[::step])}
    elif kind == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
        params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": index.hnsw.efSearch}
    else:
        raise ValueError(f"not a faiss index: {kind!r}")
    index.add(tmpl)
    return index, params


def recall_sample(n_probes: int) -> np.ndarray:
    """Up to RECALL_PROBES probe rows, evenly spread: the same rows for the same probes every run."""
    return np.unique(np.linspace(0, n_probes - 1, min(n_probes, RECALL_PROBES)).astype(np.int64)) if n_probes else \
        np.zeros(0, np.int64)


def merge_top(vals, idx, tile_vals: torch.Tensor, tile_idx: torch.Tensor, k: int):
    """Each row's best k of two sorted top lists (scores, template columns), as a pass over tiles
    of templates keeps them; ``vals``/``idx`` None before the first tile."""
    if vals is None:
        return tile_vals, tile_idx
    vals, pos = torch.cat([vals, tile_vals], 1).topk(min(k, vals.shape[1] + tile_vals.shape[1]), dim=1)
    return vals, torch.cat([idx, tile_idx], 1).gather(1, pos)


def exact_top(probes: np.ndarray, templates: np.ndarray, k: int, chunk_cells: int = 1 << 22) -> np.ndarray:
    """int64 [P, min(k, S)]: the exact best templates of each probe (chunked float32 torch pass).
    Blocks of at least MIN_BLOCK_PROBES probes against tiles of templates, their top-k merged: with
    a million templates, blocks of 4 probes would read the whole template matrix 250 times for the
    1,000 probes whose recall is measured."""
    tmpl = torch.as_tensor(np.ascontiguousarray(templates, dtype=np.float32))
    n_t = len(tmpl)
    k = min(k, n_t)
    if not len(probes) or not k:
        return np.zeros((len(probes), k), np.int64)
    step = min(len(probes), max(MIN_BLOCK_PROBES, chunk_cells // n_t))
    width = max(k, chunk_cells // step)
    parts = []
    for a in range(0, len(probes), step):
        p = torch.as_tensor(np.ascontiguousarray(probes[a:a + step], dtype=np.float32))
        vals = idx = None
        for lo in range(0, n_t, width):
            v, i = (p @ tmpl[lo:lo + width].T).topk(min(k, n_t - lo), dim=1)
            vals, idx = merge_top(vals, idx, v, i + lo, k)
        parts.append(idx)
    return torch.cat(parts).numpy()


def recall(found: np.ndarray, exact: np.ndarray) -> dict:
    """k -> mean over probes of |found top-k ∩ exact top-k| / k (RECALL_AT, for k up to the gallery)."""
    out = {}
    for k in RECALL_AT:
        if k > exact.shape[1] or not len(exact):
            continue
        hits = [len(np.intersect1d(f[:k], e[:k])) for f, e in zip(found, exact)]
        out[k] = round(float(np.mean(hits)) / k, 4)
    return out
