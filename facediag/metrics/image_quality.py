"""Pixel fidelity of a super-resolved face against its HR image: PSNR and SSIM (scikit-image).

scikit-image is an optional dependency (the ``align`` and ``dev`` extras); ``available()`` says
whether it is installed, and the functions raise ImportError when it is not.
"""
from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0  # dB: an output identical to its reference (infinite PSNR) reads as this


def available() -> bool:
    try:
        import skimage.metrics  # noqa: F401
    except ImportError:
        return False
    return True


def psnr_ssim(outputs, references) -> np.ndarray:
    """Per image ``[N, 2]``: PSNR (dB, capped at PSNR_CAP) and SSIM (scikit-image's defaults: a
    7×7 uniform window, averaged over the colour channels) of ``outputs`` against ``references``,
    both ``[N, 3, H, W]`` in [0, 1]."""
    # scikit-image: optional (available() says whether it is there)
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    if out.shape != ref.shape or out.ndim != 4 or out.shape[1] != 3:
        raise ValueError(f"outputs {out.shape} and references {ref.shape} must both be [N, 3, H, W]")
    result = np.empty((len(out), 2))
    for i, (o, r) in enumerate(zip(out, ref)):
        mse = float(np.mean((o - r) ** 2))
        result[i, 0] = PSNR_CAP if mse == 0 else min(PSNR_CAP, peak_signal_noise_ratio(r, o, data_range=1.0))
        if _grey(o) and _grey(r):  # three equal channels: their mean SSIM is the one channel's (a third of the work)
            result[i, 1] = structural_similarity(r[0], o[0], data_range=1.0)
        else:
            result[i, 1] = structural_similarity(np.moveaxis(r, 0, -1), np.moveaxis(o, 0, -1), data_range=1.0,
                                                 channel_axis=-1)
    return result


def _grey(img: np.ndarray) -> bool:
    return bool(np.array_equal(img[0], img[1]) and np.array_equal(img[0], img[2]))
