"""What a model expects and how its scores read, carried with the model (like timm's
pretrained cfgs): input size, mean/std, channel order, embedding size, flip, and the
default cosine threshold. Everything that needs one of these reads it from here; a model
of another family brings its own in a model card (models/card.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelPreset:
    input_size: tuple[int, int, int] = (3, 112, 112)  # C, H, W
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # applied to pixels in [0, 1]
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    channel_order: str = "RGB"
    embedding_dim: int = 512
    threshold: float = 0.35  # cosine at which two faces are called the same person
    # Whether the model's published pair-verification figures (LFW, CFP-FP, AgeDB-30, ...) add the
    # mirror image's embedding to the image's (flip-sum): the default of `bench verification`,
    # which `--no-flip` overrides. Gallery protocols (run-all, bench accuracy) never flip.
    flip: bool = True
    name: str = "edgeface"    # what the card calls the model, e.g. "arcface-r18"
    family: str = "edgeface"  # "edgeface": the EdgeFace-only checks (variant layout, init constants) apply

    @property
    def is_edgeface(self) -> bool:
        return self.family == EDGEFACE_FAMILY

    @property
    def preprocessing(self) -> tuple:
        """What decides the pixels the model sees: two presets with the same embed an image alike."""
        return self.input_size, self.mean, self.std, self.channel_order

    def as_dict(self) -> dict:
        return asdict(self)


EDGEFACE_FAMILY = "edgeface"


# Every EdgeFace variant: RGB 112×112 scaled as (x/255 − 0.5)/0.5, raw 512-d output, and the
# operating threshold 0.35 that EdgeFace deployments (and the case this project began with) use;
# its published figures were measured with insightface's verification protocol, flip-sum on.
EDGEFACE = ModelPreset()

# The threshold a run uses when neither the suite nor the command line sets one.
DEFAULT_THRESHOLD = EDGEFACE.threshold
