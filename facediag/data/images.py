"""Decoding and preprocessing: every face becomes float RGB in [0, 1], 3×112×112.

Rule for sizes other than 112×112: scale so the longer side is 112 (aspect kept), then pad
centred with black to a square. ORL's 92×112 is therefore padded, never stretched.
EdgeFace's own normalisation ``(x/255 − 0.5)/0.5`` is applied by the embedding engine
(:func:`normalize`), so the same pixels can be scored with other normalisations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

SIZE = 112
# Identifies the preprocessing in cache keys: change it when the rule above changes.
PREPROCESS_ID = "rgb-fit-longer-112-pad-black/(x-0.5)/0.5"


class DecodeError(Exception):
    """The file is not an image we can read (empty, truncated, not an image)."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode a file to HxWx3 uint8 RGB; greyscale is repeated to three channels."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                raise DecodeError("empty image")
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(str(exc) or type(exc).__name__) from None


def to_tensor01(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)


def fit_canvas(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """3xHxW in [0,1] -> 3x112x112: scale the longer side to ``size``, pad centred with black."""
    _, h, w = x.shape
    if (h, w) == (size, size):
        return x
    if max(h, w) != size:
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        mode = "area" if scale < 1 else "bicubic"
        kwargs = {} if mode == "area" else {"align_corners": False}
        x = F.interpolate(x[None], size=(nh, nw), mode=mode, **kwargs)[0].clamp_(0, 1)
        h, w = nh, nw
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=0.0)


def load_face(path: str | Path) -> torch.Tensor:
    """File -> 3x112x112 float in [0, 1], by the rule in the module docstring."""
    return fit_canvas(to_tensor01(read_rgb(path)))


def load_lowres(path: str | Path) -> torch.Tensor:
    """A real VLR file as it is (3xhxw in [0, 1]); the DSR stage brings it to 112."""
    return to_tensor01(read_rgb(path))


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downsample 3x112x112 (or a batch) to ``size``×``size``: the synthetic VLR probe."""
    batch = x if x.dim() == 4 else x[None]
    out = F.interpolate(batch, size=(size, size), mode="area")
    return out if x.dim() == 4 else out[0]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """EdgeFace's input normalisation on [0, 1] pixels: (x − 0.5)/0.5, i.e. [-1, 1]."""
    return (x - 0.5) / 0.5
