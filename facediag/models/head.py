"""ArcFace-style classification head: one class centre per training subject."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from facediag.errors import CheckpointError


class ArcFaceHead:
    """Class centres ``weight`` [C, D] and an optional subject -> class id map."""

    def __init__(self, weight: torch.Tensor, label_map: dict[str, int] | None = None):
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            got = list(weight.shape) if isinstance(weight, torch.Tensor) else type(weight)
            raise CheckpointError(f"head weight must be a [classes, dim] tensor, got {got}")
        self.weight = weight.detach().float()
        self.label_map = dict(label_map) if label_map else None
        if self.label_map and not all(0 <= i < self.classes for i in self.label_map.values()):
            raise CheckpointError(f"label map has class ids outside 0..{self.classes - 1} "
                                  f"of a {self.classes}-class head")
        self._centres = F.normalize(self.weight, dim=1)

    @classmethod
    def from_checkpoint(cls, loaded) -> ArcFaceHead | None:
        """The head of a LoadedCheckpoint, or None when it has none."""
        return None if loaded.head is None else cls(loaded.head, loaded.label_map)

    @property
    def classes(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    @property
    def subjects(self) -> list[str | None] | None:
        """Subject name of each class id (None for ids the label map does not name)."""
        if not self.label_map:
            return None
        names: list[str | None] = [None] * self.classes
        for subject, idx in self.label_map.items():
            names[idx] = subject
        return names

    def cosine(self, emb_normed: torch.Tensor) -> torch.Tensor:
        """[N, C] cosine of each embedding to each L2-normalised class centre."""
        if emb_normed.dim() != 2 or emb_normed.shape[1] != self.dim:
            raise CheckpointError(f"head expects [N, {self.dim}] embeddings, got "
                                  f"{list(emb_normed.shape)}")
        centres = self._centres.to(device=emb_normed.device, dtype=emb_normed.dtype)
        return F.normalize(emb_normed, dim=1) @ centres.T
