"""--device auto|cpu|cuda[:N]: auto means CUDA when there is one."""
from __future__ import annotations

import torch

from facediag.errors import FacediagError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise FacediagError(f"--device {spec!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FacediagError(f"--device {spec}: CUDA is not available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FacediagError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise FacediagError(f"--device {spec!r}: only cpu and cuda are supported")
    return device
