"""The data room of a Session: the roots, their indexes, the gallery/probe protocol, what
could not be used, and how HR images are aligned (the one place that state is read).

Nothing here decodes a pixel or runs a model: those are the pixel and runtime rooms.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from facediag.cache import EmbeddingCache, default_cache_dir
from facediag.data.aligner import ALIGN_CHOICES
from facediag.data.degradation import check_mode as check_degradation
from facediag.data.degradation import describe as describe_degradation
from facediag.data.degradation import key_token
from facediag.data.detect import require_extra
from facediag.data.groups import GroupAssignment, Groups, assign, read_groups
from facediag.data.index import DEFAULT_SUBJECT_REGEX, DatasetIndex, find_split_roots, index_dataset
from facediag.data.protocol import Protocol, build_protocol, probes_from_hr
from facediag.distributed import Distributed
from facediag.errors import FacediagError
from facediag.metrics.operating_point import DEFAULT_CRITERIA
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.protocols.index import require_extra as require_index


@dataclass
class SessionConfig:
    weights: str | Path | None = None
    data: str | Path | None = None  # one root, split per subject
    gallery_root: str | Path | None = None  # or two roots
    probe_root: str | Path | None = None
    train_root: str | Path | None = None  # training data, for subject-overlap
    distractors: str | Path | None = None  # probes of people in no gallery (open set, watch lists)
    # A development set, evaluated by the same models the same way (dev_config): thresholds are fixed
    # on it and applied to the data above (metrics.operating_point). One root, or two.
    dev_data: str | Path | None = None
    dev_gallery_root: str | Path | None = None
    dev_probe_root: str | Path | None = None
    # What dev_thresholds fixes on it: "eer", "min-hter", "fmr=TARGET" (run_suite adds the suite's).
    dev_criteria: tuple = DEFAULT_CRITERIA
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
    # How a probe without a VLR file is brought to vlr_size: "bicubic" (area-downsampled, the
    # field's synthetic probe) or "realistic" (blur, noise, JPEG): facediag.data.degradation.
    degrade: str = "bicubic"
    # Ignore real VLR files: every probe made from its own HR image by ``degrade`` at vlr_size
    # (data.protocol.probes_from_hr), as a synthetic benchmark would; bench accuracy compares the two.
    probes_from_hr: bool = False
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
    # Demographic groups (data.groups): a CSV of subject[,image] and attribute columns, or None.
    groups: str | Path | None = None
    # Acceptance thresholds the checks will ask about: their false accepts are counted in the one
    # matching pass (another threshold costs one more pass). run_suite sets them from the suite.
    thresholds: tuple = (DEFAULT_THRESHOLD,)


class Data:
    """Roots, indexes and protocol of one run, built lazily and once; the alignment method.

    ``protocol``: one the caller built already (e.g. a trainer's subject-filtered split), used
    instead of indexing the roots."""

    def __init__(self, config: SessionConfig, dist: Distributed, protocol: Protocol | None = None):
        if config.data is None and config.gallery_root is None:
            raise FacediagError("no data: give --data ROOT, or --gallery-root and --probe-root")
        if (config.gallery_root is None) != (config.probe_root is None):
            raise FacediagError("--gallery-root and --probe-root go together")
        if config.align not in ALIGN_CHOICES:
            raise FacediagError(f"--align {config.align!r}: choose one of {', '.join(ALIGN_CHOICES)}")
        if config.align != "none":
            require_extra()  # the one-line install command, before any work
        require_index(config.index)  # likewise for --index faiss*
        check_degradation(config.degrade)
        check_dev_roots(config)
        self.config = config
        self.dist = dist
        # --groups is read (a malformed file refused, one line) before any work
        self.groups: Groups | None = read_groups(config.groups) if config.groups is not None else None
        if protocol is not None:  # in place of the cached property below
            self.protocol = probes_from_hr(protocol) if config.probes_from_hr else protocol
        # The alignment used: None while "auto" is not settled yet (settle_alignment).
        self._align: str | None = None if config.align == "auto" else config.align
        self.align_note: str | None = None

    @cached_property
    def device(self) -> torch.device:
        return self.dist.device(self.config.device)  # under torchrun, this rank's GPU

    @property
    def progress(self) -> bool:
        return self.config.progress and self.dist.main  # other ranks print nothing

    @cached_property
    def store(self) -> EmbeddingCache | None:
        """The on-disk store of what a run computes by content (embeddings, landmarks, leakage
        thumbnails, probe quality); None without the cache. Every room reads it from here."""
        c = self.config
        return EmbeddingCache(c.cache_dir or default_cache_dir()) if c.use_cache else None

    # ---------------------------------------------------------------- indexes
    @cached_property
    def roots(self) -> tuple:
        """(gallery or only root, probe root): --data holding split folders (train/ + val/, ...)
        counts as --gallery-root train/ --probe-root val/."""
        c = self.config
        split = find_split_roots(c.data) if c.gallery_root is None else None
        return (split.gallery, split.probe) if split else (c.gallery_root or c.data, c.probe_root)

    def _index(self, root: str | Path | None) -> DatasetIndex | None:
        """The index of one root as the config says to read it (None for no root)."""
        if not root:
            return None
        c = self.config
        return index_dataset(root, c.layout, c.subject_regex, allow_outside_root=c.allow_outside_root,
                             progress=c.progress)

    @cached_property
    def index(self) -> DatasetIndex:
        return self._index(self.roots[0])

    @cached_property
    def probe_index(self) -> DatasetIndex | None:
        return self._index(self.roots[1])

    @cached_property
    def train_index(self) -> DatasetIndex | None:
        return self._index(self.config.train_root)

    @cached_property
    def distractor_index(self) -> DatasetIndex | None:
        return self._index(self.config.distractors)

    @cached_property
    def protocol(self) -> Protocol:
        c = self.config
        proto = build_protocol(self.index, probe_index=self.probe_index, distractor_index=self.distractor_index,
                               gallery_per_subject=c.gallery_per_subject, vlr_size=c.vlr_size)
        return probes_from_hr(proto) if c.probes_from_hr else proto

    @cached_property
    def group_assignment(self) -> GroupAssignment | None:
        """The groups file matched to the protocol's probes and enrolled subjects (None without one)."""
        if self.groups is None:
            return None
        return assign(self.groups, self.protocol, [r for r in (*self.roots, self.config.distractors) if r])

    @property
    def probes_need_dsr(self) -> bool:
        return self.protocol.vlr_size is not None or any(p.vlr is not None for p in self.protocol.probes)

    @property
    def synthetic_probes(self) -> bool:
        """Whether some probe is made by degrading its HR image (no VLR file of its own)."""
        return self.protocol.vlr_size is not None and any(p.vlr is None for p in self.protocol.probes)

    def index_problems(self) -> list[tuple[str, str]]:
        """Files the indexes could not use, with why (the training root's are not the run's data)."""
        return [*self.index.problems, *(self.probe_index.problems if self.probe_index else []),
                *(self.distractor_index.problems if self.distractor_index else [])]

    def view_paths(self, view: str) -> list[str]:
        """The file behind each row of a view ("" for a probe with no HR image in probe_hr)."""
        if view == "gallery":
            return [str(r.path) for r in self.protocol.gallery]
        if view == "probe_hr":
            return [str(p.hr.path) if p.hr else "" for p in self.protocol.probes]
        return [str(p.source.path) for p in self.protocol.probes]

    def dataset_info(self, *, dsr: str | None, problems: list[tuple[str, str]],
                     alignment: dict[str, Any] | None) -> dict[str, Any]:
        """What a report says of the data, given what the other rooms know of it: the DSR's name
        (None at full resolution), every unusable file and the alignment (Session.dataset_info)."""
        proto = self.protocol
        info = {
            "root": str(self.index.root),
            "layout": self.index.layout,
            "probe_root": str(self.probe_index.root) if self.probe_index else None,
            "protocol": proto.description,
            "notes": list(proto.notes),  # what the protocol means for the result (split folders, ...)
            "vlr_size": proto.vlr_size,
            "dsr": dsr,
            "counts": {
                **self.index.counts(),
                "gallery_images": len(proto.gallery),
                "gallery_subjects": len(proto.gallery_subjects),
                "probes": len(proto.probes),
                "probe_subjects": len(set(proto.probe_subjects)),
            },
            "fingerprint": proto.fingerprint(),
            "problems": [{"path": p, "reason": r} for p, r in problems],
        }
        info["counts"]["problems"] = len(info["problems"])  # the list and its count always agree
        if alignment is not None:
            info["alignment"] = alignment
            if alignment["method"] == "mtcnn":  # aligned crops are other data than the files as given
                info["fingerprint"] = hashlib.sha256(f"{info['fingerprint']}|align={alignment['id']}".encode()
                                                     ).hexdigest()
            info["notes"] += alignment_notes(alignment)
        if self.synthetic_probes:
            info["degradation"] = describe_degradation(self.config.degrade)
        if self.synthetic_probes and self.config.degrade != "bicubic":
            # Other probes than the bicubic ones: a data fingerprint of their own (as aligned crops
            # have), so a realistic run is never gated against a bicubic baseline.
            info["fingerprint"] = hashlib.sha256(
                f"{info['fingerprint']}|degrade={key_token(self.config.degrade, proto.vlr_size)}".encode()).hexdigest()
            info["notes"].append(f"probes without a VLR file made by the {self.config.degrade} degradation at "
                                 f"{proto.vlr_size} px (blur, downsampling, Gaussian and Poisson noise, JPEG; every "
                                 "range under dataset.degradation), then brought back to 112")
        if self.config.index != "exact":  # rank-k as that index answers: say so where the data is described
            info["index"] = self.config.index
            info["notes"].append(f"candidate search by --index {self.config.index}: rank-k, CMC and open set as "
                                 "that index answers them (identification names its recall); verification exact")
        if self.groups is not None:  # who is in which demographic group: the file, by content
            info["groups"] = {"file": self.groups.path, "sha256": self.groups.sha256,
                              "attributes": {a: self.groups.values(a) for a in self.groups.attributes}}
        return info

    # -------------------------------------------------------------- alignment
    @property
    def alignment(self) -> str | None:
        """"mtcnn" or "none": how HR images are brought to 112 (None: "auto", not settled yet)."""
        return self._align

    @property
    def aligning(self) -> bool:
        """Whether HR images are aligned with MTCNN; raises while "auto" is not settled (nothing may
        be embedded before it is)."""
        if self._align is None:
            raise RuntimeError("--align auto is not settled: call settle_alignment before embedding")
        return self._align == "mtcnn"

    def settle_alignment(self, method: str, note: str) -> None:
        if method not in ("none", "mtcnn"):
            raise ValueError(f"unknown alignment {method!r}")
        self._align, self.align_note = method, note


def has_dev(config: SessionConfig) -> bool:
    """Whether the config names a development set."""
    return config.dev_data is not None or config.dev_gallery_root is not None


def check_dev_roots(config: SessionConfig) -> None:
    """The development set's options, before any work: one root or two, never the evaluation data."""
    if (config.dev_gallery_root is None) != (config.dev_probe_root is None):
        raise FacediagError("--dev-gallery-root and --dev-probe-root go together")
    if config.dev_data is not None and config.dev_gallery_root is not None:
        raise FacediagError("give the development set as --dev-data ROOT or as --dev-gallery-root and "
                            "--dev-probe-root, not both")
    dev = {Path(p).expanduser().resolve() for p in (config.dev_data, config.dev_gallery_root, config.dev_probe_root)
           if p is not None}
    evaluated = {Path(p).expanduser().resolve() for p in (config.data, config.gallery_root, config.probe_root)
                 if p is not None}
    if dev & evaluated:
        raise FacediagError(f"the development set is the evaluation data ({sorted(dev & evaluated)[0]}): thresholds "
                            "fixed on the data they are reported on overstate every deployment figure; give a "
                            "development set of other images")


def dev_config(config: SessionConfig) -> SessionConfig:
    """The development set's config: its roots in place of the data's, everything that decides how
    images are read, degraded, super-resolved and embedded the same (no training root, distractors or groups)."""
    return replace(config, data=config.dev_data, gallery_root=config.dev_gallery_root,
                   probe_root=config.dev_probe_root, dev_data=None, dev_gallery_root=None, dev_probe_root=None,
                   train_root=None, distractors=None, groups=None)  # the evaluation data's alone


def alignment_notes(align: dict | None) -> list[str]:
    """The report's lines on alignment: how auto decided, and how many faces were aligned."""
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
