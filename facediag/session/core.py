"""Session: the one place checks get data, models and embeddings from.

Everything is lazy and computed once per run: the dataset index, the gallery/probe
protocol, the DSR outputs for the probes (shared by every model), and per model the raw
and normalised embeddings of each view and the gallery-matching Evaluation. Checks read
the Session; they never open files or build models themselves.

Under torchrun, ``prepare()`` computes all of that up front on every rank in lockstep, each
rank its shard of the images; rank 0 alone then runs the checks over the memoised results.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from facediag.data.aligner import ALIGN_CHOICES, Aligner
from facediag.data.detect import require_extra
from facediag.data.images import DecodeError, downsample, fit_canvas, header_size, load_face, load_lowres, to_tensor01
from facediag.data.pixels import (PIXEL_SAMPLE_PER_SUBJECT, PIXEL_SAMPLE_SUBJECTS, THUMB_MARGIN, THUMB_SIZE,
                                  FingerprintTap, Fingerprints, Sample, fingerprint_files, grey_canvas, sample,
                                  sample_paths, thumbnail_uri)
from facediag.data.index import DEFAULT_SUBJECT_REGEX, DatasetIndex, file_digest, find_split_roots, index_dataset
from facediag.data.protocol import Protocol, build_protocol
from facediag.distributed import Distributed
from facediag.embed import EmbeddingCache, Embedder, Item, default_cache_dir, degraded_key, super_resolve
from facediag.errors import FacediagError
from facediag.models.edgeface import VARIANTS
from facediag.models.onnx import ONNX_FORMAT
from facediag.models.presets import DEFAULT_THRESHOLD, EDGEFACE
from facediag.models.protocol import LoadedModel, embedding_fingerprint, preset_of
from facediag.protocols.gallery import Evaluation, build_evaluation
from facediag.protocols.index import require_extra as require_index

ROLES = ("model", "baseline")
# probe_bicubic: the probes through plain bicubic instead of the DSR, the baseline every DSR must
# beat (the dsr check); a view of its own only where the DSR is not bicubic (compares_bicubic).
VIEWS = ("gallery", "probe_hr", "probe_dsr", "probe_bicubic")
_PROBLEM_ORDER = ("gallery", "probe_dsr", "probe_hr", "probe_bicubic")  # the order unreadable files are listed in
# Probes whose DSR and bicubic outputs are scored against their HR image (PSNR, SSIM): at most this
# many, spread evenly over the protocol (ORL: all 280); their HR pixels are kept from the decode.
QUALITY_SAMPLE = 512


@dataclass
class SessionConfig:
    weights: str | Path | None = None
    data: str | Path | None = None  # one root, split per subject
    gallery_root: str | Path | None = None  # or two roots
    probe_root: str | Path | None = None
    train_root: str | Path | None = None  # training data, for subject-overlap
    distractors: str | Path | None = None  # probes of people in no gallery (open set, watch lists)
    baseline_weights: str | Path | None = None
    arch: str | None = None
    baseline_arch: str | None = None
    card: str | Path | None = None  # the model's card (default: <weights>.toml beside it, if any)
    baseline_card: str | Path | None = None
    layout: str = "auto"
    subject_regex: str = DEFAULT_SUBJECT_REGEX
    allow_outside_root: bool = False  # a manifest may name files outside its folder
    gallery_per_subject: int = 3
    vlr_size: int | None = 16  # None: probe at full resolution
    dsr: str | None = None
    dsr_weights: str | Path | None = None
    device: str = "auto"
    batch_size: int = 64
    amp: bool = False
    cache_dir: str | Path | None = None
    use_cache: bool = True
    progress: bool = True
    # HR images detected and warped to the ArcFace template as they are loaded ("mtcnn"), as given
    # ("none"), or aligned only when the alignment check says they are not ("auto": settle_alignment).
    align: str = "none"
    # The matching pass's candidate search: torch ("exact") or a faiss index (protocols.index).
    index: str = "exact"
    # Acceptance thresholds the checks will ask about: their false accepts are counted in the one
    # matching pass (another threshold costs one more pass). run_suite sets them from the suite.
    thresholds: tuple = (DEFAULT_THRESHOLD,)


@dataclass
class Embeddings:
    raw: np.ndarray  # [N, D]; NaN rows where the image could not be read
    subjects: np.ndarray  # [N] str
    failures: dict[int, str] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.raw).all(axis=1)


class Session:
    """Lazily built run state. ``models`` may inject already-loaded checkpoints by role.

    Sessions given the same ``embedders`` dict share one Embedder per role (built lazily,
    by whichever session asks first), so an image is embedded once per model across them:
    e.g. one session per probe resolution, one HR gallery embedding per model.

    ``dist`` is the torchrun environment (facediag.distributed); by default a world of one.
    ``aligner`` likewise shares one Aligner's landmarks between sessions over the same images."""

    def __init__(self, config: SessionConfig, *, models: dict[str, LoadedModel] | None = None,
                 embedders: dict[str, Embedder] | None = None, dist: Distributed | None = None,
                 aligner: Aligner | None = None):
        self.config = config
        self.dist = dist or Distributed()
        self._models: dict[str, LoadedModel] = dict(models or {})
        self._embedders: dict[str, Embedder] = embedders if embedders is not None else {}
        self._embeddings: dict[tuple[str, str], Embeddings] = {}
        self._evaluations: dict[str | tuple[str, str], Evaluation] = {}
        self._fingerprints: dict[str, Fingerprints] = {}
        self._tap = FingerprintTap()  # leakage fingerprints from the embedding pass's own decode
        # The pixel sample's images (data.pixels.sample, 72 at most by default: 11 MB), kept from
        # the embedding pass's decode, so the checks that score altered inputs decode none again.
        self._sample_pixels: dict[str, torch.Tensor] = {}
        self._dsr_lock = threading.Lock()
        self._dsr_out: tuple[torch.Tensor, dict[int, str]] | None = None
        # A probe's degraded DSR input, taken from its HR view's decode when that pass runs before
        # the DSR pass (probe row -> 3×s×s, a few KB), so the HR file is decoded once for both.
        self._lowres: dict[int, torch.Tensor] = {}
        # Where the DSR is not bicubic the low-resolution inputs are kept for the run instead (probe
        # row -> 3×s×s float32: 3 KB at 16 px, 1/24 of a DSR output): the bicubic view of the
        # probes upsamples the same inputs, decoding nothing again. So are the HR pixels of the
        # probes PSNR/SSIM is measured on (QUALITY_SAMPLE at most, float16).
        self._bicubic_out: tuple[torch.Tensor, dict[int, str]] | None = None
        self._quality_hr: dict[int, torch.Tensor] = {}
        self._quality: dict[str, np.ndarray] = {}
        self._dsr_images = 0  # probes this process super-resolved
        self.rank_counts: list[dict] | None = None  # after prepare(): what each rank computed
        if config.data is None and config.gallery_root is None:
            raise FacediagError("no data: give --data ROOT, or --gallery-root and --probe-root")
        if (config.gallery_root is None) != (config.probe_root is None):
            raise FacediagError("--gallery-root and --probe-root go together")
        if config.align not in ALIGN_CHOICES:
            raise FacediagError(f"--align {config.align!r}: choose one of {', '.join(ALIGN_CHOICES)}")
        if config.align != "none":
            require_extra()  # the one-line install command, before any work
        require_index(config.index)  # likewise for --index faiss*
        # The alignment used: None while "auto" is not settled yet (settle_alignment).
        self._align: str | None = None if config.align == "auto" else config.align
        self._align_note: str | None = None
        self._shared_aligner = aligner

    # ------------------------------------------------------------------ data
    @cached_property
    def device(self) -> torch.device:
        return self.dist.device(self.config.device)  # under torchrun, this rank's GPU

    @property
    def progress(self) -> bool:
        return self.config.progress and self.dist.main  # other ranks print nothing

    @cached_property
    def roots(self) -> tuple:
        """(gallery or only root, probe root): --data holding split folders (train/ + val/, ...)
        counts as --gallery-root train/ --probe-root val/."""
        c = self.config
        split = find_split_roots(c.data) if c.gallery_root is None else None
        return (split.gallery, split.probe) if split else (c.gallery_root or c.data, c.probe_root)

    @cached_property
    def index(self) -> DatasetIndex:
        c = self.config
        return index_dataset(self.roots[0], c.layout, c.subject_regex, allow_outside_root=c.allow_outside_root,
                             progress=c.progress)

    @cached_property
    def probe_index(self) -> DatasetIndex | None:
        c, root = self.config, self.roots[1]
        return index_dataset(root, c.layout, c.subject_regex, allow_outside_root=c.allow_outside_root,
                             progress=c.progress) if root else None

    @cached_property
    def train_index(self) -> DatasetIndex | None:
        c = self.config
        return index_dataset(c.train_root, c.layout, c.subject_regex, allow_outside_root=c.allow_outside_root,
                             progress=c.progress) if c.train_root else None

    @cached_property
    def distractor_index(self) -> DatasetIndex | None:
        c = self.config
        return index_dataset(c.distractors, c.layout, c.subject_regex, allow_outside_root=c.allow_outside_root,
                             progress=c.progress) if c.distractors else None

    @cached_property
    def protocol(self) -> Protocol:
        c = self.config
        return build_protocol(self.index, probe_index=self.probe_index, distractor_index=self.distractor_index,
                              gallery_per_subject=c.gallery_per_subject, vlr_size=c.vlr_size)

    @cached_property
    def dsr(self):
        from facediag.models.dsr import load_dsr

        return load_dsr(self.config.dsr, self.config.dsr_weights, device=self.device)

    @property
    def probes_need_dsr(self) -> bool:
        return self.protocol.vlr_size is not None or any(p.vlr is not None for p in self.protocol.probes)

    @property
    def compares_bicubic(self) -> bool:
        """Whether the probes go through a DSR other than plain bicubic: then their bicubic view
        (probe_bicubic) is the baseline the DSR is judged against."""
        from facediag.models.dsr import BicubicDSR

        return self.probes_need_dsr and self.dsr.fingerprint != BicubicDSR.fingerprint

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Files that could not be used, with why: indexing problems plus unreadable images."""
        found = [*self.index.problems, *(self.probe_index.problems if self.probe_index else []),
                 *(self.distractor_index.problems if self.distractor_index else [])]
        seen: set[str] = set()  # index problems may name kept files: their decode failure is news
        roles = list(dict.fromkeys(role for role, _ in self._embeddings))
        # In one order whichever view was embedded first (probe_hr runs before probe_dsr to feed it).
        order = sorted(self._embeddings, key=lambda k: (roles.index(k[0]), _PROBLEM_ORDER.index(k[1])))
        for role, view in order:
            emb = self._embeddings[(role, view)]
            paths = self._view_paths(view)
            for row, why in emb.failures.items():
                if paths[row] not in seen:
                    seen.add(paths[row])
                    found.append((paths[row], why))
        return found

    def _view_paths(self, view: str) -> list[str]:
        if view == "gallery":
            return [str(r.path) for r in self.protocol.gallery]
        if view == "probe_hr":
            return [str(p.hr.path) if p.hr else "" for p in self.protocol.probes]
        return [str(p.source.path) for p in self.protocol.probes]

    def dataset_info(self) -> dict[str, Any]:
        proto = self.protocol
        info = {
            "root": str(self.index.root),
            "layout": self.index.layout,
            "probe_root": str(self.probe_index.root) if self.probe_index else None,
            "protocol": proto.description,
            "notes": list(proto.notes),  # what the protocol means for the result (split folders, ...)
            "vlr_size": proto.vlr_size,
            "dsr": getattr(self.dsr, "name", "bicubic") if self.probes_need_dsr else None,
            "counts": {
                **self.index.counts(),
                "gallery_images": len(proto.gallery),
                "gallery_subjects": len(proto.gallery_subjects),
                "probes": len(proto.probes),
                "probe_subjects": len(set(proto.probe_subjects)),
            },
            "fingerprint": proto.fingerprint(),
            "problems": [{"path": p, "reason": r} for p, r in self.problems],
        }
        info["counts"]["problems"] = len(info["problems"])  # the list and its count always agree
        align = self.alignment_info()
        if align is not None:
            info["alignment"] = align
            if align["method"] == "mtcnn":  # aligned crops are other data than the files as given
                info["fingerprint"] = hashlib.sha256(f"{info['fingerprint']}|align={align['id']}".encode()).hexdigest()
            info["notes"] += self.alignment_notes()
        if self.config.index != "exact":  # rank-k as that index answers: say so where the data is described
            info["index"] = self.config.index
            info["notes"].append(f"candidate search by --index {self.config.index}: rank-k, CMC and open set as "
                                 "that index answers them (identification names its recall); verification exact")
        return info

    # ------------------------------------------------------------- alignment
    @property
    def alignment(self) -> str | None:
        """"mtcnn" or "none": how HR images are brought to 112 (None: "auto", not settled yet)."""
        return self._align

    def settle_alignment(self, method: str, note: str) -> None:
        """Decide "auto" (the runner does, from the alignment check): before anything is embedded."""
        if method not in ("none", "mtcnn"):
            raise ValueError(f"unknown alignment {method!r}")
        if self._embeddings or self._dsr_out is not None:
            raise RuntimeError("alignment settled after embedding started")
        self._align, self._align_note = method, note

    def _aligning(self) -> bool:
        if self._align is None:
            raise RuntimeError("--align auto is not settled: call settle_alignment before embedding")
        return self._align == "mtcnn"

    @cached_property
    def aligner(self) -> Aligner:
        """MTCNN landmarks by file content, stored beside the embeddings (one shared one if given)."""
        if self._shared_aligner is not None:
            return self._shared_aligner
        store = EmbeddingCache(self.config.cache_dir or default_cache_dir()) if self.config.use_cache else None
        device = str(self.device) if self.device.type == "cuda" else "cpu"
        return Aligner(store, device=device, progress=self.progress,
                       on_decode=lambda path, rgb: self._tap.record(path, fit_canvas(to_tensor01(rgb)))
                       if path not in self._tap else None)

    def _face(self, path) -> Callable[[], torch.Tensor]:
        """How an HR file becomes the model's 3×112×112: aligned under --align, else load_face."""
        return _loader(self.aligner.load if self._aligning() else load_face, path)

    def alignment_info(self) -> dict[str, Any] | None:
        """What dataset_info says of alignment (None without it, so unaligned reports are unchanged)."""
        if self.config.align == "none":
            return None
        info: dict[str, Any] = {"requested": self.config.align, "method": self._align}
        if self._align == "mtcnn":
            info.update(id=self.aligner.id, **self.aligner.counts())
        if self._align_note:
            info["note"] = self._align_note
        return info

    def alignment_notes(self) -> list[str]:
        """The report's lines on alignment: how auto decided, and how many faces were aligned."""
        return _alignment_notes(self.alignment_info())

    # ---------------------------------------------------------------- models
    def has_role(self, role: str) -> bool:
        if role in self._models:
            return True
        return (self.config.weights if role == "model" else self.config.baseline_weights) is not None

    def model(self, role: str = "model") -> LoadedModel:
        """The loaded model of a role ("model" or "baseline"), loaded strictly on first use."""
        if role not in self._models:
            from facediag.models.checkpoint import load_checkpoint

            path = self.config.weights if role == "model" else self.config.baseline_weights
            if path is None:
                raise FacediagError(f"no weights given for the {role}")
            arch = self.config.arch if role == "model" else self.config.baseline_arch
            card = self.config.card if role == "model" else self.config.baseline_card
            self._models[role] = load_checkpoint(path, arch=arch, card=card)
        return self._models[role]

    def check_card(self, role: str = "model") -> None:
        """A model that is not a known EdgeFace variant (a card, ``--arch custom``, a custom ONNX
        graph) embeds one blank face now, so a model that cannot take its input, or returns other
        than its card's embedding_dim, is refused (one line) before any work, not in every check."""
        loaded = self.model(role)
        if preset_of(loaded) == EDGEFACE and loaded.variant in VARIANTS:
            return
        try:
            self.embedder(role).forward(torch.zeros(1, 3, 112, 112))
        except (RuntimeError, ValueError) as e:  # shapes or dtypes the model does not take
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            preset = preset_of(loaded)
            raise FacediagError(f"{loaded.path or role}: the model fails on its input, a blank "
                                f"{list(preset.input_size)} face as {preset.name} feeds it ({detail[:200]}); "
                                "give the model card that says its input (--card)") from None

    def embedder(self, role: str = "model") -> Embedder:
        if role not in self._embedders:
            loaded = self.model(role)
            device = self.device
            if _dynamic_int8(loaded):
                device = torch.device("cpu")  # dynamic int8 kernels exist on CPU only
            module = loaded.model.to(device).eval()
            cache = None
            if self.config.use_cache:
                cache = EmbeddingCache(self.config.cache_dir or default_cache_dir())
            self._embedders[role] = Embedder(
                module, device, fingerprint=embedding_fingerprint(loaded), cache=cache,
                batch_size=self.config.batch_size, amp=self.config.amp, progress=self.progress)
        return self._embedders[role]

    # ----------------------------------------------------------- embeddings
    def prepare(self, roles: Sequence[str] | None = None) -> None:
        """Under torchrun, compute now, on every rank in the same order, everything the checks
        embed: the DSR outputs and every view of every role (default: those given), each rank
        its shard, met by all-gathers. Afterwards checks hit memoised results, so rank 0 can run
        them alone; the small extra forwards some make (``embed_pixels``) run on rank 0 only.
        In a world of one this does nothing: everything stays lazy."""
        if self.dist.world == 1:
            return
        roles = list(roles) if roles is not None else [r for r in ROLES if self.has_role(r)]
        for role in roles:
            for view in VIEWS:
                if view == "probe_dsr" and self.probes_need_dsr:
                    self._dsr_outputs(self.dist)
                if view == "probe_bicubic":
                    if not self.compares_bicubic:
                        continue
                    self._bicubic_outputs(self.dist)
                self._embed_view(role, view, self.dist)
        for tapped in self.dist.all_gather_object(self._tap.entries()):  # leakage: no image decoded again
            self._tap.merge(tapped)
        self.rank_counts = self.dist.all_gather_object({
            "rank": self.dist.rank, "super_resolved": self._dsr_images,
            "faces_detected": self.aligner.detected if self._aligning() else 0,
            "images_embedded": {role: self.embedder(role).images_embedded for role in roles}})

    def _dsr_outputs(self, dist: Distributed | None = None) -> tuple[torch.Tensor, dict[int, str]]:
        """DSR(VLR) for every probe, once per run, shared by every model (float16 to halve memory).
        With ``dist``, a collective (see prepare)."""
        with self._dsr_lock:
            if self._dsr_out is None:
                self._dsr_out = self._compute_dsr(dist or Distributed())
            return self._dsr_out

    def _bicubic_outputs(self, dist: Distributed | None = None) -> tuple[torch.Tensor, dict[int, str]]:
        """Plain bicubic of the same low-resolution inputs (compares_bicubic), the same way: once
        per run, from the inputs the DSR pass kept where it ran."""
        from facediag.models.dsr import BicubicDSR

        with self._dsr_lock:
            if self._bicubic_out is None:
                self._bicubic_out = self._compute_dsr(dist or Distributed(), BicubicDSR())
            return self._bicubic_out

    def _compute_dsr(self, dist: Distributed, dsr=None) -> tuple[torch.Tensor, dict[int, str]]:
        main = dsr is None  # the run's DSR, else the bicubic baseline
        dsr = self.dsr if main else dsr
        keep = self.compares_bicubic  # the inputs serve both passes: kept for the run
        probes = self.protocol.probes
        size = self.protocol.vlr_size
        rows = dist.shard(len(probes), self.config.batch_size)  # all of them in a world of one
        if self._aligning():
            self.aligner.prepare([probes[i].hr.path for i in rows
                                  if probes[i].vlr is None and probes[i].hr is not None])

        def lowres(i):
            p = probes[i]
            if p.vlr is not None:  # a VLR-only probe is fingerprinted from its VLR file
                load = _loader(load_lowres, p.vlr.path)
                load = self._tap.wrap(p.vlr.path, load, fit_canvas) if p.hr is None else load
            else:
                hr = self._tap.wrap(p.hr.path, self._face(p.hr.path))
                if not keep:
                    return lambda: self._lowres.pop(i) if i in self._lowres else downsample(hr(), size)
                hr = self._keeping_quality_hr(i, hr)
                load = lambda: downsample(hr(), size)  # noqa: E731
            return self._keeping_lowres(i, load) if keep else load

        part, failures = super_resolve([lowres(i) for i in rows], dsr, self.device,
                                       batch_size=self.config.batch_size,
                                       description=f"super-resolving probes ({dsr.name})", progress=self.progress)
        if main:
            self._dsr_images += len(rows) - len(failures)
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

    def _keeping_lowres(self, i: int, load: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        """``load`` of probe ``i``'s low-resolution input, made once per run (compares_bicubic)."""
        def kept():
            img = self._lowres.get(i)
            if img is None:
                img = self._lowres[i] = load()
            return img
        return kept

    def _keeping_quality_hr(self, i: int, load: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        """``load`` of probe ``i``'s HR image that keeps it when PSNR/SSIM is measured on it."""
        if i not in self._quality_rows:
            return load

        def kept():
            img = load()
            self._quality_hr.setdefault(i, img.half())
            return img
        return kept

    @cached_property
    def _quality_rows(self) -> set[int]:
        """The probes with an HR image that PSNR/SSIM is measured on: QUALITY_SAMPLE at most, evenly spread."""
        rows = [i for i, p in enumerate(self.protocol.probes) if p.hr is not None]
        if len(rows) > QUALITY_SAMPLE:
            rows = [rows[j] for j in np.linspace(0, len(rows) - 1, QUALITY_SAMPLE).round().astype(int)]
        return set(rows)

    @property
    def _stashes_lowres(self) -> bool:
        """Whether some probe is degraded from its HR image here (not read from a VLR file)."""
        return self.protocol.vlr_size is not None and any(p.vlr is None and p.hr is not None
                                                          for p in self.protocol.probes)

    def _probe_pixels(self, i: int) -> torch.Tensor:
        out, failures = self._dsr_outputs()
        if i in failures:
            raise DecodeError(failures[i].removeprefix("unreadable: "))
        return out[i].float()

    def _hr_item(self, path) -> Item:
        """An HR image as the engine embeds it; its decode also yields its leakage fingerprint
        (aligned crops are fingerprinted as given, by the Aligner's decode)."""
        load = self._face(path)
        if self._aligning():
            return Item(self._hr_key(path), load)
        load = self._tap.wrap(path, load)
        if str(path) in self._sample_paths:
            load = self._keeping_pixels(path, load)
        return Item(self._hr_key(path), load)

    @cached_property
    def _sample_paths(self) -> set[str]:
        return sample_paths(self.protocol.gallery)

    def _keeping_pixels(self, path, load: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
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

    def _hr_key(self, path) -> str:
        """By content; an aligned crop's key names the alignment, so the two never mix (an image with
        no face is kept as given: the unaligned key)."""
        if self._aligning() and self.aligner.found(path):
            return f"hr:{self.aligner.id}:{file_digest(path)}"
        return f"hr:{file_digest(path)}"

    def _probe_hr_item(self, row: int, probe) -> Item:
        """A probe's HR view; while the DSR pass is still to run, its decode also yields the probe's
        degraded DSR input (a synthetic low-resolution probe is its HR image, downsampled). Where the
        DSR is not bicubic, the input and the HR pixels PSNR/SSIM is measured on are kept for the run."""
        item = self._hr_item(probe.hr.path)
        size = self.protocol.vlr_size
        if self.probes_need_dsr and self.compares_bicubic:
            hr = self._keeping_quality_hr(row, item.load)
            if probe.vlr is not None:
                return Item(item.key, hr)

            def keep():
                img = hr()
                if row not in self._lowres:
                    self._lowres[row] = downsample(img, size)
                return img
            return Item(item.key, keep)
        if not self.probes_need_dsr or probe.vlr is not None or self._dsr_out is not None:
            return item

        def load():
            img = item.load()
            if self._dsr_out is None:
                self._lowres[row] = downsample(img, size)
            return img
        return Item(item.key, load)

    def _items(self, view: str) -> list[Item]:
        proto = self.protocol
        if view == "gallery":
            return [self._hr_item(r.path) for r in proto.gallery]
        if view == "probe_hr":
            return [self._probe_hr_item(i, p) if p.hr else Item("none", _missing) for i, p in enumerate(proto.probes)]
        if not self.probes_need_dsr:  # HR probes: the same key as the gallery view shares the cache
            return [self._hr_item(p.hr.path) for p in proto.probes]
        if view == "probe_bicubic":  # keyed as a run with plain bicubic keys its probes: one cache
            from facediag.models.dsr import BicubicDSR

            return [Item(self._degraded_key(p, BicubicDSR.fingerprint), _loader(self._bicubic_pixels, i))
                    for i, p in enumerate(proto.probes)]
        dsr_fp = self.dsr.fingerprint
        return [Item(self._degraded_key(p, dsr_fp), _loader(self._probe_pixels, i)) for i, p in enumerate(proto.probes)]

    def _probe_view(self, view: str, what: str) -> str:
        """``view`` of the super-resolved probes: probe_bicubic is probe_dsr where the DSR is bicubic."""
        if view not in ("probe_dsr", "probe_bicubic"):
            raise ValueError(f"no {what} of view {view!r}")
        return view if self.compares_bicubic else "probe_dsr"

    def _degraded_key(self, probe, dsr_fingerprint: str) -> str:
        """A low-resolution probe's cache key: how it was degraded, the DSR that brought it back, its content."""
        degrade = "vlr-file" if probe.vlr is not None else f"area{self.protocol.vlr_size}"
        if probe.vlr is None and self._aligning() and self.aligner.found(probe.hr.path):
            degrade = f"{self.aligner.id}:{degrade}"  # degraded from the aligned crop
        return degraded_key(dsr_fingerprint, degrade, file_digest(probe.source.path))

    def _bicubic_pixels(self, i: int) -> torch.Tensor:
        out, failures = self._bicubic_outputs()
        if i in failures:
            raise DecodeError(failures[i].removeprefix("unreadable: "))
        return out[i].float()

    def embeddings(self, role: str = "model", view: str = "probe_dsr") -> Embeddings:
        """Raw embeddings of one view for one model, rows aligned with the protocol."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        return self._embed_view(role, view)

    def _embed_view(self, role: str, view: str, dist: Distributed | None = None) -> Embeddings:
        if view == "probe_bicubic" and not self.compares_bicubic:
            return self._embed_view(role, "probe_dsr", dist)  # the probes' DSR is bicubic
        key = (role, view)
        if key not in self._embeddings:
            if (view in ("probe_dsr", "probe_bicubic") and self._dsr_out is None and self._bicubic_out is None
                    and self._stashes_lowres):
                self._embed_view(role, "probe_hr", dist)  # its decode feeds the DSR pass
            proto = self.protocol
            subjects = [r.subject for r in proto.gallery] if view == "gallery" else proto.probe_subjects
            if self._aligning():  # landmarks first (batched): the keys of aligned images depend on them
                self.aligner.prepare([r.path for r in proto.gallery] if view == "gallery" else
                                     [p.hr.path for p in proto.probes if p.hr is not None and
                                      (view == "probe_hr" or p.vlr is None or not self.probes_need_dsr)],
                                     dist=dist)
            items = self._items(view)
            raw, failures = self.embedder(role).embed(items, f"embedding {view.replace('_', ' ')} [{role}]", dist)
            if self._aligning():
                self.aligner.release()
            failures = {i: why for i, why in failures.items() if items[i].key != "none"}
            self._embeddings[key] = Embeddings(raw, np.asarray(subjects, dtype=str), failures)
        return self._embeddings[key]

    def expect_thresholds(self, thresholds) -> None:
        """Thresholds the checks will ask about, counted in the matching pass of evaluations not
        built yet (an evaluation asked about another one makes one more pass)."""
        self.config.thresholds = tuple(sorted(set(self.config.thresholds) | {float(t) for t in thresholds}))

    def evaluation(self, role: str = "model", view: str = "probe_dsr") -> Evaluation:
        """Gallery matching for one model: HR templates vs DSR probes, plus each probe's own HR.
        ``view="probe_bicubic"``: the same probes through plain bicubic instead (the DSR's baseline)."""
        view = self._probe_view(view, "evaluation")
        memo = role if view == "probe_dsr" else (role, view)
        if memo not in self._evaluations:
            gallery = self.embeddings(role, "gallery")
            probes = self.embeddings(role, view)
            # A probe at full resolution IS its own HR image: comparing the two would report a
            # paired similarity of 1 by construction, so such probes have no HR twin to pair with.
            probe_hr = self.embeddings(role, "probe_hr").raw if self.probes_need_dsr else None
            if not gallery.valid.any():
                if len(gallery.failures) < len(gallery.raw):  # decoded, yet no finite embedding
                    raise FacediagError("the model returns NaN or Inf for every gallery image: its weights are "
                                        "broken (weights-integrity names the tensors)")
                raise FacediagError("no gallery image could be read")
            self._evaluations[memo] = build_evaluation(gallery.raw, gallery.subjects, probes.raw,
                                                       probes.subjects, probe_hr, thresholds=self.config.thresholds,
                                                       device=str(self.device), index=self.config.index)
        return self._evaluations[memo]

    # ---------------------------------------------------- raw pixel access
    def pixel_fingerprints(self, view: str = "gallery") -> Fingerprints:
        """Compact leakage fingerprints (data.pixels.Fingerprints) of a view, once per run: taken
        from the embedding pass's decode where it ran, else decoded here (once). ``probe_hr`` uses
        each probe's own HR image, or its VLR file when it has none."""
        if view not in self._fingerprints:
            recs = (list(self.protocol.gallery) if view == "gallery"
                    else [p.hr if p.hr is not None else p.vlr for p in self.protocol.probes])
            self._fingerprints[view] = self._tap.fingerprints(recs)
        return self._fingerprints[view]

    def train_fingerprints(self) -> Fingerprints | None:
        """Leakage fingerprints of the training root's HR images (None without --train-root): no
        embedding pass decodes them, so one streaming pass does (data.pixels.fingerprint_files),
        and the thumbnails are kept in the cache store by file content: a second run hashes the
        files but decodes none."""
        if self.train_index is None:
            return None
        if "train" not in self._fingerprints:
            known = keep = None
            if self.config.use_cache:
                store = EmbeddingCache(self.config.cache_dir or default_cache_dir())
                space = store.namespace(f"leakage-thumbnail|{THUMB_SIZE}x{THUMB_SIZE}|margin {THUMB_MARGIN}")
                dim = THUMB_SIZE * THUMB_SIZE

                def known(digests):
                    hits = store.get_many(space, [d.hex() for d in digests], dim)
                    return {bytes.fromhex(k): v.astype(np.float16) for k, v in hits.items()}

                def keep(thumbs):
                    store.put_many(space, {d.hex(): t.astype(np.float32) for d, t in thumbs.items()})
            self._fingerprints["train"] = fingerprint_files(self.train_index.hr, known=known, keep=keep,
                                                            progress=self.progress)
        return self._fingerprints["train"]

    def grey_canvas(self, record) -> np.ndarray:
        """The 112×112 grey canvas of one image, for the exact leakage test on candidates only."""
        return grey_canvas(record)

    def sample_pixels(self, max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
                      per_subject: int = PIXEL_SAMPLE_PER_SUBJECT) -> Sample:
        """A bounded sample of gallery pixels for checks that score altered inputs (data.pixels.sample),
        aligned under --align (as given while "auto" is being settled: that is what it measures).
        Unaligned, an image the embedding pass decoded is not decoded again, nor one a check sampled."""
        if self._align == "mtcnn":
            self.aligner.prepare([r.path for r in self.protocol.gallery])  # the gallery needs them anyway
            return sample(self.protocol.gallery, max_subjects, per_subject, load=self.aligner.load)
        return sample(self.protocol.gallery, max_subjects, per_subject, load=self._sample_load)

    def embed_sample(self, role: str, pixel_sample: Sample) -> np.ndarray:
        """Raw embeddings of a sample's images as the engine embeds them (unaltered): served from
        this run's gallery embeddings when they exist, else embedded from the sample's pixels
        (no second decode) and kept for the gallery view. A dynamically quantized model embeds
        the sample as one batch of its own, as it does the altered inputs."""
        if _dynamic_int8(self.model(role)):  # activations quantized per batch: the sample's own batch
            return self.embed_pixels(role, pixel_sample.pixels)
        items = [Item(self._hr_key(rec.path), _loader(pixel_sample.pixels.__getitem__, i))
                 for i, rec in enumerate(pixel_sample.records)]
        raw, _ = self.embedder(role).embed(items, f"embedding the preprocessing sample [{role}]")
        return raw

    def thumbnail(self, view: str, row: int) -> str | None:
        """A small JPEG data URI of one image of a view as the model saw it (a probe after its
        degradation and DSR), for reports that show faces; None when it cannot be read."""
        probe = self.protocol.probes[row] if view != "gallery" else None
        if probe is not None and probe.hr is None and not (view == "probe_dsr" and self.probes_need_dsr):
            return None  # a VLR-only probe has no HR image to show
        try:
            if view == "gallery":
                img = self._face(self.protocol.gallery[row].path)()
            elif view == "probe_dsr" and self.probes_need_dsr:
                img = self._probe_pixels(row)
            else:
                img = self._face(probe.hr.path)()
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
        sizes = (header_size(rec.path) for rec in self.index.hr[:limit])
        return [s for s in sizes if s is not None]  # unreadable headers are skipped, never raised

    def probe_quality(self, view: str = "probe_dsr") -> tuple[np.ndarray, np.ndarray]:
        """PSNR (dB) and SSIM against its own HR image (as the model sees it) of each probe of the
        quality sample (QUALITY_SAMPLE at most, evenly spread) through the DSR (``probe_dsr``) or
        plain bicubic (``probe_bicubic``): (protocol rows, ``[n, 2]``; NaN where unreadable).

        From the outputs and HR pixels this run already holds, an HR image decoded only if no pass
        decoded it this run (under torchrun: other ranks' shares, on rank 0). Kept in the cache store
        by the keys of the view's embeddings and the HR image's, so a second run computes none.
        Raises ImportError without scikit-image (metrics.image_quality)."""
        from facediag.metrics import image_quality
        from facediag.models.dsr import BicubicDSR

        if not image_quality.available():
            raise ImportError("scikit-image is not installed (pip install -e \".[dev]\" or scikit-image>=0.22)")
        view = self._probe_view(view, "image quality")
        rows = np.array(sorted(self._quality_rows) if self.probes_need_dsr else [], dtype=int)
        if view not in self._quality:
            probes = self.protocol.probes
            fp = self.dsr.fingerprint if view == "probe_dsr" else BicubicDSR.fingerprint
            keys = [f"{self._degraded_key(probes[i], fp)}|vs|{self._hr_key(probes[i].hr.path)}" for i in rows]
            store = EmbeddingCache(self.config.cache_dir or default_cache_dir()) if self.config.use_cache else None
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
                out, failures = self._dsr_outputs() if view == "probe_dsr" else self._bicubic_outputs()
                todo = [j for j in todo if rows[j] not in failures]
                refs = {j: self._quality_reference(int(rows[j])) for j in todo}
                todo = [j for j in todo if refs[j] is not None]
                if todo:
                    # numpy, not torch, gathers the float16 images: one thread, no pool to wake for a copy
                    got = image_quality.psnr_ssim(out.numpy()[rows[todo]], np.stack([refs[j].numpy() for j in todo]))
                    values[todo] = got = got.astype(np.float32)  # as the store keeps them: warm runs agree
                    if store:
                        store.put_many(space, {keys[j]: v for j, v in zip(todo, got)})
            self._quality[view] = values
        return rows, self._quality[view]

    def _quality_reference(self, row: int) -> torch.Tensor | None:
        """A probe's HR image as the model sees it, for PSNR/SSIM: kept from this run's decode, else
        decoded now (and kept for the other view)."""
        img = self._quality_hr.get(row)
        if img is None:
            try:
                img = self._quality_hr[row] = self._face(self.protocol.probes[row].hr.path)().half()
            except (DecodeError, OSError):
                return None
        return img

    def embed_pixels(self, role: str, pixels01: torch.Tensor, normalization: Callable | None = None) -> np.ndarray:
        """Raw embeddings of given pixels, bypassing the cache (inputs altered on purpose)."""
        emb = self.embedder(role)
        out = [emb.forward(pixels01[s:s + emb.batch_size], **({"normalization": normalization} if normalization else {}))
               for s in range(0, len(pixels01), emb.batch_size)]
        return np.concatenate(out)

    def for_role(self, role: str) -> "RoleView":
        """This session as the checks see it when they judge ``role`` (see RoleView)."""
        return RoleView(self, role)

    # ------------------------------------------------------------ requirements
    def available(self, requirement: str, role: str = "model") -> str | None:
        """None when the input a check of ``role`` requires is there, else why it is not."""
        if requirement == "baseline":
            return None if self.has_role("baseline") else "no --baseline-weights given"
        if requirement == "head":
            loaded = self.model(role)
            if loaded.head is not None:
                return None
            return ("an ONNX graph carries no ArcFace/classifier head" if loaded.format == ONNX_FORMAT
                    else "the checkpoint has no ArcFace/classifier head")
        if requirement == "state_dict":  # an EdgeFace state_dict: its variant layout and init constants
            preset = preset_of(self.model(role))
            if not preset.is_edgeface:
                return (f"not an EdgeFace model (card: {preset.name}): the EdgeFace variant layout and init "
                        "constants do not apply")
            return None if self.model(role).format != ONNX_FORMAT else \
                "an ONNX graph: no EdgeFace state_dict to match keys against or to find init constants in"
        if requirement == "pairs":
            if not self.probes_need_dsr:
                return "probes are at full resolution: each is its own HR image, so there is no pair to compare"
            return None if any(p.hr is not None for p in self.protocol.probes) else \
                "no probe has its own HR image (paired similarity needs HR/VLR pairs)"
        if requirement == "dsr":  # a DSR other than bicubic, to judge against bicubic
            if not self.probes_need_dsr:
                return "probes are at full resolution: no DSR runs"
            return None if self.compares_bicubic else "the probes go through plain bicubic (no --dsr given)"
        return f"unknown requirement {requirement!r}"


class RoleView:
    """A Session in which role "model" means ``role`` and no other model is visible.

    Checks judge role "model"; a view lets them judge another model of the same Session,
    over the same protocol, DSR outputs and embeddings (compare runs the suite on both
    sides of one Session this way). The other role is hidden so that a check such as
    pretrained-baseline cannot quietly compare a model with the wrong reference. Anything
    not about a model (protocol, index, pixels, dataset_info, ...) passes through.
    """

    def __init__(self, session: Session, role: str):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        self.session = session
        self.role = role

    def _map(self, role: str) -> str:
        if role != "model":
            raise FacediagError(f"only the {self.role} is visible here (as 'model'), not the {role}")
        return self.role

    def has_role(self, role: str) -> bool:
        return role == "model" and self.session.has_role(self.role)

    def model(self, role: str = "model") -> LoadedModel:
        return self.session.model(self._map(role))

    def embedder(self, role: str = "model") -> Embedder:
        return self.session.embedder(self._map(role))

    def embeddings(self, role: str = "model", view: str = "probe_dsr") -> Embeddings:
        return self.session.embeddings(self._map(role), view)

    def evaluation(self, role: str = "model", view: str = "probe_dsr") -> Evaluation:
        return self.session.evaluation(self._map(role), view)

    def embed_pixels(self, role: str, pixels01: torch.Tensor, normalization: Callable | None = None) -> np.ndarray:
        return self.session.embed_pixels(self._map(role), pixels01, normalization)

    def embed_sample(self, role: str, pixel_sample: Sample) -> np.ndarray:
        return self.session.embed_sample(self._map(role), pixel_sample)

    def available(self, requirement: str) -> str | None:
        if requirement == "baseline":
            return f"only the {self.role} is visible to this run (no baseline role)"
        return self.session.available(requirement, self.role)

    def __getattr__(self, name: str):
        return getattr(self.session, name)


def _dynamic_int8(loaded: LoadedModel) -> bool:
    """A dynamically quantized checkpoint: int8 kernels on CPU only, and its activations are
    quantized per batch, so an image's embedding depends on the batch it was embedded in."""
    return str(loaded.variant).endswith("_q")


def _alignment_notes(align: dict | None) -> list[str]:
    if align is None:
        return []
    lines = [align["note"]] if align.get("note") else []
    if align["method"] == "mtcnn":
        line = (f"HR images aligned on the fly to the ArcFace template (MTCNN, {align['id']}): "
                f"{align['aligned']} aligned")
        if align["no_face"]:
            line += f", {align['no_face']} with no face found kept as given"
        lines.append(line)
    return lines


def _loader(fn, arg):
    return lambda: fn(arg)


def _missing():
    raise DecodeError("no such image")
