"""The pixel room of a Session: every image as a model sees it, decoded once per run.

It turns the protocol's files into the Items the engine embeds (keys by content, loaders that
also tap leakage fingerprints and keep what another pass will need), super-resolves the probes
once for every model (DSR and, where the DSR is not bicubic, plain bicubic), and serves the
pixel samples, fingerprints, thumbnails, header sizes and probe quality the checks read.

Nothing here depends on a model, so Sessions over other models (Session.with_models) share one
Pixels: its DSR and bicubic outputs, fingerprints and kept pixels serve them all.
"""
from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facediag.cache import EmbeddingCache
from facediag.data.aligner import Aligner
from facediag.data.degradation import degrade, key_token
from facediag.data.images import DecodeError, fit_canvas, header_size, load_face, load_lowres, to_tensor01
from facediag.data.index import file_digest
from facediag.data.pixels import (PIXEL_SAMPLE_PER_SUBJECT, PIXEL_SAMPLE_SUBJECTS, THUMB_MARGIN, THUMB_SIZE,
                                  FingerprintTap, Fingerprints, Sample, fingerprint_files, grey_canvas, sample,
                                  sample_paths, thumbnail_uri)
from facediag.distributed import Distributed
from facediag.embed import Item, degraded_key, super_resolve
from facediag.metrics import image_quality
from facediag.models.dsr import BicubicDSR, load_dsr
from facediag.session.data import Data

Loader = Callable[[], torch.Tensor]
Outputs = tuple[torch.Tensor, dict[int, str]]  # [N, 3, 112, 112] float16, and why each failed row failed
# Probes whose DSR and bicubic outputs are scored against their HR image (PSNR, SSIM): at most this
# many, spread evenly over the protocol (ORL: all 280); their HR pixels are kept from the decode.
QUALITY_SAMPLE = 512


