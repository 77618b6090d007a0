"""Session: the one place checks get data, models and embeddings from.

Everything is lazy and computed once per run: the dataset index, the gallery/probe
protocol, the DSR outputs for the probes (shared by every model), and per model the raw
and normalised embeddings of each view and the gallery-matching Evaluation. Checks read
the Session (through a RoleView, the members they may reach); they never open files or
build models themselves.

A Session is three rooms, each with one concern, and the interface over them:

- ``data`` (Data): roots, indexes, protocol, unusable files, the alignment method;
- ``pixels`` (Pixels): every image as a model sees it, decoded once; DSR and bicubic
  outputs, pixel samples, leakage fingerprints, thumbnails, header sizes, probe quality;
- ``runtime`` (Runtime): models by role, embedders, embeddings, evaluations.

Under torchrun, ``prepare()`` computes all of that up front on every rank in lockstep, each
rank its shard of the images; rank 0 alone then runs the checks over the memoised results.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from facediag.data.aligner import Aligner
from facediag.data.groups import GroupAssignment
from facediag.data.index import DatasetIndex
from facediag.data.pixels import PIXEL_SAMPLE_PER_SUBJECT, PIXEL_SAMPLE_SUBJECTS, Fingerprints, Sample
from facediag.data.protocol import Protocol
from facediag.distributed import Distributed
from facediag.embed import Embedder
from facediag.models.loaded import LoadedModel
from facediag.protocols.gallery import Evaluation
from facediag.errors import FacediagError
from facediag.metrics.operating_point import criterion_key, fix_threshold, fmr_refusal, parse_criterion
from facediag.session.data import Data, SessionConfig, alignment_notes, dev_config, has_dev
from facediag.session.pixels import Pixels
from facediag.session.runtime import Embeddings, Runtime
from facediag.session.view import RoleView


class _DevRooms:
    """The development set's data and pixel rooms (a Session over ``dev_config``, whose own runtime
    is never used), built on first use and shared by every Session ``with_models`` makes, as the
    data's rooms are."""

    def __init__(self):
        self._base: Session | None = None

    def base(self, owner: Session) -> Session | None:
        if self._base is None and has_dev(owner.config):
            dsr = owner.pixels.dsr if owner.probes_need_dsr else None  # one DSR loaded for both sets
            self._base = Session(dev_config(owner.config), models={}, dist=owner.dist, dsr=dsr)
        return self._base


