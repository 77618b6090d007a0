"""Five-point alignment: a face and its landmarks -> the 112×112 ArcFace crop.

One function, :func:`align_to_template`, so that it can become facediag's one alignment warp
(the detector-based alignment stage and the IJB loose crops both end here). The transform is
the reference's: a similarity (rotation, uniform scale, translation) estimated by least
squares from the five given points to the ArcFace template (scikit-image's
``SimilarityTransform``, Umeyama), then a bilinear warp with black outside the image and the
result rounded to 8 bits, as ``cv2.warpAffine`` on a uint8 image gives.

scikit-image is an optional dependency (``pip install facediag[ijb]``): imported on first use.
"""
from __future__ import annotations

import numpy as np

SIZE = 112
#: ArcFace's 112×112 template: left eye, right eye, nose tip, left and right mouth corner (x, y).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
#: Identifies the warp in cache keys: change it when the warp changes.
WARP_ID = "arcface112-similarity-bilinear-u8/v1"


class AlignmentError(ValueError):
    """The landmarks do not define a similarity transform (e.g. all five points the same)."""


def align_to_template(rgb: np.ndarray, landmarks) -> np.ndarray:
    """HxWx3 uint8 image and its 5 landmarks (x, y; the template's order) -> 112x112x3 uint8."""
    from skimage.transform import SimilarityTransform, warp

    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(src).all() or np.ptp(src, axis=0).max() < 1e-6:
        raise AlignmentError("the five landmarks do not define a similarity transform")
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, ARCFACE_TEMPLATE)
        if not tform:
            raise AlignmentError(f"no similarity transform fits the landmarks ({tform})")
    else:
        tform = SimilarityTransform()
        if not tform.estimate(src, ARCFACE_TEMPLATE):
            raise AlignmentError("no similarity transform fits the landmarks")
    # warp() maps output pixels back into the input: the inverse of landmarks -> template.
    out = warp(rgb, tform.inverse, output_shape=(SIZE, SIZE), order=1, mode="constant", cval=0.0,
               preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


__all__ = ["ARCFACE_TEMPLATE", "AlignmentError", "WARP_ID", "align_to_template"]
