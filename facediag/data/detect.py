"""Face detection and five landmarks with facenet-pytorch's MTCNN (its P/R/O-net weights ship
in its wheel, so it works offline). An optional extra, ``align``: ``pip install facenet-pytorch==2.5.3
scikit-image`` (2.5.3 runs with torch 2.14 and pip resolves it beside torch unchanged; releases
>= 2.6 pin torch < 2.3).

Images are detected in batches of equal size (MTCNN batches only those); when several faces
are found, the largest is chosen, or the most central of those at least 80 % as large, and
the result says how many there were.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facediag.errors import FacediagError

# One ordinary pip command installs (or repairs) the whole align extra, dependencies included.
INSTALL_ALIGN = "pip install facenet-pytorch==2.5.3 scikit-image"
# Faces on facediag's 112 canvas are 50–110 px wide; a smaller pyramid floor only costs time, a
# larger one (60 px) misses faces (benchmarks/README.md, alignment.py).
CANVAS_MIN_FACE = 50
# The pyramid's step on the canvas: 0.6 rather than MTCNN's 0.709 gives P-net two scales instead of
# three (R-net and O-net refine the boxes): as many ORL faces found, in less time.
CANVAS_SCALE_STEP = 0.6
MTCNN_SCALE_STEP = 0.709  # MTCNN's own, for photos
# On decoded photos (up to 447 px long, as `facediag align` and --align mtcnn see them) faces may be small.
PHOTO_MIN_FACE = 20
# Aligning (not the check): an image with no face at the first pyramid is tried once more from full
# resolution (12 px is P-net's window, so the pyramid starts at scale 1). ORL s2/6.pgm is found
# only so (score 0.77); the retry runs on misses alone, so it costs nothing where faces are found.
RETRY_MIN_FACE = 12
# Of faces at least this share of the largest one's area, the most central is chosen.
_NEAR_LARGEST = 0.8


# What detection and alignment import: (what needs it, the package, the module).
_EXTRA = (("face detection", "facenet-pytorch", "facenet_pytorch"),
          ("face alignment", "scikit-image", "skimage.transform"))


def missing_extra() -> str | None:
    """Why alignment cannot run here (one line naming the install command), or None.

    The one place that decides whether the align extra is usable: it imports what detection and
    alignment import, so a package that is present but broken (facenet-pytorch without the
    ``requests`` it imports, a dependency that fails to load) is reported like a missing one,
    not found later as a crash. A module already imported costs nothing to import again."""
    for what, package, module in _EXTRA:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure to import a third-party package
            top = module.partition(".")[0]
            if isinstance(exc, ModuleNotFoundError) and exc.name in (top, module):
                return f"{what} needs {package}, which is not installed: {INSTALL_ALIGN}"
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            why = why if len(why) <= 160 else why[:157] + "..."
            return f"{what} needs {package}, which is installed but cannot be imported ({why}): {INSTALL_ALIGN}"
    return None


def require_extra() -> None:
    """FacediagError (one line, exit 2) unless detection and alignment can run."""
    reason = missing_extra()
    if reason:
        raise FacediagError(reason)


@dataclass(frozen=True)
class Detection:
    """The chosen face of one image: five (x, y) points, MTCNN's score, its box (x0, y0, x1, y1),
    and how many faces the image held (0: ``points`` is None)."""

    points: np.ndarray | None
    score: float | None
    box: tuple[float, float, float, float] | None
    faces: int

    @property
    def found(self) -> bool:
        return self.points is not None


NO_FACE = Detection(None, None, None, 0)


def choose(boxes: np.ndarray, width: int, height: int) -> int:
    """Index of the face to keep: the largest, or the most central of those nearly as large."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    near = np.flatnonzero(areas >= _NEAR_LARGEST * areas.max())
    centres = np.stack([(boxes[near, 0] + boxes[near, 2]) / 2 - width / 2,
                        (boxes[near, 1] + boxes[near, 3]) / 2 - height / 2], axis=1)
    return int(near[np.argmin(np.linalg.norm(centres, axis=1))])


class Detector:
    """MTCNN on HxWx3 uint8 RGB arrays. ``min_face_size`` in pixels of the image given."""

    def __init__(self, min_face_size: int = PHOTO_MIN_FACE, device: str = "cpu", batch_size: int = 64,
                 retry_min_face: int | None = None, scale_step: float = MTCNN_SCALE_STEP):
        require_extra()
        from facenet_pytorch import MTCNN  # the align extra: optional

        self.batch_size = batch_size
        self._mtcnn = MTCNN(min_face_size=min_face_size, factor=scale_step, keep_all=True, device=device,
                            post_process=False)
        self._retry = (MTCNN(min_face_size=retry_min_face, keep_all=True, device=device, post_process=False)
                       if retry_min_face is not None and retry_min_face < min_face_size else None)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection]:
        """The chosen face of each image, in order (``NO_FACE`` where none was found); with
        ``retry_min_face``, the misses are tried once more with that finer pyramid."""
        out = self._detect(self._mtcnn, images)
        missed = [i for i, d in enumerate(out) if not d.found]
        if self._retry is not None and missed:
            for i, d in zip(missed, self._detect(self._retry, [images[i] for i in missed])):
                out[i] = d
        return out

    def _detect(self, mtcnn, images: Sequence[np.ndarray]) -> list[Detection]:
        out: list[Detection] = [NO_FACE] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):
            # MTCNN's pyramid starts where a face of min_face_size becomes P-net's 12 px window: an
            # image whose shorter side is below min_face_size (an 8×8 icon, a 1×10,000 strip) has no
            # scale to search at all, so no face, rather than the empty torch.cat MTCNN ends in.
            if min(img.shape[:2]) * (12.0 / mtcnn.min_face_size) >= 12:  # the test MTCNN's pyramid loop makes
                by_shape.setdefault(tuple(img.shape), []).append(i)
        for shape, rows in by_shape.items():
            for s in range(0, len(rows), self.batch_size):
                chunk = rows[s:s + self.batch_size]
                batch = np.stack([np.ascontiguousarray(images[i]) for i in chunk])
                boxes, probs, points = mtcnn.detect(batch, landmarks=True)
                for i, b, p, pts in zip(chunk, boxes, probs, points):
                    if b is None or len(b) == 0:
                        continue
                    k = choose(np.asarray(b, dtype=np.float64), shape[1], shape[0])
                    out[i] = Detection(np.asarray(pts[k], dtype=np.float64).reshape(5, 2), float(p[k]),
                                       tuple(float(v) for v in b[k]), len(b))
        return out
