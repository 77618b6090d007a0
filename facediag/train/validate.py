"""Validation of a model in training by gallery matching, with the code run-all's checks use.

Each call builds a Session around the in-memory model (the Session memoises embeddings
per run, and the weights have changed since the last call): the first over the protocol
and DSR the trainer built, the later ones from it by ``Session.with_models``, so the DSR
outputs of the probes, which do not depend on the model, are computed once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from facediag.data.protocol import Protocol
from facediag.protocols.gallery import headline_metrics
from facediag.metrics.identification import threshold_for_far
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.session import Session, SessionConfig

TARGET_FAR = 0.01  # threshold reported next to the fixed one: what the operating point should be


@dataclass
class InMemoryModel:
    """What Session expects of a loaded checkpoint. ``sha256=None``: weights that change
    during training have no stable fingerprint, so the embedding cache is bypassed."""

    model: torch.nn.Module
    variant: str
    sha256: str | None = None
    head: torch.Tensor | None = None


class Validator:
    """``validator(module, variant) -> metrics``: headline gallery-matching numbers."""

    def __init__(self, protocol: Protocol, root: Path, *, dsr, device: torch.device,
                 threshold: float = DEFAULT_THRESHOLD, batch_size: int = 64, amp: bool = False,
                 progress: bool = True, layout: str = "auto", subject_regex: str | None = None,
                 gallery_per_subject: int = 3, aligner=None):
        self.protocol, self.root, self.dsr, self.device = protocol, root, dsr, device
        self.threshold = threshold
        self._config = {"data": root, "layout": layout, "gallery_per_subject": gallery_per_subject,
                        "vlr_size": protocol.vlr_size, "device": str(device),
                        "batch_size": batch_size, "amp": amp, "use_cache": False,
                        "progress": progress}
        if subject_regex is not None:
            self._config["subject_regex"] = subject_regex
        self._first: Session | None = None
        self._aligner = aligner  # --align mtcnn: the trainer's, so validation faces are detected once
        if aligner is not None:
            self._config["align"] = "mtcnn"

    def session(self, module: torch.nn.Module, variant: str) -> Session:
        models = {"model": InMemoryModel(module, variant)}
        if self._first is not None:
            return self._first.with_models(models)
        # The protocol (subject-filtered) and DSR were built by the trainer: handed over rather
        # than let the Session re-index the whole root.
        self._first = Session(SessionConfig(**self._config), models=models, aligner=self._aligner,
                              protocol=self.protocol, dsr=self.dsr)
        return self._first

    def __call__(self, module: torch.nn.Module, variant: str) -> dict:
        was_training = module.training
        try:
            session = self.session(module, variant)
            ev = session.evaluation("model")
        finally:
            module.train(was_training)  # the Embedder put it in eval mode
        metrics = headline_metrics(ev, self.threshold)
        far = threshold_for_far(ev.impostors, TARGET_FAR)
        metrics["threshold_at_far_1pct"] = far.threshold  # None when too few impostor pairs
        return metrics


def protocol_info(protocol: Protocol, root: Path) -> dict:
    return {"root": str(root), "protocol": protocol.description,
            "subjects": len(protocol.gallery_subjects), "gallery_images": len(protocol.gallery),
            "probes": len(protocol.probes), "vlr_size": protocol.vlr_size,
            "fingerprint": protocol.fingerprint()}
