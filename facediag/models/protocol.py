"""What the rest of facediag may rely on in a loaded model, whoever built it.

``load_checkpoint`` returns a LoadedCheckpoint; a notebook may pass any object with these
fields instead (e.g. a module it loaded itself, with the keys it reports missing), and every
check, the Session and the reports read a model through this protocol alone.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import hashlib

import torch
from torch import nn

from facediag.models.presets import EDGEFACE, ModelPreset


@runtime_checkable
class LoadedModel(Protocol):
    model: nn.Module                # maps [B, 3, 112, 112] EdgeFace-normalised pixels to raw [B, D] embeddings
                                    # (a model of another preset comes wrapped: models/adapter.py)
    variant: str                    # an EdgeFace variant name, or what the loader calls the model
    format: str                     # how it was stored (state_dict, training dict, torchscript, module, ...)
    path: str
    sha256: str | None              # fingerprint of the file; None: not cacheable
    parameters: int
    matched_fraction: float         # share of the model's tensors that came from the file
    missing_keys: list[str]         # keys the model expected and the file lacked (strict loading: none)
    unexpected_keys: list[str]
    head: torch.Tensor | None       # [C, D] class centres of an ArcFace-style head, if the file had one
    label_map: dict[str, int] | None
    preset: ModelPreset             # what the model expects (its model card's; EDGEFACE without one)
    card: str | None                # the model card the preset came from, if any


def preset_of(loaded) -> ModelPreset:
    """A loaded model's preset; EdgeFace's for an object that predates model cards."""
    return getattr(loaded, "preset", EDGEFACE)


def embedding_fingerprint(loaded) -> str | None:
    """What the embedding cache keys a model's embeddings by: the file's sha256, and the card's
    preprocessing when it is not EdgeFace's (the same file fed otherwise embeds otherwise)."""
    sha, preset = loaded.sha256, preset_of(loaded)
    if sha is None or preset.preprocessing == EDGEFACE.preprocessing:
        return sha
    return f"{sha}+input:{hashlib.sha256(repr(preset.preprocessing).encode()).hexdigest()[:16]}"
