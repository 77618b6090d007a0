"""Accuracy by native face size and quality for probes read from real low-resolution files.

A probe that comes as a real VLR file (a paired root's ``vlr_images*/``, or a probe root of
crops) has a native size and blur that synthetic degradation has not: this module measures
them from the file (size from its header, blur from its pixels, each file once per run) and
hands them, with the model's per-probe rank-1, genuine score and raw embedding norm, to
facediag.metrics.edc.quality_section. Probes degraded from an HR image have no native size
and are left out of the section (its ``probes`` line says how many it covers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facediag.data.images import header_size, read_rgb
from facediag.errors import DataError
from facediag.metrics.edc import laplacian_variance, quality_section

# ITU-R BT.601 luma, as PIL's "L" conversion: the grey image the blur is measured on.
_LUMA = np.array([0.299, 0.587, 0.114])


def native_size(path: str | Path) -> int:
    """A real low-resolution file's native size: its shorter side in px, from the header alone.

    Raises
    ------
    DataError
        The file is not a readable image.
    """
    head = header_size(path)
    if head is None:
        raise DataError(f"{path}: not a readable image (its native size is needed for the size bins)")
    return min(head[0], head[1])


def native_measures(path: str | Path) -> tuple[int, float]:
    """A real low-resolution file's (native size, blur).

    Parameters
    ----------
    path : str or Path
        The image file as it is on disk.

    Returns
    -------
    (int, float)
        The shorter side in px (from the header) and the variance of the Laplacian of its
        8-bit grey pixels (BT.601 luma, 0–255).

    Raises
    ------
    DataError
        The file cannot be read.
    """
    size = native_size(path)
    try:
        rgb = read_rgb(path)
    except Exception as exc:  # noqa: BLE001 -- the decoder's own reason, as one line
        raise DataError(f"{path}: {exc}") from None
    return size, grey_blur(rgb)


def grey_blur(rgb: np.ndarray) -> float:
    """The blur quality of decoded RGB pixels: the variance of the Laplacian of their 8-bit grey."""
    return laplacian_variance(rgb.astype(np.float64) @ _LUMA)


class NativeQuality:
    """Each native file measured once per run, shared by every checkpoint's row."""

    def __init__(self) -> None:
        self._measured: dict[str, tuple[int, float]] = {}

    def measures(self, path: str | Path) -> tuple[int, float]:
        key = str(path)
        if key not in self._measured:
            self._measured[key] = native_measures(key)
        return self._measured[key]

    def section(self, ev, probes, threshold: float) -> dict | None:
        """The ``by_quality`` section of one row over its mated probes read from real files.

        Parameters
        ----------
        ev : facediag.protocols.gallery.Evaluation
            One checkpoint's evaluation of the row's probes.
        probes : sequence of facediag.data.protocol.Probe
            The protocol's probes (``ev.probe_rows`` index them); ``probe.vlr`` is the real file.
        threshold : float
            The operating threshold: the FNMR curve counts genuine scores below it.

        Returns
        -------
        dict or None
            quality_section's dict plus ``probes`` (what it covers); None when no mated probe
            was read from a real file.
        """
        mated = ev.mated
        rows = ev.probe_rows[mated]
        native = np.array([probes[int(r)].vlr is not None for r in rows], dtype=bool)
        if not native.any():
            return None
        measured = [self.measures(probes[int(r)].vlr.path) for r in rows[native]]
        sizes = np.array([m[0] for m in measured], dtype=np.float64)
        blur = np.array([m[1] for m in measured])
        norms = np.linalg.norm(np.asarray(ev.probe_raw, dtype=np.float64)[mated][native], axis=1)
        section = quality_section(sizes=sizes, blur=blur, norms=norms, correct=ev.rank1_correct()[native],
                                  genuine=ev.genuine_scores()[native], threshold=threshold)
        left = int((~native).sum())
        section["probes"] = (f"{int(native.sum())} mated probes read from real low-resolution files"
                             + (f" ({left} degraded from HR images left out: no native size)" if left else ""))
        return section
