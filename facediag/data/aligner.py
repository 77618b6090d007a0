"""Alignment on the fly (``--align mtcnn``): each HR image detected with MTCNN and warped to the
ArcFace template as it is loaded for embedding, with the same detector, fit and warp as
``facediag align`` (data.detect, data.landmarks), so the crops are the offline ones.

Landmarks are what is kept, not crops: ten floats, the score and the face count per image, by
file content, in this run's memo and in a store (the embedding cache's, as one more
namespace), so a second run detects nothing and re-warps a crop from the decoded image
cheaply, or, when its embedding is cached too, decodes nothing. Detection runs batched over
the images of a view before they are embedded (``prepare``); the crops it warps on the way are
kept until the embedding pass takes them, so an image is decoded once per run. An image with
no face is kept as given (facediag's 112 canvas) and counted.

The store is any object with the embedding cache's ``get_many(namespace, keys)`` and
``put_many(namespace, {key: vector})``: this module sits below the cache and does not import it.
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from facediag.data.detect import PHOTO_MIN_FACE, RETRY_MIN_FACE, Detector, require_extra
from facediag.data.images import PREPROCESS_ID, fit_canvas, read_rgb, to_tensor01
from facediag.data.index import file_digest
from facediag.data.landmarks import WARP_ID, AlignmentError, fit, warp
from facediag.progress import progress_bar

ALIGN_CHOICES = ("none", "mtcnn", "auto")
MIN_FACE = PHOTO_MIN_FACE  # facediag align's default too: the crops are the offline ones
BATCH = 64
# Crops warped while detecting, waiting for the embedding pass: at most this many (37 KB each).
_MAX_KEPT = 4096
_NO_FACE = np.full(12, np.nan, dtype=np.float32)


class Aligner:
    """MTCNN landmarks and aligned crops of HR files, by content (see the module docstring)."""

    def __init__(self, store=None, *, device: str = "cpu", progress: bool = True,
                 on_decode: Callable[[Path, np.ndarray], None] | None = None):
        require_extra()
        self.store, self.device, self.progress = store, device, progress
        self.on_decode = on_decode  # sees every decoded HR image (the Session's leakage fingerprints)
        self.id = f"mtcnn{MIN_FACE}:{WARP_ID}"  # in the cache keys of aligned images
        self.namespace = hashlib.sha256(f"landmarks|{self.id}|{PREPROCESS_ID}".encode()).hexdigest()[:32]
        self._points: dict[str, np.ndarray] = {}  # digest -> 12 floats (points, score, faces); NaN: no face
        self._kept: dict[str, np.ndarray] = {}  # digest -> aligned 112×112×3 uint8, until loaded
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()  # MTCNN is not known to be thread-safe
        self._detector: Detector | None = None
        self.detected = 0  # images run through the detector by this Aligner (tests count them)
        self.from_store = 0

    # ------------------------------------------------------------------ landmarks
    def prepare(self, paths: Sequence[Path], description: str = "detecting faces", dist=None) -> None:
        """Make sure the landmarks of every file are known: from this run, the store, or MTCNN.

        With ``dist`` (facediag.distributed, a world of several under torchrun) this is a collective,
        called by every rank with the same paths: each rank detects the files it owns by content
        and the landmarks meet by an all-gather, so no image is detected twice."""
        digests: dict[str, Path] = {}
        for p in paths:
            digests.setdefault(file_digest(p), Path(p))
        shared = dist is not None and dist.world > 1
        mine = [d for d in digests if not shared or int(d[:8], 16) % dist.world == dist.rank]
        self._find(mine, digests, description)
        if shared:
            for part in dist.all_gather_object({d: self._points[d] for d in mine if d in self._points}):
                self._points.update(part)

    def _find(self, todo: list[str], digests: dict[str, Path], description: str) -> None:
        todo = [d for d in todo if d not in self._points]
        if todo and self.store is not None:
            stored = self.store.get_many(self.namespace, todo)
            self._points.update({d: v for d, v in stored.items() if v.shape == (12,)})
            self.from_store += sum(d in self._points for d in todo)
            todo = [d for d in todo if d not in self._points]
        if not todo:
            return
        with progress_bar(description, len(todo), self.progress) as advance, ThreadPoolExecutor(2) as pool:
            for s in range(0, len(todo), BATCH):
                chunk = todo[s:s + BATCH]
                decoded = list(pool.map(lambda d: _decode(digests[d]), chunk))
                readable = [(d, rgb) for d, rgb in zip(chunk, decoded) if rgb is not None]
                found = self._detect([rgb for _, rgb in readable])
                fresh = {}
                for (d, rgb), row in zip(readable, found):
                    fresh[d] = row
                    if self.on_decode is not None:
                        self.on_decode(digests[d], rgb)
                    if len(self._kept) < _MAX_KEPT:
                        self._kept[d] = self._crop(rgb, row)
                self._points.update(fresh)
                if self.store is not None and fresh:
                    self.store.put_many(self.namespace, fresh)
                advance(len(chunk))  # unreadable files stay unknown: the embedding pass reports them

    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        with self._detect_lock:
            if self._detector is None:
                self._detector = Detector(min_face_size=MIN_FACE, device=self.device, retry_min_face=RETRY_MIN_FACE)
            self.detected += len(images)
            detections = self._detector.detect(images)
        rows = []
        for det in detections:
            if not det.found:
                rows.append(_NO_FACE)
                continue
            try:
                fit(det.points)
            except AlignmentError:  # degenerate landmarks: as good as no face
                rows.append(_NO_FACE)
                continue
            rows.append(np.r_[det.points.ravel(), det.score, det.faces].astype(np.float32))
        return rows

    def found(self, path) -> bool | None:
        """Whether a face was found in the file (None: not prepared, or unreadable)."""
        row = self._points.get(file_digest(path))
        return None if row is None else bool(np.isfinite(row[0]))

    def counts(self) -> dict[str, int]:
        """Of the images prepared in this run: aligned, and kept as given because no face was found."""
        finite = [bool(np.isfinite(v[0])) for v in self._points.values()]
        return {"aligned": sum(finite), "no_face": len(finite) - sum(finite)}

    # ------------------------------------------------------------------ pixels
    @staticmethod
    def _crop(rgb: np.ndarray, row: np.ndarray):
        """The aligned 112×112×3 uint8 crop; with no face, the image as given on facediag's canvas
        (3×112×112 float, exactly what load_face gives, so its embedding is the unaligned one)."""
        if not np.isfinite(row[0]):
            return fit_canvas(to_tensor01(rgb))
        return warp(rgb, fit(row[:10].astype(np.float64).reshape(5, 2)))

    def load(self, path) -> torch.Tensor:
        """A file as the model sees it with alignment: 3×112×112 in [0, 1], the aligned crop (or the
        image as given when it holds no face). Decodes only when the crop is not kept from ``prepare``."""
        digest = file_digest(path)
        with self._lock:
            kept = self._kept.pop(digest, None)
        if kept is None:
            rgb = read_rgb(path)  # DecodeError / OSError: unreadable, as without alignment
            if self.on_decode is not None:
                self.on_decode(Path(path), rgb)
            row = self._points.get(digest)
            if row is None:  # not prepared (e.g. a check's sample): detected now, alone
                row = self._points[digest] = self._detect([rgb])[0]
                if self.store is not None:
                    self.store.put_many(self.namespace, {digest: row})
            kept = self._crop(rgb, row)
        return kept if isinstance(kept, torch.Tensor) else to_tensor01(kept)

    def release(self) -> None:
        """Drop crops no embedding pass took (their embeddings were cached)."""
        with self._lock:
            self._kept.clear()


def _decode(path: Path) -> np.ndarray | None:
    try:
        return read_rgb(path)
    except Exception:  # noqa: BLE001 -- read_rgb raises DecodeError/OSError; the embedding pass says why
        return None
