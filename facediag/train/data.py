"""Training data: which images train and which validate, P×K batches, and the two views.

Every training image is used twice: as its HR face (the gallery side) and as DSR(VLR), the
VLR being the data's own low-resolution file of the same capture when there is one, else
the HR face degraded to ``vlr_size`` by ``--degrade`` (area-downsampled by default; exactly how
the validation probes are made: facediag.data.degradation).

Validation is gallery matching on data the model never trains on: held-out subjects (or
``--val-data``), and optionally held-out images of the training subjects ("seen").
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facediag.data.degradation import degrade, key_token
from facediag.data.images import DecodeError, load_face, load_lowres
from facediag.data.index import DatasetIndex, Record, file_digest, index_dataset, natural_key
from facediag.data.protocol import Protocol, build_protocol
from facediag.errors import DataError, FacediagError
from facediag.train.config import TrainConfig


@dataclass(frozen=True)
class TrainItem:
    hr: Record
    vlr: Record | None  # the data's own VLR file of this capture; None: downsample hr
    label: int


@dataclass
class TrainSet:
    root: Path
    items: list[TrainItem]
    subjects: list[str]  # label -> subject id

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=np.int64)

    def fingerprint(self, vlr_size: int, dsr_fingerprint: str, align: str | None = None,
                    mode: str = "bicubic") -> str:
        """Content fingerprint of what trains: files, subjects, degradation (``mode``), DSR (and the
        alignment of the HR faces, when they are aligned on the fly: ``align`` is the Aligner's id)."""
        h = hashlib.sha256(f"vlr={vlr_size}|dsr={dsr_fingerprint}".encode())
        if align is not None:
            h.update(f"|align={align}".encode())
        for it in self.items:
            low = file_digest(it.vlr.path) if it.vlr else key_token(mode, vlr_size)  # bicubic: area16, as before
            h.update(f"{self.subjects[it.label]}|{file_digest(it.hr.path)}|{low}".encode())
        return h.hexdigest()


@dataclass
class DataSplit:
    train: TrainSet
    val: Protocol                 # held-out subjects (or --val-data, or held-out images)
    val_root: Path
    val_kind: str                 # "subjects" | "images" | "val-data"
    seen: Protocol | None = None  # held-out images of the training subjects
    notes: list[str] = field(default_factory=list)


def split_data(cfg: TrainConfig) -> DataSplit:
    """Index ``cfg.data`` (and ``cfg.val_data``) and decide what trains and what validates."""
    index = index_dataset(cfg.data, cfg.layout, cfg.subject_regex)
    notes: list[str] = []
    all_subjects = index.subjects
    _known(cfg.train_subjects, all_subjects, "--train-subjects", index.root)
    k = cfg.gallery_per_subject

    if cfg.val_data is not None:
        vindex = index_dataset(cfg.val_data, cfg.layout, cfg.subject_regex)
        _known(cfg.val_subjects, vindex.subjects, "--val-subjects", vindex.root)
        val_subjects = cfg.val_subjects or vindex.subjects
        train_subjects = cfg.train_subjects or all_subjects
        shared = sorted(set(val_subjects) & set(train_subjects), key=natural_key)
        if shared:
            notes.append(f"{len(shared)} subject id(s) of --val-data also train (e.g. {shared[0]}): "
                         "if they are the same people, validation is not on unseen identities")
        val_index, val_kind = _subset(vindex, val_subjects), "val-data"
        train_records = _subset(index, train_subjects).records
    elif cfg.val_split == "subjects":
        _known(cfg.val_subjects, all_subjects, "--val-subjects", index.root)
        train_subjects, val_subjects = _subject_split(cfg, all_subjects)
        val_index, val_kind = _subset(index, val_subjects), "subjects"
        train_records = _subset(index, train_subjects).records
    else:  # images: probes are held-out images of the training subjects themselves
        train_subjects = cfg.train_subjects or all_subjects
        sub = _subset(index, train_subjects)
        train_records, val_index = _hold_out_images(sub, k, cfg.val_fraction, None)
        val_kind = "images"

    seen = None
    if cfg.seen_holdout and val_kind != "images":
        train_records, seen_index = _hold_out_images(
            DatasetIndex(index.root, index.layout, train_records), k, None, cfg.seen_holdout)
        seen = build_protocol(seen_index, gallery_per_subject=k, vlr_size=cfg.vlr_size)

    val = build_protocol(val_index, gallery_per_subject=k, vlr_size=cfg.vlr_size)
    train = _train_set(index.root, train_records, cfg.vlr_size, notes)
    return DataSplit(train, val, val_index.root, val_kind, seen, notes)


def _known(wanted: list[str] | None, available: list[str], flag: str, root: Path) -> None:
    if wanted:
        have = set(available)
        missing = [s for s in wanted if s not in have]
        if missing:
            raise DataError(f"{flag}: {len(missing)} subject(s) not in {root} "
                            f"(e.g. {missing[0]!r}; it has {', '.join(available[:4])}, ...)")


def _subset(index: DatasetIndex, subjects) -> DatasetIndex:
    keep = set(subjects)
    return DatasetIndex(index.root, index.layout, [r for r in index.records if r.subject in keep])


def _subject_split(cfg: TrainConfig, subjects: list[str]) -> tuple[list[str], list[str]]:
    """Disjoint (train, val) subjects: the explicit lists, else a seeded random hold-out."""
    if cfg.val_subjects:
        val = list(cfg.val_subjects)
        train = cfg.train_subjects or [s for s in subjects if s not in set(val)]
    elif cfg.train_subjects:
        train = list(cfg.train_subjects)
        val = [s for s in subjects if s not in set(train)]
    else:
        n_val = max(1, round(cfg.val_fraction * len(subjects)))
        val = sorted(random.Random(cfg.seed).sample(subjects, n_val), key=natural_key)
        train = [s for s in subjects if s not in set(val)]
    overlap = set(train) & set(val)
    if overlap:
        raise DataError(f"{len(overlap)} subject(s) both train and validate "
                        f"(e.g. {sorted(overlap)[0]!r}); held-out subjects must be disjoint")
    if not train or not val:
        raise DataError(f"the subject split leaves {len(train)} training and {len(val)} "
                        f"validation subject(s); both need at least one")
    return train, val


def _hold_out_images(index: DatasetIndex, k: int, fraction: float | None,
                     count: int | None) -> tuple[list[Record], DatasetIndex]:
    """Per subject (HR images in natural order): the last ones become validation probes
    and never train; the first ``k`` enrol in the validation gallery and still train
    (in deployment the enrolled people's HR photos are known)."""
    by_subject: dict[str, list[Record]] = defaultdict(list)
    for rec in index.hr:
        by_subject[rec.subject].append(rec)
    held: set[tuple[str, str]] = set()
    val_records: list[Record] = []
    for subject, recs in by_subject.items():
        recs = sorted(recs, key=lambda r: natural_key(r.path.name))
        n = count if count is not None else math.ceil(fraction * len(recs))
        if len(recs) < k + max(n, 1):
            continue  # too few images to enrol and probe: this subject only trains
        probes = recs[len(recs) - n:]
        held |= {(r.subject, r.capture) for r in probes}
        val_records += recs[:k] + probes
    if not val_records:
        raise DataError(f"no subject has more than {k} HR images: nothing to hold out for "
                        "validation (lower --gallery-per-subject or use --val-split subjects)")
    # The VLR files of held-out captures validate with them; those of enrolled ones stay out.
    val_records += [r for r in index.vlr if (r.subject, r.capture) in held]
    train = [r for r in index.records if (r.subject, r.capture) not in held]
    return train, DatasetIndex(index.root, index.layout, val_records)


def _train_set(root: Path, records: list[Record], vlr_size: int, notes: list[str]) -> TrainSet:
    """HR records with their VLR twin of the same capture (the one at ``vlr_size`` if several)."""
    vlr: dict[tuple[str, str], Record] = {}
    for rec in records:
        if rec.role == "vlr":
            key = (rec.subject, rec.capture)
            if key not in vlr or rec.vlr_size == vlr_size:
                vlr[key] = rec
    hr = [r for r in records if r.role == "hr"]
    lonely = len({(r.subject, r.capture) for r in records if r.role == "vlr"}
                 - {(r.subject, r.capture) for r in hr})
    if lonely:
        notes.append(f"{lonely} VLR file(s) without an HR twin do not train")
    subjects = sorted({r.subject for r in hr}, key=natural_key)
    if len(subjects) < 2:
        raise DataError(f"training needs at least 2 subjects with HR images; found {len(subjects)}")
    label = {s: i for i, s in enumerate(subjects)}
    items = [TrainItem(r, vlr.get((r.subject, r.capture)), label[r.subject]) for r in hr]
    return TrainSet(root, items, subjects)


# ------------------------------------------------------------------ batches
def epoch_batches(labels: np.ndarray, subjects_per_batch: int, images_per_subject: int,
                  n_batches: int, seed: int, epoch: int) -> list[list[int]]:
    """``n_batches`` P×K batches for one epoch, from pytorch-metric-learning's MPerClassSampler.

    The sampler draws from NumPy's global RNG; it is seeded from (seed, epoch) and restored
    afterwards, so every epoch's batches are reproducible (resume, and every DDP rank draws
    the same list and takes its own share) without disturbing anyone else's randomness."""
    # pytorch-metric-learning: only a training run needs it, not every import of facediag.train
    from pytorch_metric_learning.samplers import MPerClassSampler

    batch = subjects_per_batch * images_per_subject
    saved = np.random.get_state()
    np.random.seed((seed * 1_000_003 + epoch) % 2**32)
    try:
        sampler = MPerClassSampler(labels, m=images_per_subject, batch_size=batch,
                                   length_before_new_iter=n_batches * batch)
        order = [int(i) for i in sampler]
    finally:
        np.random.set_state(saved)
    return [order[i * batch:(i + 1) * batch] for i in range(n_batches)]


# ------------------------------------------------------------------- pixels
def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


class TrainPixels:
    """Decoded HR faces and their DSR(VLR) views, [0,1] 3×112×112, cached in memory as uint8
    (75 KB per image with both views) for the first ``cache_images`` images seen.

    The DSR is frozen, so its output for an image never changes: it runs once per image."""

    def __init__(self, items: list[TrainItem], vlr_size: int, dsr, device, *, need_lr: bool,
                 cache_images: int = 20000, workers: int = 2, load=load_face, mode: str = "bicubic"):
        self.items, self.vlr_size, self.dsr, self.device, self.mode = items, vlr_size, dsr, device, mode
        self.load = load  # file -> 3×112×112 [0, 1]: load_face, or the Aligner's aligned crop
        self.need_lr, self.cache_images, self.workers = need_lr, cache_images, workers
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.failures: dict[int, str] = {}

    def _decode(self, i: int):
        it = self.items[i]
        try:
            hr = self.load(it.hr.path)
            if not self.need_lr:
                return hr, None
            return hr, load_lowres(it.vlr.path) if it.vlr is not None else degrade(hr, self.vlr_size, self.mode)
        except (DecodeError, OSError) as exc:
            return f"unreadable: {exc}"

    def _load(self, idx: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        with ThreadPoolExecutor(self.workers) as pool:
            decoded = dict(zip(idx, pool.map(self._decode, idx)))
        out, groups = {}, defaultdict(list)
        for i, d in decoded.items():
            if isinstance(d, str):
                self.failures[i] = d
            else:
                out[i] = (_to_u8(d[0]), None)
                if d[1] is not None:
                    groups[tuple(d[1].shape)].append((i, d[1]))
        for members in groups.values():  # one DSR call per low-resolution size
            sr = self.dsr(torch.stack([x for _, x in members]).to(self.device)).float().cpu()
            for (i, _), img in zip(members, sr):
                out[i] = (out[i][0], _to_u8(img))
        return out

    def batch(self, idx: list[int], generator: torch.Generator | None = None, hflip: bool = False):
        """(hr [B,3,112,112], lr [B,...] or None, kept positions): [0,1] floats on CPU.
        Unreadable images are left out (``kept`` says which of ``idx`` remain)."""
        todo = [i for i in dict.fromkeys(idx) if i not in self._cache and i not in self.failures]
        fresh = self._load(todo) if todo else {}
        for i, v in fresh.items():
            if len(self._cache) < self.cache_images:
                self._cache[i] = v
        kept = [p for p, i in enumerate(idx) if i not in self.failures]
        if not kept:
            raise FacediagError("a whole training batch was unreadable: "
                                f"{next(iter(self.failures.values()))}")
        pairs = [self._cache.get(idx[p]) or fresh[idx[p]] for p in kept]
        hr = torch.stack([h for h, _ in pairs]).float().div_(255)
        lr = torch.stack([v for _, v in pairs]).float().div_(255) if self.need_lr else None
        if hflip:  # each view flipped on its own: the label is the person, not the pose
            hr = _random_flip(hr, generator)
            lr = _random_flip(lr, generator) if lr is not None else None
        return hr, lr, kept


def _random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    mask = torch.rand(len(x), generator=generator) < 0.5
    x[mask] = x[mask].flip(-1)
    return x
