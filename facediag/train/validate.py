"""Validation of a model in training by gallery matching, with the code run-all's checks use.

Each call builds a fresh Session around the in-memory model (the Session memoises
embeddings per run, and the weights have changed since the last call), over a protocol
built once. The DSR outputs of the probes do not depend on the model, so they are
computed by the first call and handed to the later Sessions.
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
        self._dsr_out = None
        self._aligner = aligner  # --align mtcnn: the trainer's, so validation faces are detected once
        if aligner is not None:
            self._config["align"] = "mtcnn"

    def session(self, module: torch.nn.Module, variant: str) -> Session:
        session = Session(SessionConfig(**self._config),
                          models={"model": InMemoryModel(module, variant)}, aligner=self._aligner)
        # The protocol (subject-filtered) and DSR were built by the trainer: hand them over
        # rather than let the Session re-index the whole root.
        session.protocol = self.protocol
        session.dsr = self.dsr
        if self._dsr_out is not None:
            # Session has no public way to seed its DSR outputs; they are model-independent.
            session._dsr_out = self._dsr_out
        return session

    def __call__(self, module: torch.nn.Module, variant: str) -> dict:
        was_training = module.training
        try:
            session = self.session(module, variant)
            ev = session.evaluation("model")
            self._dsr_out = getattr(session, "_dsr_out", None)
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
