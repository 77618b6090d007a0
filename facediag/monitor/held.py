"""The held-out set, prepared once for every monitor call: its pixels kept, a Session per call.

What a call needs of the data does not depend on the model being trained: the index and the
gallery/probe protocol, each image decoded (and aligned under ``--align``), each probe degraded
and super-resolved. The first call does all of that through the Session, as run-all does, and
keeps every image the model is fed by its content key (``KeptPixels``); a later call builds a
new Session over the same data, hands it the same index, protocol and DSR, and feeds the model
from the kept pixels, so it costs about one forward pass over the held-out images and decodes
nothing. The live module has no file and no sha256: nothing goes to the embedding cache.

Memory bound: one 3×112×112 image per distinct image the model is fed (the gallery, the probes'
own HR images and the super-resolved probes): uint8 when the pixels are whole levels (decoded
files, 37.6 KB each), float16 for DSR outputs (75 KB, as the Session keeps them), float32 only for
warped (aligned) crops (150 KB). ORL people 21–40 at 16 px: 60 + 140 + 140 images, about 18 MB.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

from facediag.data.images import DecodeError, normalize
from facediag.embed import Embedder, Item, run_batched
from facediag.session import Session, SessionConfig

# What a new Session is handed from the first: it would otherwise index the roots and load the DSR again.
_DATA = ("roots", "index", "probe_index", "train_index", "distractor_index", "protocol", "dsr")


class KeptPixels:
    """Every image the model is fed, by content key, after its one decode (or why it failed)."""

    def __init__(self):
        self._pixels: dict[str, torch.Tensor] = {}
        self._failed: dict[str, Exception] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pixels)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._pixels.values())

    def loader(self, item: Item) -> Callable[[], torch.Tensor]:
        """How to get ``item``'s pixels: from the kept copy, else by its own load, kept."""
        kept = self._pixels.get(item.key)
        if kept is not None:
            return lambda: _unpack(kept)
        failed = self._failed.get(item.key)
        if failed is not None:
            def refail():
                raise failed
            return refail

        def load():
            try:
                img = item.load()
            except (DecodeError, OSError) as exc:
                with self._lock:
                    self._failed[item.key] = exc
                raise
            with self._lock:
                self._pixels[item.key] = _pack(img)
            return img
        return load


def _pack(img: torch.Tensor) -> torch.Tensor:
    """The smallest dtype that gives ``img`` back exactly (decoded files are whole levels / 255)."""
    levels = (img * 255).round().clamp(0, 255).to(torch.uint8)
    if torch.equal(_unpack(levels), img):
        return levels
    half = img.half()
    return half if torch.equal(half.float(), img) else img.clone()


def _unpack(t: torch.Tensor) -> torch.Tensor:
    # As to_tensor01 divides: float32 by 255, so a whole-level image comes back bit for bit.
    return t.float() / 255 if t.dtype == torch.uint8 else t.float()


class KeptEmbedder(Embedder):
    """An Embedder fed from the kept pixels (decoding an image only the first time it is seen)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, kept: KeptPixels, *, batch_size: int,
                 progress: bool):
        super().__init__(model, device, fingerprint=None, batch_size=batch_size, progress=progress)
        self.kept = kept

    def _compute(self, items: list[Item], description: str):
        return run_batched([self.kept.loader(it) for it in items], self.forward, batch_size=self.batch_size,
                           description=description, progress=self.progress, workers=self.workers)


class LiveEmbedder(KeptEmbedder):
    """The module in training, fed as the loop feeds it: on its own device, in its weights' dtype,
    channels_last when its convolutions are, and under the caller's autocast when one is active
    (read when the call begins). The module is never moved, cast or copied."""

    def __init__(self, model: torch.nn.Module, device: torch.device, kept: KeptPixels, *, dtype: torch.dtype,
                 channels_last: bool, batch_size: int, progress: bool):
        super().__init__(model, device, kept, batch_size=batch_size, progress=progress)
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
    starts), decoded by the first call, and a fresh LiveSession over it for each call."""

    def __init__(self, config: SessionConfig):
        self.config = config
        self.kept = KeptPixels()
        self._first = Session(config)
        self._first.protocol  # noqa: B018 - index now: a wrong root is one line before any training
        self._baseline: KeptEmbedder | None = None

    def session(self, loaded, embedder: LiveEmbedder) -> LiveSession:
        """A Session for one call: the model as given, the baseline's embeddings kept from the first
        call, and the data, DSR and alignment of the first Session."""
        first = self._first
        models, embedders = {"model": loaded}, {"model": embedder}
        if first.has_role("baseline"):
            models["baseline"] = first.model("baseline")
            embedders["baseline"] = self._baseline_embedder()
        session = LiveSession(self.config, models=models, embedders=embedders, dist=None,
                              aligner=first.aligner if self.config.align != "none" else None)
        for name in _DATA:
            session.__dict__[name] = getattr(first, name)
        if first.alignment is not None and self.config.align == "auto":
            info = first.alignment_info() or {}
            session.settle_alignment(first.alignment, info.get("note") or "")
        return session

    def settled(self, session: Session) -> None:
        """After the first call: ``--align auto`` as that call decided it, for every later one."""
        if self._first.alignment is None and session.alignment is not None:
            self._first.settle_alignment(session.alignment, (session.alignment_info() or {}).get("note") or "")

    def _baseline_embedder(self) -> KeptEmbedder:
        """The reference model's embedder, one for the Monitor: its embeddings are made once."""
        if self._baseline is None:
            loaded = self._first.model("baseline")
            device = self._first.device if not str(loaded.variant).endswith("_q") else torch.device("cpu")
            self._baseline = KeptEmbedder(loaded.model.to(device).eval(), device, self.kept,
                                          batch_size=self.config.batch_size, progress=self.config.progress)
        return self._baseline
