"""The held-out set, prepared once for every monitor call: a Session per call over kept pixels.

What a call needs of the data does not depend on the model being trained: the index and the
gallery/probe protocol, each image decoded (and aligned under ``--align``), each probe degraded
and super-resolved. One Session over the data keeps all of it (``keep_pixels``: its data and
pixel rooms); each call is ``with_models`` of it, a new runtime room around the module as it is
now, so the first call decodes, degrades and super-resolves, and a later one costs about one
forward pass over the held-out images and decodes nothing. The live module has no file and no
sha256: nothing goes to the embedding cache. A baseline model's embedder is kept across calls:
its embeddings are made once.

Memory bound: one 3×112×112 image per distinct held-out image the model is fed: uint8 for each
decoded HR image (the gallery and the probes' own HR images, 37.6 KB each; float32, 150 KB, for
warped crops under ``--align``) and float16 for each super-resolved probe (75 KB), as the
Session's pixel room keeps them. ORL people 21–40 at 16 px: 200 HR images and 140 DSR outputs,
about 18 MB.
"""
from __future__ import annotations

from typing import Callable

import torch

from facediag.data.images import normalize
from facediag.embed import Embedder, build_embedder
from facediag.session import Session, SessionConfig


class LiveEmbedder(Embedder):
    """The module in training, fed as the loop feeds it: on its own device, in its weights' dtype,
    channels_last when its convolutions are, and under the caller's autocast when one is active
    (read when the call begins). The module is never moved, cast or copied."""

    def __init__(self, model: torch.nn.Module, device: torch.device, *, dtype: torch.dtype, channels_last: bool,
                 batch_size: int, progress: bool):
        super().__init__(model, device, fingerprint=None, batch_size=batch_size, progress=progress)
        self.dtype, self.channels_last = dtype, channels_last
        self.autocast = torch.is_autocast_enabled(device.type)
        self.autocast_dtype = torch.get_autocast_dtype(device.type)

    def forward(self, pixels01: torch.Tensor, normalization: Callable = normalize):
        self.forward_calls += 1
        self.images_embedded += len(pixels01)
        x = normalization(pixels01).to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast_dtype,
                                                    enabled=self.autocast):
            out = self.model(x)
        return out.float().cpu().numpy()


class LiveSession(Session):
    """A Session over the module in training. Two things differ from a run over a file: the weights'
    own evidence (keys matched, init constants) is no evidence of a module being trained (it is the
    model itself, and a run from scratch starts at its init constants), so weights-integrity judges
    it by separation alone; and a history line holds numbers, so no check makes face thumbnails."""

    def available(self, requirement: str, role: str = "model") -> str | None:
        if requirement == "state_dict" and role == "model":
            return "a module in training: its keys are its own and its init constants are where training starts"
        return super().available(requirement, role)

    def thumbnail(self, view: str, row: int) -> str | None:
        return None


class HeldOut:
    """The held-out data of a Monitor: indexed at construction (bad input fails before training
    starts), decoded by the first call, and a LiveSession over the module for each call.
    ``protocol``, ``dsr`` and ``aligner``: a caller's own, as Session takes them."""

    def __init__(self, config: SessionConfig, *, protocol=None, dsr=None, aligner=None):
        self.config = config
        self.data = LiveSession(config, keep_pixels=True, protocol=protocol, dsr=dsr, aligner=aligner)
        self.data.protocol  # noqa: B018 - index now: a wrong root is one line before any training
        self._baseline: Embedder | None = None

    def session(self, loaded, embedder: LiveEmbedder) -> LiveSession:
        """A Session for one call: the module as given, the baseline (if any) as first embedded."""
        models, embedders = {"model": loaded}, {"model": embedder}
        if self.data.has_role("baseline"):
            models["baseline"] = self.data.model("baseline")
            if self._baseline is None:
                c = self.config
                self._baseline = build_embedder(models["baseline"], self.data.device, batch_size=c.batch_size,
                                                progress=c.progress)
            embedders["baseline"] = self._baseline
        return self.data.with_models(models, embedders)