class Session:
    """Lazily built run state over one data set, for the models of its roles.

    Parameters
    ----------
    config : SessionConfig
        The data, the models' files (unless given in ``models``) and how to run them.
    models : dict, optional
        Loaded models by role ("model", "baseline") to use instead of loading the config's
        weights: models.loaded.LoadedModel objects, e.g. ``LoadedModel.from_module`` of a module a
        notebook or a training loop holds. One whose ``sha256`` is None is never cached.
    embedders : dict, optional
        Shared between Sessions over the same models: one Embedder per role, built by whichever
        session asks first, so an image is embedded once per model across them (e.g. one
        session per probe resolution, one HR gallery embedding per model).
    dist : Distributed, optional
        The torchrun environment (facediag.distributed); by default a world of one.
    aligner : Aligner, optional
        Shares one Aligner's landmarks between sessions over the same images.
    protocol : Protocol, optional
        A protocol the caller built already (a trainer's split), instead of indexing the roots.
    dsr : optional
        A DSR module the caller loaded already, instead of the config's.
    keep_pixels : bool
        Keep every decoded HR image in memory (Pixels), so that Sessions made from this one by
        ``with_models`` decode nothing again.
    """

    def __init__(self, config: SessionConfig, *, models: dict[str, LoadedModel] | None = None,
                 embedders: dict[str, Embedder] | None = None, dist: Distributed | None = None,
                 aligner: Aligner | None = None, protocol: Protocol | None = None, dsr=None,
                 keep_pixels: bool = False):
        self.data = Data(config, dist or Distributed(), protocol)
        self.pixels = Pixels(self.data, aligner=aligner, dsr=dsr, keep_pixels=keep_pixels)
        self.runtime = Runtime(self.data, self.pixels, models, embedders)
        self._dev_rooms = _DevRooms()
        self._dev: Session | None = None
        self._dev_points: dict[tuple[str, str], dict] = {}

    def with_models(self, models: dict[str, LoadedModel],
                    embedders: dict[str, Embedder] | None = None) -> Session:
        """This Session's data and pixels, with other models: a new runtime room.

        The index, protocol, alignment, DSR and bicubic outputs, leakage fingerprints and kept
        pixels (``keep_pixels``) are this Session's, shared; the models, embedders, embeddings
        and evaluations are the new Session's own. For a model that changes in memory (a
        training loop evaluating every N steps), call it each time with the model as it is:
        nothing embedded before is served again, and with ``keep_pixels`` no image is decoded
        again either. Only the given roles exist; the config's weights are not loaded.
        ``embedders``: Embedders to use by role (as Session takes them), e.g. one kept across
        calls for a model that does not change, or one that feeds a live module its own way."""
        session = object.__new__(type(self))  # the rooms given, not built from a config
        session.data, session.pixels = self.data, self.pixels
        session.runtime = Runtime(self.data, self.pixels, models, embedders, from_config=False)
        session._dev_rooms, session._dev, session._dev_points = self._dev_rooms, None, {}  # the dev set's rooms too
        return session

    @property
    def config(self) -> SessionConfig:
        return self.data.config

    @property
    def dist(self) -> Distributed:
        return self.data.dist

    def for_role(self, role: str) -> RoleView:
        """This session as the checks see it when they judge ``role`` (see RoleView)."""
        return RoleView(self, role)

    # ------------------------------------------------------------------ data
    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def progress(self) -> bool:
        return self.data.progress

    @property
    def roots(self) -> tuple:
        return self.data.roots

    @property
    def index(self) -> DatasetIndex:
        return self.data.index

    @property
    def probe_index(self) -> DatasetIndex | None:
        return self.data.probe_index

    @property
    def train_index(self) -> DatasetIndex | None:
        return self.data.train_index

    @property
    def distractor_index(self) -> DatasetIndex | None:
        return self.data.distractor_index

    @property
    def protocol(self) -> Protocol:
        return self.data.protocol

    @property
    def probes_need_dsr(self) -> bool:
        return self.data.probes_need_dsr

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Files that could not be used, with why: indexing problems plus unreadable images."""
        return [*self.data.index_problems(), *self.runtime.unreadable()]

    def dataset_info(self) -> dict[str, Any]:
        info = self.data.dataset_info(dsr=self.pixels.dsr_name, problems=self.problems,
                                      alignment=self.pixels.alignment_info())
        if has_dev(self.config):  # the data thresholds were fixed on, beside the data they are judged on
            info["dev"] = self.dev_info()
            info["notes"] += info["dev"]["notes"]
        return info

    def group_assignment(self) -> GroupAssignment | None:
        """The --groups file matched to the protocol (data.groups.assign); None without one."""
        return self.data.group_assignment

    def check_groups(self) -> None:
        """A groups file that names none of the data's subjects is bad input: refused (one line)
        before any work, not an ERROR at the end."""
        self.group_assignment()

    # ------------------------------------------------------------- alignment
    @property
    def alignment(self) -> str | None:
        """"mtcnn" or "none": how HR images are brought to 112 (None: "auto", not settled yet)."""
        return self.data.alignment

    def settle_alignment(self, method: str, note: str) -> None:
        """Decide "auto" (the runner does, from the alignment check): before anything is embedded."""
        if method not in ("none", "mtcnn"):
            raise ValueError(f"unknown alignment {method!r}")
        if self.runtime.embedded or self.pixels.dsr_out is not None:
            raise RuntimeError("alignment settled after embedding started")
        self.data.settle_alignment(method, note)

    @property
    def aligner(self) -> Aligner:
        return self.pixels.aligner

    def alignment_info(self) -> dict[str, Any] | None:
        return self.pixels.alignment_info()

    def alignment_notes(self) -> list[str]:
        """The report's lines on alignment: how auto decided, and how many faces were aligned."""
        return alignment_notes(self.alignment_info())

    # ---------------------------------------------------------------- pixels
    @property
    def dsr(self):
        return self.pixels.dsr

    @property
    def compares_bicubic(self) -> bool:
        return self.pixels.compares_bicubic

    def sample_pixels(self, max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
                      per_subject: int = PIXEL_SAMPLE_PER_SUBJECT) -> Sample:
        return self.pixels.sample_pixels(max_subjects, per_subject)

    def pixel_fingerprints(self, view: str = "gallery") -> Fingerprints:
        return self.pixels.pixel_fingerprints(view)

    def train_fingerprints(self) -> Fingerprints | None:
        return self.pixels.train_fingerprints()

    def grey_canvas(self, record) -> np.ndarray:
        return self.pixels.grey_canvas(record)

    def thumbnail(self, view: str, row: int) -> str | None:
        return self.pixels.thumbnail(view, row)

    def thumbnail_file(self, path) -> str | None:
        return self.pixels.thumbnail_file(path)

    def image_sizes(self, limit: int = 2000) -> list[tuple[int, int, str]]:
        return self.pixels.image_sizes(limit)

    def probe_quality(self, view: str = "probe_dsr") -> tuple[np.ndarray, np.ndarray]:
        return self.pixels.probe_quality(view)

    # ---------------------------------------------------------------- models
    def has_role(self, role: str) -> bool:
        return self.runtime.has_role(role)

    def model(self, role: str = "model") -> LoadedModel:
        return self.runtime.model(role)

    def check_card(self, role: str = "model") -> None:
        self.runtime.check_card(role)

    def embedder(self, role: str = "model") -> Embedder:
        return self.runtime.embedder(role)

    def prepare(self, roles: Sequence[str] | None = None) -> None:
        self.runtime.prepare(roles)
        if self.dev is not None:  # under torchrun the development set is sharded like the data
            self.dev.prepare(roles)

    @property
    def rank_counts(self) -> list[dict] | None:
        return self.runtime.rank_counts

    def embeddings(self, role: str = "model", view: str = "probe_dsr") -> Embeddings:
        return self.runtime.embeddings(role, view)

    def evaluation(self, role: str = "model", view: str = "probe_dsr") -> Evaluation:
        return self.runtime.evaluation(role, view)

    def expect_thresholds(self, thresholds) -> None:
        self.runtime.expect_thresholds(thresholds)

    def embed_pixels(self, role: str, pixels01: torch.Tensor, normalization: Callable | None = None) -> np.ndarray:
        return self.runtime.embed_pixels(role, pixels01, normalization)

    def embed_sample(self, role: str, pixel_sample: Sample) -> np.ndarray:
        return self.runtime.embed_sample(role, pixel_sample)

    def available(self, requirement: str, role: str = "model") -> str | None:
        if requirement == "dev":
            return None if has_dev(self.config) else (
                "no development set (--dev-data, or --dev-gallery-root and --dev-probe-root): a threshold is fixed, "
                "and a cosine calibrated to a match probability, only on other data than it is judged on")
        return self.runtime.available(requirement, role)

    # ------------------------------------------------------ development set
    @property
    def dev(self) -> Session | None:
        """The development set (config ``dev_*``) as a Session over this one's models, embedded by
        the same Embedders (the same engine and cache: each image once per model per run), read,
        degraded and super-resolved as this session's data is; None without one."""
        if self._dev is None:
            base = self._dev_rooms.base(self)
            if base is None:
                return None
            self._dev = base.with_models({r: self.model(r) for r in self.runtime.roles()}, self.runtime.embedders)
        if self._dev.alignment is None and self.alignment is not None:  # --align auto: as this data was decided
            self._dev.settle_alignment(self.alignment, self.data.align_note or "")
        return self._dev

    def dev_evaluation(self, role: str = "model") -> Evaluation | None:
        """The development set's gallery matching for a role's model (None without a dev set)."""
        return None if self.dev is None else self.dev.evaluation(role)

    def dev_thresholds(self, role: str = "model", criteria: Sequence[str] | None = None) -> dict[str, dict] | None:
        """Thresholds fixed on the development set for a role's model, by criterion (default: the
        config's ``dev_criteria``), each with its provenance: ``{"eer": {"threshold": t, "criterion":
        "eer", "set": "dev", ...}, "fmr=0.001": {"threshold": t, "criterion": "fmr", "fmr_target":
        0.001, "set": "dev", ...}, ...}`` (metrics.operating_point.OperatingPoint.as_dict; an FMR
        target the dev impostors cannot support has threshold None and the reason). None without a
        development set. Each is computed once per role."""
        if self.dev is None:
            return None
        out = {}
        for text in (criteria if criteria is not None else self.config.dev_criteria):
            try:
                criterion, target = parse_criterion(text)
            except ValueError as exc:
                raise FacediagError(str(exc)) from None
            key = criterion_key(criterion, target)
            if (role, key) not in self._dev_points:
                ev = self.dev.evaluation(role)
                self._dev_points[role, key] = fix_threshold(ev.genuine_scores(), ev.impostors, criterion, target,
                                                            set_name="dev").as_dict()
            out[key] = self._dev_points[role, key]
        return out

    def expect_dev_criteria(self, criteria: Sequence[str]) -> None:
        """Criteria dev_thresholds will be asked for by default (run_suite: the suite's), checked now."""
        keys = []
        for text in criteria:
            try:
                keys.append(criterion_key(*parse_criterion(text)))
            except ValueError as exc:
                raise FacediagError(str(exc)) from None
        self.config.dev_criteria = tuple(dict.fromkeys([*self.config.dev_criteria, *keys]))

    def dev_impostor_pairs(self) -> int | None:
        """Impostor comparisons the development set's protocol makes (every probe against every other
        person's template), from its index alone: what an FMR target needs, known before any embedding."""
        if self.dev is None:
            return None
        proto = self.dev.protocol
        enrolled = set(proto.gallery_subjects)
        mated = sum(1 for s in proto.probe_subjects if s in enrolled)
        return len(proto.probes) * len(enrolled) - mated

    def check_dev_target(self, fmr_target: float) -> None:
        """Refuse, before any work, an FMR target the development set's impostor pairs cannot support."""
        n = self.dev_impostor_pairs()
        if n is None:
            raise FacediagError("a threshold fixed on the development set needs one: give --dev-data, or "
                                "--dev-gallery-root and --dev-probe-root")
        why = fmr_refusal(n, fmr_target)
        if why:
            raise FacediagError(f"the development set cannot fix a threshold at FMR {fmr_target:g}: {why}")

    def dev_info(self) -> dict[str, Any] | None:
        """What a report says of the development set: roots, protocol, counts, fingerprint, and the
        people (by subject id) it shares with the evaluation data."""
        if self.dev is None:
            return None
        full = self.dev.dataset_info()
        info = {k: full[k] for k in ("root", "layout", "probe_root", "protocol", "counts", "fingerprint") if k in full}
        info["problems"] = full.get("problems", [])
        shared = sorted(set(self.dev.index.subjects) & set(self.index.subjects))
        info["shared_subjects"] = len(shared)
        info["notes"] = [f"{len(shared)} subject id(s) appear in both the development and the evaluation data "
                         f"(e.g. {', '.join(shared[:3])}): thresholds fixed on the one are not independent of "
                         "the other"] if shared else []
        return info
