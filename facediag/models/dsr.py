"""The super-resolution (DSR) stage: very-low-resolution RGB [0,1] -> 112x112 RGB [0,1].

The trust boundary: facediag runs no code from a file the user names, unless told to. An ONNX
DSR is the recommended form: onnxruntime runs its graph's operators and nothing else. A
TorchScript DSR is code, but a plain scripted module runs only its forward (TorchScript ops,
as a checkpoint's layers do) when called; an archive whose code defines ``__setstate__``, which
``torch.jit.load`` runs on load, is refused (the checkpoint loader's archive check) unless the
user passes ``--trust-dsr-code``. ``package.module:factory`` is the user's own Python, imported
and called, so it too needs ``--trust-dsr-code`` (library callers: ``trust_code=True``): without
it nothing is imported. Nothing here runs during ``inspect``, which takes no DSR."""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facediag.errors import CheckpointError
from facediag.models.checkpoint import WEIGHT_KEYS
from facediag.models.fingerprint import fingerprint_state_dict, sha256_file
from facediag.models.onnx import is_onnx_file, load_onnx_image_module
from facediag.models.safe_load import (
    check_torchscript_archive,
    check_zip_archive,
    quiet_torch_deprecations,
    read_weights_file,
    sniff_format,
)

SIZE = 112
# Outputs a little outside [0,1] are ordinary overshoot and get clamped; beyond this the
# model speaks another convention ([-1,1] or [0,255]) and its output would be misread.
_RANGE_SLACK = 0.25
TRUST_FLAG = "--trust-dsr-code"
# The process default of load_dsr's trust_code: False; --trust-dsr-code sets it for one command.
_trust = {"code": False}


def trust_dsr_code(trust: bool) -> bool:
    """Set whether load_dsr may run a DSR's own code by default (a TorchScript archive's load-time
    hooks, a module:factory); returns the previous setting, to put back."""
    previous, _trust["code"] = _trust["code"], bool(trust)
    return previous


class DSR:
    """Callable ``[N,3,h,w]`` RGB in [0,1] -> ``[N,3,112,112]`` RGB in [0,1]."""

    name: str = "dsr"
    fingerprint: str = ""

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        _check_input(lr)
        with torch.inference_mode():
            out = self.upscale(lr)
        return _check_output(out, lr.shape[0], self.name).clamp(0, 1).to(lr.device)

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BicubicDSR(DSR):
    """Plain bicubic upsampling: the baseline every learned DSR must beat."""

    name = "bicubic"
    fingerprint = "bicubic-112"

    def upscale(self, lr):
        return F.interpolate(lr.float(), size=(SIZE, SIZE), mode="bicubic",
                             align_corners=False, antialias=False)


class ModuleDSR(DSR):
    """A DSR network (TorchScript or nn.Module) run on ``device``."""

    def __init__(self, module: nn.Module, name: str, fingerprint: str, device="cpu"):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.name, self.fingerprint = name, fingerprint

    def upscale(self, lr):
        return self.module(lr.to(self.device, torch.float32))


def load_dsr(spec: str | None, weights: str | None = None, device="cpu", trust_code: bool | None = None) -> DSR:
    """None or "bicubic" -> BicubicDSR; a file path -> an ONNX graph (run by onnxruntime) or a
    TorchScript DSR;
    "package.module:factory" (+ ``weights``) -> factory() with weights loaded strictly.

    ``trust_code`` (default: the process setting, off unless --trust-dsr-code): whether the DSR's
    own code may run beyond a plain module's forward; without it a TorchScript archive with
    load-time hooks and any module:factory are refused before anything of theirs runs."""
    trust = _trust["code"] if trust_code is None else bool(trust_code)
    if spec is None or spec == "bicubic":
        if weights is not None:
            raise CheckpointError("DSR weights given without a DSR model "
                                  "(use 'package.module:factory' or a TorchScript file)")
        return BicubicDSR()
    if Path(spec).is_file():
        if weights is not None:
            raise CheckpointError(f"DSR {Path(spec).name}: an ONNX or TorchScript DSR carries its own "
                                  "weights; separate DSR weights only go with a factory")
        if is_onnx_file(spec):  # graph operators only, run by onnxruntime: the recommended form
            return ModuleDSR(load_onnx_image_module(spec), Path(spec).name, sha256_file(spec), "cpu")
        return _load_scripted(Path(spec), device, trust)
    if ":" in spec:
        if not trust:
            raise CheckpointError(f"DSR '{spec}': a module:factory is Python code that facediag would import "
                                  f"and call, your own code run as such; pass {TRUST_FLAG} to run it")
        return _load_factory(spec, weights, device)
    raise CheckpointError(f"DSR '{spec}': no such file, and not 'package.module:factory'")


