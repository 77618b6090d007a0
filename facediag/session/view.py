"""RoleView: what a check (and run_suite around it) may reach of a Session, for one role.

Everything a check reads is listed here, by name and type; anything else of the Session (its
rooms, its aligner, its caches) is not reachable through a view, so a check cannot come to
depend on it unseen. A Session offers the same members, and more for the commands that build it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from facediag.data.groups import GroupAssignment
from facediag.data.index import DatasetIndex
from facediag.data.pixels import PIXEL_SAMPLE_PER_SUBJECT, PIXEL_SAMPLE_SUBJECTS, Fingerprints, Sample
from facediag.data.protocol import Protocol
from facediag.embed import Embedder
from facediag.errors import FacediagError
from facediag.models.loaded import LoadedModel
from facediag.protocols.gallery import Evaluation
from facediag.session.runtime import ROLES, Embeddings


class RoleView:
    """A Session in which role "model" means ``role`` and no other model is visible.

    Checks judge role "model"; a view lets them judge another model of the same Session,
    over the same protocol, DSR outputs and embeddings (compare runs the suite on both
    sides of one Session this way). The other role is hidden so that a check such as
    pretrained-baseline cannot quietly compare a model with the wrong reference. What is
    not about a model (protocol, index, pixels, dataset_info, ...) is the Session's.

    ``session`` is the Session viewed (not imported here by name: the Session builds its
    views, and the import would be a cycle).
    """

    __slots__ = ("session", "role")

    def __init__(self, session, role: str):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        self.session = session
        self.role = role

    def _map(self, role: str) -> str:
        if role != "model":
            raise FacediagError(f"only the {self.role} is visible here (as 'model'), not the {role}")
        return self.role

    # ------------------------------------------------------------ the model
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

    def expect_thresholds(self, thresholds) -> None:
        self.session.expect_thresholds(thresholds)

    # --------------------------------------------------- the development set
    def dev_thresholds(self, role: str = "model", criteria=None) -> dict[str, dict] | None:
        """Thresholds fixed on the development set for the model (Session.dev_thresholds): None
        without one, else ``{"eer": {"threshold": t, "criterion": "eer", "set": "dev", ...},
        "fmr=0.001": {..., "fmr_target": 0.001, ...}, ...}``."""
        return self.session.dev_thresholds(self._map(role), criteria)

    def dev_evaluation(self, role: str = "model") -> Evaluation | None:
        """The development set's gallery matching for the model (None without a development set)."""
        return self.session.dev_evaluation(self._map(role))

    def expect_dev_criteria(self, criteria) -> None:
        self.session.expect_dev_criteria(criteria)

    def check_dev_target(self, fmr_target: float) -> None:
        self.session.check_dev_target(fmr_target)

    # ------------------------------------------------------------- the data
    @property
    def device(self) -> torch.device:
        return self.session.device

    @property
    def index(self) -> DatasetIndex:
        return self.session.index

    @property
    def train_index(self) -> DatasetIndex | None:
        return self.session.train_index

    @property
    def protocol(self) -> Protocol:
        return self.session.protocol

    @property
    def probes_need_dsr(self) -> bool:
        return self.session.probes_need_dsr

    @property
    def dsr(self):
        return self.session.dsr

    @property
    def alignment(self) -> str | None:
        return self.session.alignment

    def settle_alignment(self, method: str, note: str) -> None:
        self.session.settle_alignment(method, note)

    def dataset_info(self) -> dict:
        return self.session.dataset_info()

    def group_assignment(self) -> GroupAssignment | None:
        return self.session.group_assignment()

    # ----------------------------------------------------------- the pixels
    def sample_pixels(self, max_subjects: int = PIXEL_SAMPLE_SUBJECTS,
                      per_subject: int = PIXEL_SAMPLE_PER_SUBJECT) -> Sample:
        return self.session.sample_pixels(max_subjects, per_subject)

    def pixel_fingerprints(self, view: str = "gallery") -> Fingerprints:
        return self.session.pixel_fingerprints(view)

    def train_fingerprints(self) -> Fingerprints | None:
        return self.session.train_fingerprints()

    def grey_canvas(self, record) -> np.ndarray:
        return self.session.grey_canvas(record)

    def thumbnail(self, view: str, row: int) -> str | None:
        return self.session.thumbnail(view, row)

    def thumbnail_file(self, path) -> str | None:
        return self.session.thumbnail_file(path)

    def image_sizes(self, limit: int = 2000) -> list[tuple[int, int, str]]:
        return self.session.image_sizes(limit)

    def probe_quality(self, view: str = "probe_dsr") -> tuple[np.ndarray, np.ndarray]:
        return self.session.probe_quality(view)
