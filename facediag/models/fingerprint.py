"""Fingerprints of weights: a file's sha256, and a digest of a state_dict's contents."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint_state_dict(state_dict: Mapping) -> str:
    """sha256 over sorted key names and each value's dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode() + b"\0")
        _hash_value(h, state_dict[key])
    return h.hexdigest()


def _hash_value(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.is_quantized:
            if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                h.update(f"q{t.q_scale()}:{t.q_zero_point()}".encode())
            else:
                _hash_value(h, t.q_per_channel_scales())
                _hash_value(h, t.q_per_channel_zero_points())
            t = t.int_repr()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, (tuple, list)):
        for item in value:
            _hash_value(h, item)
    else:
        h.update(repr(value).encode())
