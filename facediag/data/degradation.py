"""How a high-resolution face becomes a synthetic low-resolution probe.

Two modes (:data:`MODES`):

``bicubic``
    The field's name for the classic synthetic probe, and facediag's behaviour until now: the
    face is area-downsampled to ``size`` (:func:`facediag.data.images.downsample`, bit for bit);
    the caller brings it back to 112 with bicubic interpolation (the DSR stage).
``realistic``
    A one-pass chain in the spirit of the degradation families of BSRGAN (Zhang et al. 2021)
    and Real-ESRGAN (Wang et al. 2021), written here from their published ranges: isotropic
    Gaussian blur → downsampling with a drawn interpolation (area, bilinear or bicubic) →
    Gaussian (read) noise + Poisson (shot) noise, each colour or grey → 8-bit quantisation →
    JPEG at a drawn quality. Every range is in :func:`describe`, which reports copy into their
    settings.

    The reference chains run at a fixed 4× scale and add their noise before a last resize to
    the output; this one goes straight to any size and adds noise at the output's own pixels,
    as a small face's camera does. So the blur σ is Real-ESRGAN's, read in pixels of an image
    4× the output (as its ×4 chain applies it), and the noise ranges are its first-order ones
    halved: about what reaches the output through the reference's last downsampling (over its
    drawn scales, the median factor is about 2). Full-strength noise added at 16 px left the
    ORL faces unrecognisable (rank-1 0.18 against 0.79 bicubic; 0.26 with these ranges).

The draws of ``realistic`` come from a generator seeded by the image's content (sha256 of its
float32 bytes) unless a seed is given, so the same image gets the same degradation in every
run, for every model, in any batch, and at every size (only the target size differs between
the probes of one face at 16 and at 24 px). Blur and downsampling are linear and separable, so
they run as one small matrix product per image and axis (``resize · blur``, the resize matrix read
off torch's own interpolation); noise and JPEG are per image. An image's result therefore never
depends on the batch it came in (tests/data/test_degradation.py checks batch against single).
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facediag.data.images import downsample
from facediag.errors import FacediagError

MODES = ("bicubic", "realistic")

# Identifies the realistic chain and its ranges in cache keys: change it whenever a range, a
# step or the order of the draws changes, so no cache serves pixels made by another chain.
REALISTIC_VERSION = "v1"

# The ranges (the module docstring says why each is what it is). Blur σ: Real-ESRGAN's first-order
# range for its isotropic kernel, in pixels of an image BLUR_SCALE× the output; on the H×W face it
# is σ·H/(BLUR_SCALE·size). Noise: Real-ESRGAN's first-order ranges halved (Gaussian σ 1–30 on the
# 0–255 scale, Poisson scale 0.05–3 on the shot noise of an 8-bit image), with its probability of
# grey (luminance-only) noise. JPEG: the qualities both BSRGAN and Real-ESRGAN draw.
BLUR_SIGMA = (0.2, 3.0)
BLUR_SCALE = 4
BLUR_TRUNCATE = 3.0  # kernel radius = ceil(3σ), the common Gaussian truncation
INTERPOLATIONS = ("area", "bilinear", "bicubic")  # drawn with equal probability, as Real-ESRGAN does
GAUSSIAN_SIGMA_255 = (0.5, 15.0)
POISSON_SCALE = (0.025, 1.5)
GRAY_NOISE_PROB = 0.4
JPEG_QUALITY = (30, 95)  # inclusive
# Shot noise of an 8-bit image: photon counts of value × 256 (Real-ESRGAN's count for 256 levels).
_POISSON_LEVELS = 256.0
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the grey of the grey-noise draws


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; a :class:`FacediagError` (one line) otherwise."""
    if mode not in MODES:
        raise FacediagError(f"unknown degradation {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def key_token(mode: str, size: int) -> str:
    """How a probe was degraded, for cache keys: ``area16`` for bicubic (the token the caches
    have always used, so existing entries stay valid), ``realistic-v1-16`` for realistic (the
    version of the ranges included, so a changed chain never reads old entries)."""
    check_mode(mode)
    return f"area{size}" if mode == "bicubic" else f"realistic-{REALISTIC_VERSION}-{size}"


def describe(mode: str) -> dict:
    """Every step, range and choice of ``mode``, JSON-ready, for a report's settings.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.

    Returns
    -------
    dict
        ``mode``, ``version`` and ``steps`` (in order, each with its ranges); realistic adds
        ``seed`` and ``reference``.
    """
    check_mode(mode)
    if mode == "bicubic":
        return {"mode": "bicubic", "version": "area",
                "steps": [{"step": "downsample", "interpolation": "area"},
                          {"step": "upsample to 112 (the DSR stage)", "interpolation": "bicubic"}]}
    return {
        "mode": "realistic", "version": REALISTIC_VERSION,
        "seed": "per image: sha256 of its float32 pixels (3x112x112 in [0, 1]) unless a seed is given; "
                "the same draws at every size",
        "steps": [
            {"step": "blur", "kernel": "isotropic Gaussian", "sigma": list(BLUR_SIGMA),
             "sigma_unit": f"pixels of an image {BLUR_SCALE}x the output size (on the HxW face: "
                           f"sigma*H/({BLUR_SCALE}*size))",
             "truncate_sigmas": BLUR_TRUNCATE, "border": "reflect", "draw": "uniform"},
            {"step": "downsample", "interpolations": list(INTERPOLATIONS), "draw": "uniform choice",
             "antialias": False},
            {"step": "gaussian noise", "sigma_255": list(GAUSSIAN_SIGMA_255), "draw": "uniform",
             "gray_prob": GRAY_NOISE_PROB},
            {"step": "poisson noise", "scale": list(POISSON_SCALE), "levels": int(_POISSON_LEVELS),
             "draw": "uniform", "gray_prob": GRAY_NOISE_PROB},
            {"step": "quantise", "bits": 8},
            {"step": "jpeg", "quality": list(JPEG_QUALITY), "draw": "uniform integer",
             "chroma_subsampling": "4:2:0", "codec": f"PIL {Image.__version__}"},
            {"step": "upsample to 112 (the DSR stage)", "interpolation": "bicubic"},
        ],
        "reference": "Real-ESRGAN's first-order degradation (blur sigma 0.2-3 at its x4 scale, resize "
                     "area/bilinear/bicubic, Gaussian sigma 1-30, Poisson scale 0.05-3, grey noise 0.4, "
                     "JPEG 30-95; BSRGAN draws JPEG 30-95 too) as one pass straight to the output size: "
                     "both noises at the output's pixels, their ranges halved (what reaches the output "
                     "through the reference's last downsampling)",
    }


def summary(degradation: dict) -> str:
    """One line for a report's footnote from a :func:`describe` dict (as stored in settings)."""
    if degradation.get("mode") != "realistic":
        return "low resolutions: area-downsampled (bicubic), then brought back to 112"
    steps = {s["step"]: s for s in degradation.get("steps", [])}
    blur, down = steps.get("blur", {}), steps.get("downsample", {})
    gauss, poisson, jpeg = steps.get("gaussian noise", {}), steps.get("poisson noise", {}), steps.get("jpeg", {})

    def span(values, fmt="g"):
        return "–".join(format(v, fmt) for v in values) if values else "?"
    return (f"low resolutions: realistic degradation {degradation.get('version', '')}, drawn per image (seeded by "
            f"its pixels): Gaussian blur σ {span(blur.get('sigma'))} px at {BLUR_SCALE}× the output size, "
            f"{'/'.join(down.get('interpolations', []))} downsampling, Gaussian noise σ "
            f"{span(gauss.get('sigma_255'))}/255 + Poisson noise ×{span(poisson.get('scale'))} (grey with "
            f"p {gauss.get('gray_prob', '?')}), JPEG quality {span(jpeg.get('quality'), 'd')}; "
            "then brought back to 112")


def degrade(x: torch.Tensor, size: int, mode: str = "bicubic", *, seed: bytes | None = None) -> torch.Tensor:
    """A high-resolution face (or a batch) made low-resolution, ``size``×``size``, in [0, 1].

    Parameters
    ----------
    x : torch.Tensor
        3×H×W or N×3×H×W float in [0, 1] (usually 112×112).
    size : int
        The low resolution in pixels. Not upsampled back: callers bring it to the model's size.
    mode : str
        ``"bicubic"`` (area downsampling, bit-identical to :func:`~facediag.data.images.downsample`)
        or ``"realistic"`` (see the module docstring and :func:`describe`).
    seed : bytes, optional
        Seeds the realistic draws instead of the image's content. For a batch, image ``i`` is
        seeded by ``sha256(seed + i as 8 bytes)``.

    Returns
    -------
    torch.Tensor
        The same layout as ``x`` with spatial size ``size``; realistic results are float32 on
        ``x``'s device with values on the 8-bit grid.
    """
    check_mode(mode)
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise FacediagError(f"degrade expects 3xHxW or Nx3xHxW pixels, got shape {tuple(x.shape)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise FacediagError(f"degrade: size must be a positive number of pixels, got {size!r}")
    if mode == "bicubic":
        return downsample(x, size)
    batch = x if x.dim() == 4 else x[None]
    pixels = batch.detach().to("cpu", torch.float32).contiguous().numpy()
    n = len(pixels)
    rngs = [np.random.default_rng(list(_seed_bytes(pixels[i], seed, i if x.dim() == 4 else None)))
            for i in range(n)]
    draws = [_Draws(rng) for rng in rngs]
    low = _blur_and_resize(pixels.astype(np.float64), draws, size) if n else None
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(n):  # noise needs each image's own generator; JPEG is one image at a time
        out[i] = _noise_and_jpeg(low[i], draws[i], rngs[i])
    result = torch.from_numpy(out).to(x.device)
    return result if x.dim() == 4 else result[0]


def _seed_bytes(img: np.ndarray, seed: bytes | None, index: int | None) -> bytes:
    if seed is None:
        return hashlib.sha256(img.tobytes()).digest()
    suffix = b"" if index is None else index.to_bytes(8, "little")
    return hashlib.sha256(bytes(seed) + suffix).digest()


class _Draws:
    """One image's scalar draws, taken first and in a fixed order (the noise arrays come after)."""

    def __init__(self, rng: np.random.Generator):
        self.sigma = float(rng.uniform(*BLUR_SIGMA))
        self.interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
        self.gaussian_sigma = float(rng.uniform(*GAUSSIAN_SIGMA_255)) / 255.0
        self.gaussian_gray = bool(rng.random() < GRAY_NOISE_PROB)
        self.poisson_scale = float(rng.uniform(*POISSON_SCALE))
        self.poisson_gray = bool(rng.random() < GRAY_NOISE_PROB)
        self.quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(BLUR_TRUNCATE * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """[n, n]: a 1-D Gaussian blur with reflected borders (… c b | a b c … , numpy's "reflect")."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    period = max(1, 2 * (n - 1))
    rows = np.repeat(np.arange(n), len(k))
    src = (rows + np.tile(np.arange(-r, r + 1), n)) % period
    src = np.where(src > n - 1, period - src, src)
    m = np.zeros((n, n))
    np.add.at(m, (rows, src), np.tile(k, n))
    return m


def _resize_matrix(n: int, size: int, interpolation: str) -> np.ndarray:
    """[size, n]: torch's 1-D resampling of ``interpolation`` as a matrix, read off by resizing the
    unit vectors (area, bilinear and bicubic are separable, so two of these make the 2-D resize)."""
    eye = torch.eye(n, dtype=torch.float64)[None, :, :, None]  # channel c = unit vector e_c, n×1
    kwargs = {} if interpolation == "area" else {"align_corners": False, "antialias": False}
    return F.interpolate(eye, size=(size, 1), mode=interpolation, **kwargs)[0, :, :, 0].numpy().T


def _blur_and_resize(imgs: np.ndarray, draws: list, size: int) -> np.ndarray:
    """Blur then downsample [N, 3, H, W] float64 as one separable linear map per image,
    ``A_h · X · A_wᵀ`` with ``A = resize · blur``: a few small matrix products an image instead
    of a convolution over the full-resolution face, and each image's product is its own."""
    _, _, h, w = imgs.shape
    resize_h = {m: _resize_matrix(h, size, m) for m in INTERPOLATIONS}
    resize_w = resize_h if w == h else {m: _resize_matrix(w, size, m) for m in INTERPOLATIONS}
    left = np.stack([resize_h[d.interpolation] @ _blur_matrix(h, d.sigma * h / (BLUR_SCALE * size)) for d in draws])
    right = np.stack([(resize_w[d.interpolation] @ _blur_matrix(w, d.sigma * w / (BLUR_SCALE * size))).T
                      for d in draws])
    return left[:, None] @ imgs @ right[:, None]


def _noise_and_jpeg(low: np.ndarray, d: _Draws, rng: np.random.Generator) -> np.ndarray:
    """Gaussian then Poisson noise, 8-bit quantisation and JPEG for one 3×h×w image."""
    low = np.clip(low, 0.0, 1.0)
    low = np.clip(low + _gaussian_noise(rng, low.shape, d.gaussian_sigma, d.gaussian_gray), 0.0, 1.0)
    low = low + d.poisson_scale * _poisson_noise(rng, low, d.poisson_gray)
    return _jpeg(np.rint(np.clip(low, 0.0, 1.0) * 255.0).astype(np.uint8), d.quality)


def _gaussian_noise(rng: np.random.Generator, shape: tuple, sigma: float, gray: bool) -> np.ndarray:
    if gray:
        return np.broadcast_to(rng.normal(0.0, sigma, (1, *shape[1:])), shape)
    return rng.normal(0.0, sigma, shape)


def _poisson_noise(rng: np.random.Generator, img: np.ndarray, gray: bool) -> np.ndarray:
    """Shot noise of an 8-bit image: Poisson(value × 256)/256 − value (on luminance when grey)."""
    if gray:
        luma = np.clip(np.tensordot(_LUMA, img, axes=(0, 0)), 0.0, 1.0)[None]
        return np.broadcast_to(rng.poisson(luma * _POISSON_LEVELS) / _POISSON_LEVELS - luma, img.shape)
    return rng.poisson(img * _POISSON_LEVELS) / _POISSON_LEVELS - img


def _jpeg(chw: np.ndarray, quality: int) -> np.ndarray:
    """8-bit 3×h×w through a JPEG encode/decode at ``quality`` (baseline, 4:2:0) -> float32 [0, 1]."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).save(
        buf, format="JPEG", quality=quality, subsampling=2, optimize=False)
    buf.seek(0)
    with Image.open(buf) as decoded:
        rgb = np.asarray(decoded.convert("RGB"))
    return rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
