"""A loaded model: what the rest of facediag may rely on, whoever built it.

``load_checkpoint`` returns a LoadedModel for every torch format and a LoadedOnnx (a LoadedModel
with the graph's inputs and outputs) for an ONNX file. A notebook or a training loop wraps a live
module with :meth:`LoadedModel.from_module`. Every check, the Session, the benches and the
reports read a model through these fields alone, and ask :func:`run_device` where it runs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn

from facediag.models.adapter import with_preset
from facediag.models.card import read_card
from facediag.models.edgeface import CUSTOM
from facediag.models.presets import EDGEFACE, ModelPreset

IN_MEMORY_FORMAT = "module"  # the format of a model wrapped from memory: no file


@dataclass(kw_only=True)
class LoadedModel:
    model: nn.Module                # maps [B, 3, 112, 112] EdgeFace-normalised pixels to raw [B, D] embeddings
                                    # (a model of another preset comes wrapped: models/adapter.py)
    variant: str                    # an EdgeFace variant name; CUSTOM for a model run as it is;
                                    # "torchscript" for a foreign scripted model sized like a variant
    format: str                     # how it was stored (checkpoint.FORMATS, "onnx", or "module": in memory)
    path: str                       # the file; for a model wrapped from memory, the name it was given
    sha256: str | None              # fingerprint of the file; None: not cacheable
    parameters: int
    matched_fraction: float = 1.0   # share of the model's tensors that came from the file (strict loading: 1.0)
    missing_keys: list[str] = field(default_factory=list)  # expected and absent (strict loading: none)
    unexpected_keys: list[str] = field(default_factory=list)
    head: torch.Tensor | None = None  # [C, D] class centres of an ArcFace-style head, if the file had one
    label_map: dict[str, int] | None = None
    meta: dict = field(default_factory=dict)  # other top-level fields of the file, as JSON-friendly values
    key_prefix: str = ""            # wrapper prefix stripped from the file's keys ("" if none)
    dequantized: bool = False       # int8 weights turned to float to run off CPU
    preset: ModelPreset = EDGEFACE  # what the model expects (its model card's; EDGEFACE without one)
    card: str | None = None         # the model card the preset came from, if any

    @classmethod
    def from_module(cls, module: nn.Module, *, name: str = "model", preset: ModelPreset = EDGEFACE,
                    card: str | None = None, variant: str = CUSTOM, head: torch.Tensor | None = None,
                    label_map: dict[str, int] | None = None) -> LoadedModel:
        """A live module (a notebook's, or the one a training loop is training) as a LoadedModel.

        ``module`` maps a batch of the preset's input to [B, D] embeddings; under a preset other
        than EdgeFace's it is wrapped (models/adapter.PresetInput) so the engine feeds it as it
        feeds every model. ``card``: a model card file whose preset to use (read strictly; wins
        over ``preset``). ``variant``: the EdgeFace variant it is, if it is one (the EdgeFace-only
        checks then apply), else CUSTOM. ``name`` stands where a file's path would (labels,
        reports, messages). ``sha256`` is None: the weights may change, so nothing is cached.

        The module is not copied: the engine moves it to its device and puts it in eval mode
        (a training loop calls ``module.train()`` again after a check).
        """
        if card is not None:
            preset, card = read_card(card), str(card)
        return cls(model=with_preset(module, preset, name), variant=variant, format=IN_MEMORY_FORMAT,
                   path=name, sha256=None, parameters=sum(p.numel() for p in module.parameters()),
                   head=head, label_map=label_map, preset=preset, card=card)


def preset_of(loaded) -> ModelPreset:
    """A loaded model's preset; EdgeFace's for an object without one."""
    return getattr(loaded, "preset", EDGEFACE)


def embedding_fingerprint(loaded) -> str | None:
    """What the embedding cache keys a model's embeddings by: the file's sha256, and the card's
    preprocessing when it is not EdgeFace's (the same file fed otherwise embeds otherwise)."""
    sha, preset = loaded.sha256, preset_of(loaded)
    if sha is None or preset.preprocessing == EDGEFACE.preprocessing:
        return sha
    return f"{sha}+input:{hashlib.sha256(repr(preset.preprocessing).encode()).hexdigest()[:16]}"


def dynamic_int8(variant: str) -> bool:
    """Whether a model of ``variant`` is dynamically quantised to int8 (the ``_q`` variants):
    PyTorch has those kernels on CPU only, and it quantises activations per batch, so an image's
    embedding depends on the batch it was embedded in."""
    return str(variant).endswith("_q")


def run_device(variant: str, device) -> torch.device:
    """Where a model of ``variant`` runs when ``device`` is asked: CPU for dynamic int8."""
    return torch.device("cpu") if dynamic_int8(variant) else torch.device(device)