def _load_scripted(path: Path, device, trust: bool = False) -> ModuleDSR:
    kind = sniff_format(path)
    if kind != "torchscript":
        raise CheckpointError(f"DSR {path.name}: is a {kind.replace('_', ' ')} file, not "
                              "TorchScript; give 'package.module:factory' with its weights")
    if trust:
        check_zip_archive(path)  # a zip bomb is refused before torch reads it
    else:  # the checkpoint loader's check: zip bounds, and no code torch.jit.load would run
        check_torchscript_archive(path, name=f"DSR {path.name}",
                                  advice=f"facediag runs no code from a file unless you pass {TRUST_FLAG} "
                                         "(then it runs as your own code)")
    try:
        with quiet_torch_deprecations():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise CheckpointError(f"DSR {path.name}: cannot be loaded as TorchScript: "
                              f"{str(e).strip().splitlines()[0]}") from None
    return ModuleDSR(module, path.name, sha256_file(path), device)


def _load_factory(spec: str, weights: str | None, device) -> ModuleDSR:
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"DSR '{spec}': cannot import factory: {e}") from None
    try:
        module = factory()
    except Exception as e:
        raise CheckpointError(f"DSR '{spec}': factory failed: {' '.join(str(e).split())[:200]}"
                              ) from None
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"DSR '{spec}': factory returned {type(module).__name__}, "
                              "not an nn.Module")
    if weights is not None:
        raw = read_weights_file(weights)
        state = raw.payload
        if raw.kind == "pickle" and isinstance(state, dict):
            state = next((state[k] for k in WEIGHT_KEYS if isinstance(state.get(k), dict)),
                         state)
        if raw.kind == "torchscript":
            state = state.state_dict()
        try:
            module.load_state_dict(state, strict=True)
        except Exception as e:
            raise CheckpointError(f"DSR weights {Path(weights).name} do not fit '{spec}': "
                                  f"{' '.join(str(e).split())[:300]}") from None
    name = f"{spec}" + (f"@{Path(weights).name}" if weights else "")
    # Hash the weights as loaded, so a factory that fetches its own weights is covered too.
    return ModuleDSR(module, name, f"{spec}:{fingerprint_state_dict(module.state_dict())}",
                     device)


def probe_dsr(dsr: DSR, size: int | tuple[int, int]) -> None:
    """Run ``dsr`` once on a blank (mid-grey) probe of ``size`` pixels, before any work: a DSR
    that fails on the probes' size or returns other than [1, 3, 112, 112] RGB is CheckpointError
    (one line), not an error in every check that uses it."""
    h, w = (size, size) if isinstance(size, int) else size
    try:
        dsr(torch.full((1, 3, h, w), 0.5))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the DSR's own code raises on its input
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise CheckpointError(f"DSR '{dsr.name}' fails on a blank {h}x{w} probe ({detail})") from None


def _check_input(lr) -> None:
    if not isinstance(lr, torch.Tensor) or lr.dim() != 4 or lr.shape[1] != 3:
        shape = list(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
        raise CheckpointError(f"DSR input must be [N, 3, h, w] RGB, got {shape}")
    if lr.numel() and (lr.min().item() < 0 or lr.max().item() > 1):
        raise CheckpointError(f"DSR input must be RGB in [0, 1], got values in "
                              f"[{lr.min().item():.2f}, {lr.max().item():.2f}]")


def _check_output(out, n: int, name: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n, 3, SIZE, SIZE):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(f"DSR '{name}' returned {shape}, expected [{n}, 3, {SIZE}, {SIZE}]")
    if not out.numel():
        return out
    lo, hi = out.min().item(), out.max().item()
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise CheckpointError(f"DSR '{name}' returned values in [{lo:.2f}, {hi:.2f}], "
                              "expected RGB in [0, 1]")
    return out
