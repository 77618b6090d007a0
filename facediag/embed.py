"""The one batching engine (``run_batched``: decode ahead in threads, batches through a stage),
the embedding stage on it with a content-addressed on-disk cache, and the same engine running
the DSR stage for the Session.

An Item names an image by content (``key``: view + file digest) and knows how to produce
its 3×112×112 pixels in [0, 1] (``load``). The engine asks the cache first; only misses are
decoded (in background threads, a batch ahead of the model) and run through the model
under ``torch.inference_mode``. Raw (pre-normalisation) embeddings come back; the cache
stores them keyed by (model fingerprint, preprocessing, item key). A cache entry that is
unreadable or of the wrong shape is recomputed, never trusted. Under torchrun, ``embed(...,
dist=...)`` embeds this rank's shard and meets the other ranks' by an all-gather.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from facediag.cache import EmbeddingCache, default_cache_dir
from facediag.data.images import DecodeError, normalize
from facediag.distributed import Distributed
from facediag.models.loaded import LoadedModel, embedding_fingerprint, run_device
from facediag.progress import progress_bar


@dataclass(frozen=True)
class Item:
    key: str
    load: Callable[[], torch.Tensor]


def _safe_load(load: Callable[[], torch.Tensor]):
    try:
        return load()
    except (DecodeError, OSError) as exc:
        return f"unreadable: {exc}"


def run_batched(loaders: Sequence[Callable[[], torch.Tensor]], stage: Callable[[torch.Tensor], Sequence], *,
                batch_size: int, description: str, progress: bool = True, workers: int = 2):
    """Every input through ``stage`` in batches: ``{row: output}`` and ``{row: why unreadable}``.

    Inputs are decoded in background threads one batch ahead of the stage; a batch is split by
    tensor shape (low-resolution inputs may differ in size), so ``stage`` always gets a stack."""
    results: dict[int, object] = {}
    failures: dict[int, str] = {}
    if not loaders:
        return results, failures
    starts = list(range(0, len(loaders), batch_size))
    with ThreadPoolExecutor(workers) as pool, progress_bar(description, len(loaders), progress) as advance:
        pending = deque()

        def submit(start):
            pending.append((start, [pool.submit(_safe_load, f) for f in loaders[start:start + batch_size]]))

        for start in starts[:2]:  # decode one batch ahead of the stage
            submit(start)
        next_start = 2
        while pending:
            start, futures = pending.popleft()
            if next_start < len(starts):
                submit(starts[next_start])
                next_start += 1
            loaded = [f.result() for f in futures]
            by_shape: dict[tuple, list[int]] = {}
            for j, x in enumerate(loaded):
                if isinstance(x, torch.Tensor):
                    by_shape.setdefault(tuple(x.shape), []).append(j)
                else:
                    failures[start + j] = x
            for rows in by_shape.values():
                out = stage(torch.stack([loaded[j] for j in rows]))
                for k, j in enumerate(rows):
                    results[start + j] = out[k]
            advance(len(loaded))
    return results, failures


def degraded_key(dsr_fingerprint: str, degrade: str, digest: str) -> str:
    """The cache key of a probe made from an image: how it was degraded (``area16``: area-downsampled
    to 16 px; ``realistic-v1-16``: the realistic chain at 16 px, its ranges' version included, from
    :func:`facediag.data.degradation.key_token`; ``vlr-file``: a real VLR file), the DSR stage that
    brought it back, and the content digest. Every command that degrades images keys them here, so
    their caches are one."""
    return f"probe:{dsr_fingerprint}:{degrade}:{digest}"


def super_resolve(loaders: Sequence[Callable[[], torch.Tensor]], dsr: Callable[[torch.Tensor], torch.Tensor],
                  device: torch.device, *, batch_size: int, description: str,
                  progress: bool = True) -> tuple[torch.Tensor, dict[int, str]]:
    """The DSR stage over low-resolution inputs: ``[N, 3, 112, 112]`` float16 in [0, 1] (float16 halves
    the memory; rows of unreadable inputs stay zero) and {row: why unreadable}."""
    def stage(batch):
        with torch.inference_mode():
            return dsr(batch.to(device)).float().clamp(0, 1).cpu().half()

    sr, failures = run_batched(loaders, stage, batch_size=batch_size, description=description, progress=progress)
    out = torch.zeros(len(loaders), 3, 112, 112, dtype=torch.float16)
    for i, img in sr.items():
        out[i] = img
    return out, failures


class Embedder:
    """Runs one model over Items in batches; serves repeats from the cache."""

    def __init__(self, model: torch.nn.Module, device: torch.device, *, fingerprint: str | None,
                 cache: EmbeddingCache | None = None, batch_size: int = 64, workers: int = 2,
                 amp: bool = False, progress: bool = True):
        self.model = model
        self.device = device
        self.fingerprint = fingerprint
        self.cache = cache if fingerprint else None  # an unnamed model cannot be cached safely
        self.batch_size = batch_size
        self.workers = workers
        self.amp = amp and device.type == "cuda"
        self.progress = progress
        self.forward_calls = 0  # batches that reached the model (tests and benchmarks read these)
        self.images_embedded = 0
        self._memo: dict[str, np.ndarray] = {}  # this run's embeddings: an image is embedded once per run

    def forward(self, pixels01: torch.Tensor, normalization: Callable = normalize) -> np.ndarray:
        """One batch of [0,1] pixels -> raw embeddings (float32 numpy)."""
        self.forward_calls += 1
        self.images_embedded += len(pixels01)
        x = normalization(pixels01).to(self.device, non_blocking=True)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(x)
        return out.float().cpu().numpy()

    def embed(self, items: Sequence[Item], description: str = "embedding",
              dist: Distributed | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """Raw embeddings [N, D] (NaN rows where an image could not be read) and {row: why}.

        With ``dist`` (a world of several ranks) this is a collective: every rank must call it
        with the same items; each embeds its shard and every rank gets all N rows."""
        if dist is not None and dist.world > 1:
            return self._embed_sharded(items, description, dist)
        n = len(items)
        cached: dict[int, np.ndarray] = {}
        ns = EmbeddingCache.namespace(self.fingerprint) if self.cache else ""
        for i, item in enumerate(items):
            vec = self._memo.get(item.key)
            if vec is not None:
                cached[i] = vec
        if self.cache:  # one batched look-up, not a round trip per image
            stored = self.cache.get_many(ns, [items[i].key for i in range(n) if i not in cached])
            for i in range(n):
                if i not in cached and items[i].key in stored:
                    cached[i] = self._memo[items[i].key] = stored[items[i].key]
        todo = [i for i in range(n) if i not in cached]
        computed, failures = self._compute([items[i] for i in todo], description)
        failures = {todo[j]: why for j, why in failures.items()}
        for j, vec in computed.items():
            cached[todo[j]] = self._memo[items[todo[j]].key] = vec
        if self.cache:
            self.cache.put_many(ns, {items[todo[j]].key: vec for j, vec in computed.items()})
        dim = next(iter(cached.values())).shape[0] if cached else 512
        out = np.full((n, dim), np.nan, dtype=np.float32)
        for i, vec in cached.items():
            out[i] = vec
        return out, failures

    def _embed_sharded(self, items: Sequence[Item], description: str, dist: Distributed):
        rows = dist.shard(len(items), self.batch_size)  # the batches one process would run
        raw, failures = self.embed([items[i] for i in rows], description)
        parts = dist.all_gather_object((rows, raw, failures))
        readable = [(r, x) for r, x, f in parts if len(f) < len(r)]  # a part with a real embedding
        dim = readable[0][1].shape[1] if readable else raw.shape[1]
        out = np.full((len(items), dim), np.nan, dtype=np.float32)
        all_failures: dict[int, str] = {}
        for part_rows, part_raw, part_failures in parts:
            for j, i in enumerate(part_rows):
                if j in part_failures:
                    all_failures[i] = part_failures[j]
                else:  # memoised here too, so a later plain embed() of these items computes nothing
                    out[i] = self._memo[items[i].key] = part_raw[j]
        return out, all_failures

    def _compute(self, items: list[Item], description: str):
        return run_batched([it.load for it in items], self.forward, batch_size=self.batch_size,
                           description=description, progress=self.progress, workers=self.workers)


def open_cache(cache_dir=None, use_cache: bool = True) -> EmbeddingCache | None:
    """The embedding cache a run uses: the one in ``cache_dir`` (default: default_cache_dir()); None when off."""
    return EmbeddingCache(cache_dir or default_cache_dir()) if use_cache else None


def build_embedder(loaded: LoadedModel, device, *, cache: EmbeddingCache | None = None, batch_size: int = 64,
                   amp: bool = False, progress: bool = True) -> Embedder:
    """The engine for one loaded model: its module in eval mode on ``device`` (on CPU for dynamic
    int8: models.loaded.run_device), its embeddings cached under its embedding fingerprint (none
    for a model without a sha256: nothing cached)."""
    device = run_device(loaded.variant, device)
    return Embedder(loaded.model.to(device).eval(), device, fingerprint=embedding_fingerprint(loaded), cache=cache,
                    batch_size=batch_size, amp=amp, progress=progress)
