"""Five-point geometry: the ArcFace template, the similarity transform that maps detected
points onto it, the warp to a 112×112 crop, and how far given points are from the template.

Points are (x, y) pixel coordinates in this order: left eye, right eye, nose tip, left mouth
corner, right mouth corner ("left" as seen in the image). The transform is scikit-image's
least-squares similarity (rotation, uniform scale, translation: Umeyama), not a hand-written
solver. scikit-image comes with the ``align`` extra, so it is imported where it is used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facediag.data.images import SIZE

# ArcFace / insightface's reference landmarks for a 112×112 crop.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
INTER_OCULAR = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))


@dataclass(frozen=True)
class Fit:
    """The similarity transform from an image's five points to the template.

    ``matrix``: 3×3 homogeneous, image -> template coordinates. ``residual``: RMS distance
    (template pixels) between the mapped points and the template, i.e. how far the face's
    shape is from the template's once pose and size are taken out. ``rotation_deg`` and
    ``scale`` describe how the image must turn and grow to be aligned (0° and 1.0: it is)."""

    matrix: np.ndarray
    residual: float
    rotation_deg: float
    scale: float


class AlignmentError(ValueError):
    """The landmarks do not define a similarity transform (not finite, all five points the same)."""


#: Identifies the warp in cache keys: change it when fit or warp changes.
WARP_ID = "arcface112-similarity-bilinear-u8/v1"


def fit(points) -> Fit:
    """Least-squares similarity transform (Umeyama) from five (x, y) points to :data:`TEMPLATE`."""
    # scikit-image: the align extra, optional
    from skimage.transform import SimilarityTransform

    src = np.asarray(points, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(src).all() or np.ptp(src, axis=0).max() < 1e-6:
        raise AlignmentError("the five landmarks do not define a similarity transform")
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, TEMPLATE)
        ok = bool(tform)
    else:
        tform = SimilarityTransform()
        ok = tform.estimate(src, TEMPLATE)
    if not ok:  # degenerate points (collinear beyond repair)
        raise AlignmentError("the five landmarks do not define a similarity transform")
    residual = float(np.sqrt(np.mean(tform.residuals(src, TEMPLATE) ** 2)))
    return Fit(np.asarray(tform.params, dtype=np.float64), residual, float(np.degrees(tform.rotation)),
               float(tform.scale))


def align_to_template(rgb: np.ndarray, points) -> np.ndarray:
    """HxWx3 uint8 image and its five landmarks (x, y; the template's order) -> the 112x112x3
    uint8 ArcFace crop: the one alignment warp (facediag align, the IJB loose crops)."""
    return warp(rgb, fit(points))


def warp(rgb: np.ndarray, f: Fit, size: int = SIZE) -> np.ndarray:
    """HxWx3 uint8 -> the aligned size×size×3 uint8 crop (bilinear; outside the image is black)."""
    # scikit-image: the align extra, optional
    from skimage.transform import SimilarityTransform, warp as sk_warp

    if size != SIZE:  # the template is defined on 112; other sizes scale it
        f = Fit(rescaling(size / SIZE) @ f.matrix, f.residual, f.rotation_deg, f.scale)
    inverse = SimilarityTransform(matrix=np.linalg.inv(f.matrix))  # template -> image, as warp wants
    out = sk_warp(rgb, inverse, output_shape=(size, size), order=1, mode="constant", cval=0.0,
                  preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def rescaling(factor: float) -> np.ndarray:
    """3×3 matrix taking pixel coordinates of an image to those of the same image resized by
    ``factor`` (pixel centres at integers, so (x + 0.5)·factor − 0.5: half a pixel matters at 16 px)."""
    shift = 0.5 * factor - 0.5
    return np.array([[factor, 0.0, shift], [0.0, factor, shift], [0.0, 0.0, 1.0]])


def nme(points) -> float:
    """Normalised mean error of points already on a 112 canvas: mean distance to the template
    divided by the template's inter-ocular distance (the usual landmark error, no fitting)."""
    p = np.asarray(points, dtype=np.float64).reshape(5, 2)
    return float(np.linalg.norm(p - TEMPLATE, axis=1).mean() / INTER_OCULAR)
