"""The input a model card asks for, made from what the engine feeds every model.

The embedding engine, the cache, the DSR stage and every check feed EdgeFace's input:
[B, 3, 112, 112] RGB pixels as (x − 0.5)/0.5. A model whose preset differs is wrapped in
PresetInput, which turns that batch into the card's (undo EdgeFace's scaling, swap channels
for BGR, resize to the card's size, apply its mean/std) and checks the embedding width, so
nothing upstream needs to know the model is not EdgeFace.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facediag.errors import CheckpointError
from facediag.models.presets import EDGEFACE, ModelPreset


class PresetInput(nn.Module):
    """``model`` fed as ``preset`` says, from EdgeFace-normalised 3×112×112 batches."""

    def __init__(self, model: nn.Module, preset: ModelPreset, name: str = "model"):
        super().__init__()
        self.model = model
        self.preset = preset
        self.name = name
        self.converts = preset.preprocessing != EDGEFACE.preprocessing
        # Not persistent: the card is not part of the model's weights (state_dict stays the model's).
        self.register_buffer("mean", torch.tensor(preset.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preset.std).view(1, 3, 1, 1), persistent=False)

    def card_input(self, x: torch.Tensor) -> torch.Tensor:
        """The card's input from EdgeFace's: what the wrapped model is given."""
        if not self.converts:
            return x
        x01 = x * 0.5 + 0.5  # EdgeFace's (x − 0.5)/0.5 undone: pixels in [0, 1]
        if self.preset.channel_order == "BGR":
            x01 = x01.flip(1)
        size = tuple(self.preset.input_size[1:])
        if tuple(x01.shape[-2:]) != size:
            x01 = F.interpolate(x01, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (x01 - self.mean.to(x01.dtype)) / self.std.to(x01.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(self.card_input(x))
        dim = self.preset.embedding_dim
        if not (isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == dim):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CheckpointError(f"{self.name}: the model returns {shape} embeddings, but its card "
                                  f"({self.preset.name}) says embedding_dim = {dim}")
        return out


def with_preset(model: nn.Module, preset: ModelPreset, name: str = "model") -> nn.Module:
    """``model`` as the engine can feed it: itself under EdgeFace's preset, else wrapped."""
    return model if preset == EDGEFACE else PresetInput(model, preset, name)
