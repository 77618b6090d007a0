"""Pixels for the checks that need pixels rather than embeddings: compact leakage fingerprints
(tapped from the embedding pass's decode), the canvas the exact leakage test compares, and a
bounded sample to score with altered inputs. Model-independent; the Session keeps them per run."""
from __future__ import annotations

import base64
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from facediag.data.images import DecodeError, fit_canvas, load_face, load_lowres
from facediag.data.index import Record, file_digest
from facediag.data.table import Records
from facediag.errors import FacediagError
from facediag.progress import progress_bar


# The leakage fingerprint: an 8×8 grey thumbnail of the central 80×80 (the crop the exact
# shift-tolerant test compares), zero mean, unit norm, float16 = 128 bytes an image. On ORL it
# separated copies from other photos of the same person better than larger thumbnails, the whole
# canvas or a perceptual hash (benchmarks/README.md, leakage_scale.py); tests/data/
# test_near_duplicates.py re-checks the recall on ORL.
THUMB_SIZE = 8
THUMB_MARGIN = 16


@dataclass
class Fingerprints:
    """Compact fingerprints of the readable images of one view, row-aligned: the records they
    come from, the file digests (sha256, 32 bytes each) and the thumbnails [N, 64] float16."""
    records: list
    digests: np.ndarray
    thumbs: np.ndarray

    @property
    def paths(self) -> list[str]:
        return [str(r.path) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


def thumbnail(canvas01: torch.Tensor) -> np.ndarray:
    """3×112×112 [0, 1] (or a 112×112 grey) -> the normalised 8×8 leakage thumbnail (float16).

    Area averaging of the central crop in blocks of 10×10 px, in numpy: it runs inside the
    embedding pass's decode threads, so it must cost microseconds, not a torch call."""
    x = canvas01.numpy() if isinstance(canvas01, torch.Tensor) else np.asarray(canvas01)
    n = x.shape[-1]
    crop = x[..., THUMB_MARGIN:n - THUMB_MARGIN, THUMB_MARGIN:n - THUMB_MARGIN].astype(np.float64)
    grey = crop.mean(axis=0) if crop.ndim == 3 else crop
    block = grey.shape[0] // THUMB_SIZE
    t = grey[:block * THUMB_SIZE, :block * THUMB_SIZE].reshape(THUMB_SIZE, block, THUMB_SIZE, block).mean(axis=(1, 3))
    t = (t - t.mean()).ravel()
    return (t / max(float(np.linalg.norm(t)), 1e-12)).astype(np.float16)


def grey_canvas(rec: Record) -> np.ndarray:
    """The 112×112 grey canvas of one record as the exact leakage test compares it (an HR file as
    embedded, a VLR-only probe brought to the canvas)."""
    img = load_face(rec.path) if rec.role == "hr" else fit_canvas(load_lowres(rec.path))
    return img.numpy().mean(axis=0)  # numpy: the same values as torch's mean, without its thread team


class FingerprintTap:
    """Fingerprints gathered from images decoded for another purpose (the embedding pass), so
    that leakage needs no second decode; an image no pass decoded this run is decoded here once.

    Only the compact fingerprint is kept, never the pixels. Loaders run in threads: a lock."""

    def __init__(self):
        self._prints: dict[str, tuple[bytes, np.ndarray]] = {}
        self._lock = threading.Lock()

    def record(self, path, canvas01) -> None:
        """Keep the fingerprint of a file's 112×112 canvas (decoded for another purpose)."""
        entry = (bytes.fromhex(file_digest(path)), thumbnail(canvas01))
        with self._lock:
            self._prints.setdefault(str(path), entry)

    def wrap(self, path, load: Callable[[], torch.Tensor],
             canvas: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[], torch.Tensor]:
        """``load`` that also fingerprints what it decoded (``canvas`` brings it to 112×112 first)."""
        def tapped():
            img = load()
            if str(path) not in self._prints:
                self.record(path, canvas(img) if canvas else img)
            return img
        return tapped

    def __contains__(self, path) -> bool:
        return str(path) in self._prints

    def entries(self) -> dict[str, tuple[bytes, np.ndarray]]:
        """Every fingerprint taken so far, by path (a few hundred bytes each: for an all-gather)."""
        with self._lock:
            return dict(self._prints)

    def merge(self, entries: dict[str, tuple[bytes, np.ndarray]]) -> None:
        """Fingerprints another process tapped (its shard of the embedding pass under torchrun)."""
        with self._lock:
            for path, entry in entries.items():
                self._prints.setdefault(path, entry)

    def fingerprints(self, records: Sequence[Record]) -> Fingerprints:
        """The fingerprints of ``records`` (unreadable ones left out), decoding those not tapped."""
        kept, digests, thumbs = [], [], []
        for rec in records:
            if str(rec.path) not in self._prints:
                try:
                    self.record(rec.path, grey_canvas(rec))
                except (DecodeError, OSError):
                    continue
            digest, thumb = self._prints[str(rec.path)]
            kept.append(rec)
            digests.append(digest)
            thumbs.append(thumb)
        return Fingerprints(kept, np.array(digests, dtype="S32"),
                            np.array(thumbs, dtype=np.float16).reshape(len(thumbs), THUMB_SIZE * THUMB_SIZE))


def fingerprint_files(records: Records, *, known: Callable[[list[bytes]], dict[bytes, np.ndarray]] | None = None,
                      keep: Callable[[dict[bytes, np.ndarray]], None] | None = None, progress: bool = True,
                      batch: int = 1024) -> Fingerprints:
    """Fingerprints of images no embedding pass decodes (a training set), in one streaming pass:
    each file's digest, then its thumbnail from ``known`` (digest -> thumbnail, a content-keyed
    store) or else from one decode of its canvas, handed to ``keep`` for the next run. Only the
    fingerprints stay, in batches of ``batch`` files; unreadable files are left out (a training
    set is not ours to judge). ``records`` is a view of a table: the kept rows stay a view."""
    n = len(records)
    digests, thumbs = np.zeros(n, dtype="S32"), np.zeros((n, THUMB_SIZE * THUMB_SIZE), dtype=np.float16)
    kept = np.zeros(n, dtype=bool)

    def digest(i: int) -> bytes | None:
        try:
            return bytes.fromhex(file_digest(records[i].path))
        except OSError:
            return None

    def decode(i: int) -> np.ndarray | None:
        try:
            return thumbnail(grey_canvas(records[i]))
        except (DecodeError, OSError):
            return None

    workers = min(4, os.cpu_count() or 1)  # decoding releases the GIL; hashing mostly does too
    with ThreadPoolExecutor(workers) as pool, progress_bar("fingerprinting training images", n, progress) as advance:
        for start in range(0, n, batch):
            span = range(start, min(start + batch, n))
            hashed = [(i, d) for i, d in zip(span, pool.map(digest, span)) if d is not None]
            found = known([d for _, d in hashed]) if known else {}
            todo = [(i, d) for i, d in hashed if d not in found]
            fresh = {d: t for (_, d), t in zip(todo, pool.map(decode, [i for i, _ in todo])) if t is not None}
            for i, d in hashed:
                t = found.get(d)
                t = fresh.get(d) if t is None else t
                if t is not None:
                    digests[i], thumbs[i], kept[i] = d, t, True
            if keep and fresh:
                keep(fresh)
            advance(len(span))
    return Fingerprints(Records(records.table, records.rows[kept]), digests[kept], thumbs[kept])


@dataclass
class Sample:
    """A bounded sample of gallery images: pixels ([0, 1]), their subjects and their records."""
    pixels: torch.Tensor
    subjects: np.ndarray
    records: list

    def __len__(self) -> int:
        return len(self.records)


# The largest sample a default check takes (preprocessing: 24 people x 3 images; alignment
# takes 16 x 2 of the same): the Session keeps these images' pixels from the embedding pass.
PIXEL_SAMPLE_SUBJECTS, PIXEL_SAMPLE_PER_SUBJECT = 24, 3


def sample(gallery: Sequence[Record], max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
           per_subject: int = PIXEL_SAMPLE_PER_SUBJECT, load: Callable[[Path], torch.Tensor] = load_face) -> Sample:
    """Preprocessed pixels ([0,1]) of a few images of each of a few subjects, and their subjects:
    the first ``per_subject`` readable images of each of the first ``max_subjects`` people, in
    gallery order. ``load`` makes a file's pixels (the Session's: kept from the embedding pass,
    or aligned crops under --align)."""
    pixels, records = [], []

    def take(rec: Record) -> bool:
        try:
            pixels.append(load(rec.path))
        except (DecodeError, OSError):
            return False
        records.append(rec)
        return True
    _choose(gallery, max_subjects, per_subject, take)
    if not pixels:
        raise FacediagError("no readable gallery image")
    return Sample(torch.stack(pixels), np.asarray([r.subject for r in records], dtype=str), records)


def sample_paths(gallery: Sequence[Record], max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
                 per_subject: int = PIXEL_SAMPLE_PER_SUBJECT) -> set[str]:
    """The files ``sample`` takes when every one is readable (an unreadable one is replaced by a later one)."""
    paths: set[str] = set()
    _choose(gallery, max_subjects, per_subject, lambda rec: paths.add(str(rec.path)) or True)
    return paths


def _choose(gallery: Sequence[Record], max_subjects: int, per_subject: int, take: Callable[[Record], bool]) -> None:
    """Offers ``take`` the sample's records in gallery order; a record it refuses (unreadable) does not count."""
    taken: dict[str, int] = {}
    for rec in gallery:
        n = taken.get(rec.subject, 0)
        if n >= per_subject or (n == 0 and len(taken) >= max_subjects):
            continue
        if take(rec):
            taken[rec.subject] = n + 1


def thumbnail_uri(img01: torch.Tensor, size: int = 56, quality: int = 80) -> str:
    """A small JPEG of a [3, H, W] image in [0, 1] as a data URI, for reports that show faces
    (a few kilobytes each, embedded so the page needs nothing beside it)."""
    arr = (img01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
