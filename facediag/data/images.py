"""Decoding and preprocessing: every face becomes float RGB in [0, 1], 3×112×112.

Rule for sizes other than 112×112: scale so the longer side is 112 (aspect kept), then pad
centred with black to a square. ORL's 92×112 is therefore padded, never stretched.
EdgeFace's own normalisation ``(x/255 − 0.5)/0.5`` is applied by the embedding engine
(:func:`normalize`), so the same pixels can be scored with other normalisations.

Decoding is hardened against hostile files: anything PIL cannot read, and any image over
:data:`MAX_PIXELS`, is a :class:`DecodeError` (the run reports the file as unreadable and goes
on). Images whose longer side is at least ``4 × 112`` are shrunk while decoding (JPEG DCT
scaling, then an integer box reduction) to a longer side of at least ``2 × 112`` before the
area resize, so a large photo never costs more than its own decoded bytes. High bit depths
(16-bit PNG/TIFF/PGM, 32-bit integer and float images) are scaled to 8 bits by their bit
depth, never clipped.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SIZE = 112
# Identifies the preprocessing in cache keys: change it when the rule above changes
# (v2: high bit depths scaled instead of clipped to white; large images shrunk while decoding).
PREPROCESS_ID = "rgb-fit-longer-112-pad-black/(x-0.5)/0.5/v2"
# The hard limit on a face image: 64 megapixels (a 50 MP phone photo passes; PIL's own
# decompression-bomb warning starts at 89 MP, so an accepted image never triggers it).
MAX_PIXELS = 64_000_000
# Shrink while decoding only images at least this long; shrink them to at least SIZE * 2.
_SHRINK_FROM = SIZE * 4


class DecodeError(Exception):
    """The file is not an image we can read (empty, truncated, too large, not an image)."""


def header_size(path: str | Path) -> tuple[int, int, str] | None:
    """(width, height, PIL mode) from the file header, without decoding pixels; None when the
    file is not a readable image (or is so large that PIL refuses to open it)."""
    try:
        with Image.open(path) as img:
            return int(img.width), int(img.height), str(img.mode)
    except Exception:  # noqa: BLE001 -- PIL plugins raise many kinds on hostile headers
        return None


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode a file to HxWx3 uint8 RGB; greyscale is repeated to three channels.

    Images with a longer side of at least 448 come back shrunk (longer side 224–447)."""
    try:
        with Image.open(path) as img:
            return _decode(img)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 -- one hostile file must never fail a run
        raise DecodeError(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, Image.DecompressionBombError):  # PIL refuses before we see the size
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(m.group(1)) / 1e6:.0f} megapixels" if m else "over PIL's decompression-bomb limit"
        return f"too large: {size} (the limit for a face image is {MAX_PIXELS / 1e6:.0f})"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _decode(img: Image.Image) -> np.ndarray:
    """PIL image (header read) -> HxWx3 uint8: size limit, shrink, bit depth, RGB."""
    w, h = img.size
    if w <= 0 or h <= 0:
        raise DecodeError("empty image")
    if w * h > MAX_PIXELS:
        raise DecodeError(f"too large: {w}×{h} pixels ({w * h / 1e6:.0f} megapixels; the limit for "
                          f"a face image is {MAX_PIXELS / 1e6:.0f})")
    bits = _bit_depth(img)
    if max(w, h) >= _SHRINK_FROM and img.format == "JPEG":
        scale = 2 * SIZE / max(w, h)
        img.draft(None, (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
    img.load()
    # Working modes that Image.reduce averages correctly (not palette indices or bits).
    if img.mode in ("1", "P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else
                          "L" if img.mode == "1" else "RGB")
    elif img.mode.startswith("I;16"):
        img = img.convert("I")
    factor = max(img.size) // (2 * SIZE) if max(img.size) >= _SHRINK_FROM else 1
    if factor > 1:
        img = img.reduce(factor)
    if img.mode in ("I", "F"):
        grey = _to_uint8(np.asarray(img), bits)
        return np.repeat(grey[:, :, None], 3, axis=2)
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise DecodeError(f"unsupported pixel layout (mode {img.mode})")
    return rgb


def _bit_depth(img: Image.Image) -> int | None:
    """Bits per sample the file declares (up to 16) for its high-depth modes; None: infer from the data."""
    mode = img.mode
    if mode.startswith("I;16"):
        return 16
    if mode == "I":
        if img.format in ("PNG", "PPM"):  # PIL opens 16-bit grey (PGM scaled to 16 bits) as I
            return 16
        tags = getattr(img, "tag_v2", None)  # TIFF: BitsPerSample
        try:
            declared = int(tags.get(258, (0,))[0]) if tags is not None else 0
        except (TypeError, ValueError, IndexError):
            declared = 0
        # 32-bit integer images rarely use their range: infer the depth from the data instead.
        return declared if 8 <= declared <= 16 else None
    return None


def _to_uint8(values: np.ndarray, bits: int | None) -> np.ndarray:
    """One channel of integer (I) or float (F) samples -> uint8, by bit depth, never clipped to white.

    Integers: divided by 2**bits − 1 (bits declared by the file, else the smallest of 8, 16
    and 32 that holds the largest value; negative values count as 0). Floats: [0, 1] data scaled by 255, [0, 255] kept,
    larger ranges treated as 16 bits, or divided by their maximum. NaN counts as black."""
    x = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.clip(x, 0.0, None)
    top = float(x.max()) if x.size else 0.0
    if values.dtype.kind == "f":
        full = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else max(65535.0, top)
    else:
        if bits is None:
            bits = 8 if top <= 255 else 16 if top <= 65535 else 32
        full = float(2 ** bits - 1)
    out = np.rint(np.clip(x / full, 0.0, 1.0) * 255.0)
    return out.astype(np.uint8)


def to_tensor01(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1].

    In numpy, not torch: decoding runs in the engine's background threads, and a torch op there
    of more than 32k elements starts an OpenMP team of its own per thread, which on a busy CPU
    makes each image cost tens of milliseconds and slows the model's forward beside it
    (benchmarks/engine_vs_bare.py). The values are the same: float32 division by 255."""
    chw = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(chw.astype(np.float32) / np.float32(255.0))


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
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.requires_grad:
        return F.pad(x, (left, size - w - left, top, size - h - top), value=0.0)
    # The black border in numpy, for the reason given in to_tensor01 (F.pad gives the same values).
    canvas = np.zeros((x.shape[0], size, size), dtype=np.float32)
    canvas[:, top:top + h, left:left + w] = x.numpy()
    return torch.from_numpy(canvas)


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
