"""What the benches of native low-resolution faces (bench survface, bench scface) share: files as
the engine's images (how each is brought to 112×112, its content key), embedding in chunks through
the project's engine, and each file's native size and sharpness.

Images are embedded through :class:`facediag.embed.Embedder` (via
:func:`facediag.bench.verification.pair_embeddings`: cached by content, each distinct file once,
its mirror image from the same decode when flip is on), a fresh Embedder per chunk so no
run-long memo of embeddings builds up; what is kept is one L2-normalised float32 feature per
image (embedding(img) [+ embedding(flip(img))], normalised) and the raw norm of the image's own
view.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facediag.bench.verification import pair_embeddings
from facediag.bench.native_quality import native_measures
from facediag.data.images import SIZE, load_face, read_rgb, to_tensor01
from facediag.data.index import file_digest
from facediag.errors import DataError
from facediag.protocols.pairs import PairImage

ROWS_PER_CHUNK = 8192      # images embedded at a time, each chunk by a fresh Embedder
FITS = ("pad", "stretch")


def feature_text(flip: bool) -> str:
    """How a file's feature is made, as the SurvFace and SCface reports state it."""
    return ("embedding(img) + embedding(flip(img)), L2-normalised" if flip
            else "embedding(img) alone (no flip), L2-normalised")


FIT_TEXT = {"pad": "the longer side scaled to 112 (bicubic up, area down) and padded to a square with black, "
                   "aspect kept (facediag's rule everywhere)",
            "stretch": "resized to 112×112 ignoring the aspect (bicubic, antialiased), as the public Python ports "
                       "of these evaluations do (cv2.resize)"}


def load_stretched(path: str | Path) -> torch.Tensor:
    """File -> 3×112×112 in [0, 1], resized to the square whatever its aspect."""
    x = to_tensor01(read_rgb(path))
    if tuple(x.shape[1:]) == (SIZE, SIZE):
        return x
    return F.interpolate(x[None], size=(SIZE, SIZE), mode="bicubic", align_corners=False,
                         antialias=True)[0].clamp_(0, 1)


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise DataError(f"unknown --fit {fit!r}: choose from {', '.join(FITS)}")
    return fit


def file_image(path: Path, name: str, fit: str = "pad") -> PairImage:
    """One file as the engine's image: its content key (the file's sha256, and the fit when it is
    not facediag's usual one) and its 3×112×112 pixels."""
    try:
        digest = file_digest(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if fit == "pad":
        return PairImage(f"hr:{digest}", name, partial(load_face, path))
    # the key's tail differs from the padded image's too: the engine keys the mirror view by the tail
    return PairImage(f"stretch:{digest}+stretch112", name, partial(load_stretched, path))


@dataclass(frozen=True, eq=False)
class Features:
    unit: np.ndarray            # float32 [N, D]: L2-normalised embedding(img) [+ embedding(flip(img))]; NaN: unreadable
    norms: np.ndarray           # float64 [N]: raw norm of the image's own embedding (NaN: unreadable)
    unreadable: dict[int, str]  # {row: why}
    forward_batches: int

    @property
    def readable(self) -> np.ndarray:
        return np.isfinite(self.unit[:, 0]) if len(self.unit) else np.zeros(0, dtype=bool)


def embed_images(embedder_for: Callable, images: Sequence[PairImage], flip: bool, name: str,
                 rows_per_chunk: int = ROWS_PER_CHUNK) -> Features:
    """Every image through the engine, a chunk at a time (``embedder_for()``: a fresh Embedder
    sharing one cache), reduced on the spot to unit features and raw norms."""
    units, norms, unreadable, calls = [], [], {}, 0
    for start in range(0, len(images), rows_per_chunk):
        embedder = embedder_for()
        part = SimpleNamespace(name=name, images=list(images[start:start + rows_per_chunk]))
        summed, view_norms, why = pair_embeddings(embedder, part, flip).expanded()
        calls += embedder.forward_calls
        length = np.linalg.norm(summed, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):  # unreadable rows are NaN and stay so
            units.append((summed / length).astype(np.float32))
        norms.append(view_norms[:, 0])
        unreadable.update({start + i: w for i, w in why.items()})
    if not units:
        return Features(np.zeros((0, 1), np.float32), np.zeros(0), {}, 0)
    return Features(np.concatenate(units), np.concatenate(norms), unreadable, calls)


def native_quality(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per file: the shorter side of the original in pixels and the variance of the Laplacian of
    its 8-bit grey (:func:`facediag.bench.native_quality.native_measures`); NaN where it cannot be read."""
    sizes, blur = np.full(len(paths), np.nan), np.full(len(paths), np.nan)
    for i, path in enumerate(paths):
        try:
            sizes[i], blur[i] = native_measures(path)
        except (DataError, ValueError):  # unreadable, or too small for a Laplacian: no quality known
            continue
    return sizes, blur


__all__ = ["FITS", "FIT_TEXT", "Features", "feature_text", "ROWS_PER_CHUNK", "check_fit", "embed_images", "file_image",
           "load_stretched", "native_quality"]