class Pixels:
    """Decoding, DSR outputs and pixel-level reads of one run's data (see the module docstring).

    ``aligner`` shares one Aligner's landmarks between sessions over the same images; ``dsr`` is
    a DSR the caller loaded already (else the config's, loaded on first use). ``keep_pixels``
    keeps every HR image once decoded (37 KB as whole levels, 147 KB an aligned crop), so later
    passes by other models decode none: for a small held-out set evaluated again and again."""

    def __init__(self, data: Data, *, aligner: Aligner | None = None, dsr=None, keep_pixels: bool = False):
        self.data = data
        self._shared_aligner = aligner
        if dsr is not None:
            self.dsr = dsr  # in place of the cached property below
        self._kept: dict[str, torch.Tensor] | None = {} if keep_pixels else None
        self._fingerprints: dict[str, Fingerprints] = {}
        self.tap = FingerprintTap()  # leakage fingerprints from the embedding pass's own decode
        # The pixel sample's images (data.pixels.sample, 72 at most by default: 11 MB), kept from
        # the embedding pass's decode, so the checks that score altered inputs decode none again.
        self._sample_pixels: dict[str, torch.Tensor] = {}
        self._dsr_lock = threading.Lock()
        self.dsr_out: Outputs | None = None
        # A probe's degraded DSR input, taken from its HR view's decode when that pass runs before
        # the DSR pass (probe row -> 3×s×s, a few KB), so the HR file is decoded once for both.
        self._lowres: dict[int, torch.Tensor] = {}
        # Where the DSR is not bicubic the low-resolution inputs are kept for the run instead (probe
        # row -> 3×s×s float32: 3 KB at 16 px, 1/24 of a DSR output): the bicubic view of the
        # probes upsamples the same inputs, decoding nothing again. So are the HR pixels of the
        # probes PSNR/SSIM is measured on (QUALITY_SAMPLE at most, float16).
        self.bicubic_out: Outputs | None = None
        self.quality_hr: dict[int, torch.Tensor] = {}
        self._quality: dict[str, np.ndarray] = {}
        self.dsr_images = 0  # probes this process super-resolved

    @property
    def protocol(self):
        return self.data.protocol

    # ------------------------------------------------------------------ DSR
    @cached_property
    def dsr(self):
        return load_dsr(self.data.config.dsr, self.data.config.dsr_weights, device=self.data.device)

    @property
    def compares_bicubic(self) -> bool:
        """Whether the probes go through a DSR other than plain bicubic: then their bicubic view
        (probe_bicubic) is the baseline the DSR is judged against."""
        return self.data.probes_need_dsr and self.dsr.fingerprint != BicubicDSR.fingerprint

    @property
    def dsr_name(self) -> str | None:
        """The DSR the probes go through, as reports name it (None at full resolution)."""
        return getattr(self.dsr, "name", "bicubic") if self.data.probes_need_dsr else None

    def probe_view(self, view: str, what: str) -> str:
        """``view`` of the super-resolved probes: probe_bicubic is probe_dsr where the DSR is bicubic."""
        if view not in ("probe_dsr", "probe_bicubic"):
            raise ValueError(f"no {what} of view {view!r}")
        return view if self.compares_bicubic else "probe_dsr"

    @property
    def super_resolved(self) -> bool:
        """Whether a DSR or bicubic pass ran (then an HR pass no longer feeds it)."""
        return self.dsr_out is not None or self.bicubic_out is not None

    def dsr_outputs(self, dist: Distributed | None = None) -> Outputs:
        """DSR(VLR) for every probe, once per run, shared by every model (float16 to halve memory).
        With ``dist``, a collective (see Session.prepare)."""
        with self._dsr_lock:
            if self.dsr_out is None:
                self.dsr_out = self._compute_dsr(dist or Distributed())
            return self.dsr_out

    def bicubic_outputs(self, dist: Distributed | None = None) -> Outputs:
        """Plain bicubic of the same low-resolution inputs (compares_bicubic), the same way: once
        per run, from the inputs the DSR pass kept where it ran."""
        with self._dsr_lock:
            if self.bicubic_out is None:
                self.bicubic_out = self._compute_dsr(dist or Distributed(), BicubicDSR())
            return self.bicubic_out

    def _compute_dsr(self, dist: Distributed, dsr=None) -> Outputs:
        main = dsr is None  # the run's DSR, else the bicubic baseline
        dsr = self.dsr if main else dsr
        probes = self.protocol.probes
        rows = dist.shard(len(probes), self.data.config.batch_size)  # all of them in a world of one
        if self.data.aligning:
            self.aligner.prepare([probes[i].hr.path for i in rows
                                  if probes[i].vlr is None and probes[i].hr is not None])
        keep = self.compares_bicubic  # the inputs serve both passes: kept for the run
        part, failures = super_resolve([self._lowres_loader(i, keep) for i in rows], dsr, self.data.device,
                                       batch_size=self.data.config.batch_size,
                                       description=f"super-resolving probes ({dsr.name})",
                                       progress=self.data.progress)
        if main:
            self.dsr_images += len(rows) - len(failures)
        if not keep:
            self._lowres.clear()  # consumed; a later HR pass (another model) stashes nothing
        if dist.world == 1:
            return part, failures
        out = torch.zeros(len(probes), 3, 112, 112, dtype=torch.float16)
        all_failures: dict[int, str] = {}
        for part_rows, part_out, part_failures in dist.all_gather_object((list(rows), part, failures)):
            if part_rows:
                out[torch.as_tensor(part_rows)] = part_out
            all_failures.update({part_rows[j]: why for j, why in part_failures.items()})
        return out, all_failures

    def _lowres_loader(self, i: int, keep: bool) -> Loader:
        """Probe ``i``'s low-resolution DSR input: its VLR file, or its HR image downsampled (taken
        from the HR pass's stash where that ran first). ``keep`` (the DSR is not bicubic): the input
        serves both passes, so it is kept for the run."""
        p, size = self.protocol.probes[i], self.protocol.vlr_size
        if p.vlr is not None:  # a VLR-only probe is fingerprinted from its VLR file
            load = _loader(load_lowres, p.vlr.path)
            load = self.tap.wrap(p.vlr.path, load, fit_canvas) if p.hr is None else load
        else:
            hr = self.tap.wrap(p.hr.path, self.face(p.hr.path))
            if not keep:
                return lambda: self._lowres.pop(i) if i in self._lowres else self._degrade(hr(), size)
            hr = self._keeping_quality_hr(i, hr)
            load = lambda: self._degrade(hr(), size)  # noqa: E731
        return self._keeping_lowres(i, load) if keep else load

    def _keeping_lowres(self, i: int, load: Loader) -> Loader:
        """``load`` of probe ``i``'s low-resolution input, made once per run (compares_bicubic)."""
        def kept():
            img = self._lowres.get(i)
            if img is None:
                img = self._lowres[i] = load()
            return img
        return kept

    def _keeping_quality_hr(self, i: int, load: Loader) -> Loader:
        """``load`` of probe ``i``'s HR image that keeps it when PSNR/SSIM is measured on it."""
        if i not in self.quality_rows:
            return load

        def kept():
            img = load()
            self.quality_hr.setdefault(i, img.half())
            return img
        return kept

    @cached_property
    def quality_rows(self) -> set[int]:
        """The probes with an HR image that PSNR/SSIM is measured on: QUALITY_SAMPLE at most, evenly spread."""
        rows = [i for i, p in enumerate(self.protocol.probes) if p.hr is not None]
        if len(rows) > QUALITY_SAMPLE:
            rows = [rows[j] for j in np.linspace(0, len(rows) - 1, QUALITY_SAMPLE).round().astype(int)]
        return set(rows)

    @property
    def stashes_lowres(self) -> bool:
        """Whether some probe is degraded from its HR image here (not read from a VLR file)."""
        return self.protocol.vlr_size is not None and any(p.vlr is None and p.hr is not None
                                                          for p in self.protocol.probes)

    def _output(self, outputs: Callable[[], Outputs], i: int) -> torch.Tensor:
        out, failures = outputs()
        if i in failures:
            raise DecodeError(failures[i].removeprefix("unreadable: "))
        return out[i].float()

    # ------------------------------------------------------------ alignment
    @cached_property
    def aligner(self) -> Aligner:
        """MTCNN landmarks by file content, stored beside the embeddings (one shared one if given)."""
        if self._shared_aligner is not None:
            return self._shared_aligner
        device = str(self.data.device) if self.data.device.type == "cuda" else "cpu"
        return Aligner(self.data.store, device=device, progress=self.data.progress,
                       on_decode=lambda path, rgb: self.tap.record(path, fit_canvas(to_tensor01(rgb)))
                       if path not in self.tap else None)

    def alignment_info(self) -> dict[str, Any] | None:
        """What dataset_info says of alignment (None without it, so unaligned reports are unchanged)."""
        if self.data.config.align == "none":
            return None
        info: dict[str, Any] = {"requested": self.data.config.align, "method": self.data.alignment}
        if self.data.alignment == "mtcnn":
            info.update(id=self.aligner.id, **self.aligner.counts())
        if self.data.align_note:
            info["note"] = self.data.align_note
        return info

    def prepare_landmarks(self, view: str, dist: Distributed | None = None) -> None:
        """Under --align, the landmarks of a view's HR images first (batched): the keys of aligned
        images depend on them."""
        if not self.data.aligning:
            return
        proto = self.protocol
        self.aligner.prepare([r.path for r in proto.gallery] if view == "gallery" else
                             [p.hr.path for p in proto.probes if p.hr is not None and
                              (view == "probe_hr" or p.vlr is None or not self.data.probes_need_dsr)], dist=dist)

    # ---------------------------------------------------------------- items
    def face(self, path) -> Loader:
        """How an HR file becomes the model's 3×112×112: aligned under --align, else load_face."""
        load = _loader(self.aligner.load if self.data.aligning else load_face, path)
        return load if self._kept is None else self._keeping_face(str(path), load)

    def _keeping_face(self, path: str, load: Loader) -> Loader:
        def kept():
            packed = self._kept.get(path)
            if packed is None:
                img = load()
                self._kept[path] = _pack(img)
                return img
            return _unpack(packed)
        return kept

    def hr_key(self, path) -> str:
        """By content; an aligned crop's key names the alignment, so the two never mix (an image with
        no face is kept as given: the unaligned key)."""
        if self.data.aligning and self.aligner.found(path):
            return f"hr:{self.aligner.id}:{file_digest(path)}"
        return f"hr:{file_digest(path)}"

    def _degraded_key(self, probe, dsr_fingerprint: str) -> str:
        """A low-resolution probe's cache key: how it was degraded, the DSR that brought it back, its content."""
        how = "vlr-file" if probe.vlr is not None else key_token(self.data.config.degrade, self.protocol.vlr_size)
        if probe.vlr is None and self.data.aligning and self.aligner.found(probe.hr.path):
            how = f"{self.aligner.id}:{how}"  # degraded from the aligned crop
        return degraded_key(dsr_fingerprint, how, file_digest(probe.source.path))

    def _degrade(self, hr: torch.Tensor, size: int) -> torch.Tensor:
        """A synthetic low-resolution probe from its HR pixels, by the run's degradation (--degrade)."""
        return degrade(hr, size, self.data.config.degrade)

    def _hr_item(self, path) -> Item:
        """An HR image as the engine embeds it; its decode also yields its leakage fingerprint
        (aligned crops are fingerprinted as given, by the Aligner's decode)."""
        load = self.face(path)
        if self.data.aligning:
            return Item(self.hr_key(path), load)
        load = self.tap.wrap(path, load)
        if str(path) in self._sample_paths:
            load = self._keeping_sample(path, load)
        return Item(self.hr_key(path), load)

    def _probe_hr_item(self, row: int, probe) -> Item:
        """A probe's HR view; while the DSR pass is still to run, its decode also yields the probe's
        degraded DSR input (a synthetic low-resolution probe is its HR image, downsampled). Where the
        DSR is not bicubic, the input and the HR pixels PSNR/SSIM is measured on are kept for the run."""
        item = self._hr_item(probe.hr.path)
        size = self.protocol.vlr_size
        if self.data.probes_need_dsr and self.compares_bicubic:
            hr = self._keeping_quality_hr(row, item.load)
            if probe.vlr is not None:
                return Item(item.key, hr)

            def keep():
                img = hr()
                if row not in self._lowres:
                    self._lowres[row] = self._degrade(img, size)
                return img
            return Item(item.key, keep)
        if not self.data.probes_need_dsr or probe.vlr is not None or self.dsr_out is not None:
            return item

        def load():
            img = item.load()
            if self.dsr_out is None:
                self._lowres[row] = self._degrade(img, size)
            return img
        return Item(item.key, load)

    def items(self, view: str) -> list[Item]:
        """The Items of one view, rows aligned with the protocol (a probe with no HR image has the
        key "none" in probe_hr: its row stays NaN and is not a failure)."""
        proto = self.protocol
        if view == "gallery":
            return [self._hr_item(r.path) for r in proto.gallery]
        if view == "probe_hr":
            return [self._probe_hr_item(i, p) if p.hr else Item("none", _missing) for i, p in enumerate(proto.probes)]
        if not self.data.probes_need_dsr:  # HR probes: the same key as the gallery view shares the cache
            return [self._hr_item(p.hr.path) for p in proto.probes]
        if view == "probe_bicubic":  # keyed as a run with plain bicubic keys its probes: one cache
            return [Item(self._degraded_key(p, BicubicDSR.fingerprint), _loader(self._output, self.bicubic_outputs, i))
                    for i, p in enumerate(proto.probes)]
        dsr_fp = self.dsr.fingerprint
        return [Item(self._degraded_key(p, dsr_fp), _loader(self._output, self.dsr_outputs, i))
                for i, p in enumerate(proto.probes)]

    # ----------------------------------------------------------- samples
    @cached_property
    def _sample_paths(self) -> set[str]:
        return sample_paths(self.protocol.gallery)

    def _keeping_sample(self, path, load: Loader) -> Loader:
        def kept():
            img = load()
            self._sample_pixels.setdefault(str(path), img)  # the engine stacks a copy: img stays as decoded
            return img
        return kept

    def _sample_load(self, path) -> torch.Tensor:
        img = self._sample_pixels.get(str(path))
        if img is None:  # not decoded by an embedding pass this run (served from the cache)
            img = self._sample_pixels[str(path)] = load_face(path)
        return img

    def sample_pixels(self, max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
                      per_subject: int = PIXEL_SAMPLE_PER_SUBJECT) -> Sample:
        """A bounded sample of gallery pixels for checks that score altered inputs (data.pixels.sample),
        aligned under --align (as given while "auto" is being settled: that is what it measures).
        Unaligned, an image the embedding pass decoded is not decoded again, nor one a check sampled."""
        if self.data.alignment == "mtcnn":
            self.aligner.prepare([r.path for r in self.protocol.gallery])  # the gallery needs them anyway
            return sample(self.protocol.gallery, max_subjects, per_subject, load=self.aligner.load)
        return sample(self.protocol.gallery, max_subjects, per_subject, load=self._sample_load)

    # ------------------------------------------------------- fingerprints
    def pixel_fingerprints(self, view: str = "gallery") -> Fingerprints:
        """Compact leakage fingerprints (data.pixels.Fingerprints) of a view, once per run: taken
        from the embedding pass's decode where it ran, else decoded here (once). ``probe_hr`` uses
        each probe's own HR image, or its VLR file when it has none."""
        if view not in self._fingerprints:
            recs = (list(self.protocol.gallery) if view == "gallery"
                    else [p.hr if p.hr is not None else p.vlr for p in self.protocol.probes])
            self._fingerprints[view] = self.tap.fingerprints(recs)
        return self._fingerprints[view]

    def train_fingerprints(self) -> Fingerprints | None:
        """Leakage fingerprints of the training root's HR images (None without --train-root): no
        embedding pass decodes them, so one streaming pass does (data.pixels.fingerprint_files),
        and the thumbnails are kept in the cache store by file content: a second run hashes the
        files but decodes none."""
        if self.data.train_index is None:
            return None
        if "train" not in self._fingerprints:
            known = keep = None
            store = self.data.store
            if store is not None:
                space = store.namespace(f"leakage-thumbnail|{THUMB_SIZE}x{THUMB_SIZE}|margin {THUMB_MARGIN}")
                dim = THUMB_SIZE * THUMB_SIZE

                def known(digests):
                    hits = store.get_many(space, [d.hex() for d in digests], dim)
                    return {bytes.fromhex(k): v.astype(np.float16) for k, v in hits.items()}

                def keep(thumbs):
                    store.put_many(space, {d.hex(): t.astype(np.float32) for d, t in thumbs.items()})
            self._fingerprints["train"] = fingerprint_files(self.data.train_index.hr, known=known, keep=keep,
                                                            progress=self.data.progress)
        return self._fingerprints["train"]

    def grey_canvas(self, record) -> np.ndarray:
        """The 112×112 grey canvas of one image, for the exact leakage test on candidates only."""
        return grey_canvas(record)

    # --------------------------------------------------------- thumbnails
    def thumbnail(self, view: str, row: int) -> str | None:
        """A small JPEG data URI of one image of a view as the model saw it (a probe after its
        degradation and DSR), for reports that show faces; None when it cannot be read."""
        need_dsr = self.data.probes_need_dsr
        probe = self.protocol.probes[row] if view != "gallery" else None
        if probe is not None and probe.hr is None and not (view == "probe_dsr" and need_dsr):
            return None  # a VLR-only probe has no HR image to show
        try:
            if view == "gallery":
                img = self.face(self.protocol.gallery[row].path)()
            elif view == "probe_dsr" and need_dsr:
                img = self._output(self.dsr_outputs, row)
            else:
                img = self.face(probe.hr.path)()
        except (DecodeError, OSError):
            return None
        return thumbnail_uri(img)

    def thumbnail_file(self, path: str | Path) -> str | None:
        """The same for a file of the data set named by path (e.g. one of a leaked pair)."""
        try:
            return thumbnail_uri(load_face(path))
        except (DecodeError, OSError):
            return None

    def image_sizes(self, limit: int = 2000) -> list[tuple[int, int, str]]:
        """(width, height, PIL mode) of up to ``limit`` HR files, read from headers only."""
        sizes = (header_size(rec.path) for rec in self.data.index.hr[:limit])
        return [s for s in sizes if s is not None]  # unreadable headers are skipped, never raised

    # ------------------------------------------------------- probe quality
    def probe_quality(self, view: str = "probe_dsr") -> tuple[np.ndarray, np.ndarray]:
        """PSNR (dB) and SSIM against its own HR image (as the model sees it) of each probe of the
        quality sample (QUALITY_SAMPLE at most, evenly spread) through the DSR (``probe_dsr``) or
        plain bicubic (``probe_bicubic``): (protocol rows, ``[n, 2]``; NaN where unreadable).

        From the outputs and HR pixels this run already holds, an HR image decoded only if no pass
        decoded it this run (under torchrun: other ranks' shares, on rank 0). Kept in the cache store
        by the keys of the view's embeddings and the HR image's, so a second run computes none.
        Raises ImportError without scikit-image (metrics.image_quality)."""
        if not image_quality.available():
            raise ImportError("scikit-image is not installed (pip install -e \".[dev]\" or scikit-image>=0.22)")
        view = self.probe_view(view, "image quality")
        rows = np.array(sorted(self.quality_rows) if self.data.probes_need_dsr else [], dtype=int)
        if view not in self._quality:
            self._quality[view] = self._measure_quality(view, rows)
        return rows, self._quality[view]

    def _measure_quality(self, view: str, rows: np.ndarray) -> np.ndarray:
        probes, store = self.protocol.probes, self.data.store
        fp = self.dsr.fingerprint if view == "probe_dsr" else BicubicDSR.fingerprint
        keys = [f"{self._degraded_key(probes[i], fp)}|vs|{self.hr_key(probes[i].hr.path)}" for i in rows]
        space = EmbeddingCache.namespace(f"probe-quality|psnr,ssim|cap {image_quality.PSNR_CAP}")
        hits = store.get_many(space, keys, 2) if store else {}
        values = np.full((len(rows), 2), np.nan)
        todo = []
        for j, key in enumerate(keys):
            if key in hits:
                values[j] = hits[key]
            else:
                todo.append(j)
        if todo:
            out, failures = self.dsr_outputs() if view == "probe_dsr" else self.bicubic_outputs()
            todo = [j for j in todo if rows[j] not in failures]
            refs = {j: self._quality_reference(int(rows[j])) for j in todo}
            todo = [j for j in todo if refs[j] is not None]
            if todo:
                # numpy, not torch, gathers the float16 images: one thread, no pool to wake for a copy
                got = image_quality.psnr_ssim(out.numpy()[rows[todo]], np.stack([refs[j].numpy() for j in todo]))
                values[todo] = got = got.astype(np.float32)  # as the store keeps them: warm runs agree
                if store:
                    store.put_many(space, {keys[j]: v for j, v in zip(todo, got)})
        return values

    def _quality_reference(self, row: int) -> torch.Tensor | None:
        """A probe's HR image as the model sees it, for PSNR/SSIM: kept from this run's decode, else
        decoded now (and kept for the other view)."""
        img = self.quality_hr.get(row)
        if img is None:
            try:
                img = self.quality_hr[row] = self.face(self.protocol.probes[row].hr.path)().half()
            except (DecodeError, OSError):
                return None
        return img


def _pack(img: torch.Tensor) -> torch.Tensor:
    """The smallest dtype that gives ``img`` back exactly: uint8 for a decoded file (whole levels
    / 255), float32 for a warped (aligned) crop."""
    levels = (img * 255).round().clamp(0, 255).to(torch.uint8)
    return levels if torch.equal(_unpack(levels), img) else img.clone()


def _unpack(packed: torch.Tensor) -> torch.Tensor:
    return packed.float() / 255 if packed.dtype == torch.uint8 else packed  # as to_tensor01 divides


def _loader(fn, *args) -> Loader:
    return lambda: fn(*args)


def _missing():
    raise DecodeError("no such image")
