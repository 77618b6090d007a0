"""EdgeFace variants: timm EdgeNeXt with a 512-d head, state_dict-compatible with the
official otroshi/edgeface checkpoints (keys prefixed ``model.``)."""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from facediag.errors import CheckpointError

EMBEDDING_DIM = 512

# The variant of a model that is not EdgeFace, run as it is (its own code or graph): a TorchScript
# model on ``arch="custom"``, an ONNX graph whose weights match no variant, a module wrapped from memory.
CUSTOM = "custom"


@dataclass(frozen=True)
class VariantSpec:
    arch: str                      # timm architecture
    low_rank_ratio: float | None   # every non-head nn.Linear split into two low-rank linears
    quantized: bool                # dynamic int8 quantisation of every nn.Linear


VARIANTS: dict[str, VariantSpec] = {
    "edgeface_xxs": VariantSpec("edgenext_xx_small", None, False),
    "edgeface_base": VariantSpec("edgenext_base", None, False),
    "edgeface_xs_gamma_06": VariantSpec("edgenext_x_small", 0.6, False),
    "edgeface_s_gamma_05": VariantSpec("edgenext_small", 0.5, False),
    "edgeface_xs_q": VariantSpec("edgenext_x_small", None, True),
    "edgeface_xxs_q": VariantSpec("edgenext_xx_small", None, True),
}


class LowRankLinear(nn.Module):
    """``linear2(linear1(x))`` with a rank-r bottleneck (official name: LoRaLin)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.linear1 = nn.Linear(in_features, rank, bias=False)
        self.linear2 = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x):
        return self.linear2(self.linear1(x))


def low_rank(in_features: int, out_features: int, ratio: float) -> int:
    return max(2, int(min(in_features, out_features) * ratio))


def _replace_with_low_rank(module: nn.Module, ratio: float) -> None:
    for name, child in module.named_children():
        # Substring test as in the official code: the timm module named `head` is skipped
        # as a whole but its child `fc` is not, so head.fc becomes low-rank too.
        if isinstance(child, nn.Linear) and "head" not in name:
            setattr(module, name, LowRankLinear(child.in_features, child.out_features,
                                                low_rank(child.in_features, child.out_features,
                                                         ratio),
                                                bias=child.bias is not None))
        else:
            _replace_with_low_rank(child, ratio)


class EdgeFace(nn.Module):
    """EdgeFace backbone. Input: RGB 112x112 scaled to [-1, 1]; output: RAW 512-d
    embeddings (not L2-normalised).

    ``quantized=False`` on a ``_q`` variant builds its float twin (same keys once
    dequantised), used where int8 kernels are unavailable (CUDA).
    """

    def __init__(self, variant: str = "edgeface_xxs", quantized: bool | None = None):
        import timm  # takes seconds to import: only when a model is built

        super().__init__()
        spec = variant_spec(variant)
        self.variant = variant
        self.quantized = False
        self.model = timm.create_model(spec.arch, pretrained=False)
        self.model.reset_classifier(EMBEDDING_DIM)
        if spec.low_rank_ratio is not None:
            _replace_with_low_rank(self, spec.low_rank_ratio)
        if spec.quantized if quantized is None else quantized:
            self.quantize_()

    def quantize_(self) -> EdgeFace:
        """Dynamic int8 quantisation of every nn.Linear, in place (CPU only)."""
        with warnings.catch_warnings():  # torch.ao deprecation notice on every call
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(self, {nn.Linear}, dtype=torch.qint8,
                                                   inplace=True)
        self.quantized = True
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def variant_spec(variant: str) -> VariantSpec:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise CheckpointError(f"unknown EdgeFace variant '{variant}' "
                              f"(known: {', '.join(VARIANTS)})") from None


def build_edgeface(variant: str, device="cpu", quantized: bool | None = None,
                   init_weights: bool = True) -> EdgeFace:
    """EdgeFace in eval mode on ``device`` ("meta" allocates nothing).

    ``init_weights=False`` skips timm's random initialisation (most of the build time)
    and leaves the weights as zeros, for a caller that loads every one of them next.
    Quantised variants run on CPU only (PyTorch has no int8 dynamic kernels elsewhere).
    """
    spec = variant_spec(variant)
    is_quantized = spec.quantized if quantized is None else quantized
    if is_quantized and torch.device(device).type != "cpu":
        raise CheckpointError(f"{variant} is int8-quantised and runs on CPU only, not {device}")
    if init_weights:
        with torch.device(device):
            return EdgeFace(variant, quantized).eval()
    with torch.device("meta"):
        model = EdgeFace(variant, quantized=False)
    if any(True for _ in model.buffers()):  # would stay uninitialised: not in a state_dict
        raise RuntimeError(f"{variant} has buffers; build it with init_weights=True")
    model.to_empty(device=device)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # quantisation below reads the values
    if is_quantized:
        model.quantize_()
    return model.eval()


def describe_entry(value):
    """Layout signature of one state_dict value: a shape tuple for tensors, "dtype" for
    a packed-params dtype, ("tuple", weight shape) for int8 packed (weight, bias)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, torch.dtype):
        return "dtype"
    if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
        return ("tuple", tuple(value[0].shape))
    return type(value).__name__


def describe_state_dict(state_dict) -> dict:
    return {k: describe_entry(v) for k, v in state_dict.items()}


@functools.lru_cache(maxsize=None)
def expected_layout(variant: str) -> dict:
    """Every state_dict key of ``variant`` with its signature (see describe_entry), in order.

    Built on the meta device (no weights allocated); the int8 layout is derived from the
    float one because quantisation needs real weights.
    """
    spec = variant_spec(variant)
    float_model = build_edgeface(variant, device="meta", quantized=False)
    float_layout = describe_state_dict(float_model.state_dict())
    if not spec.quantized:
        return float_layout
    linears = {n for n, m in float_model.named_modules() if isinstance(m, nn.Linear)}
    layout = {}
    for key, shape in float_layout.items():
        owner, _, leaf = key.rpartition(".")
        if owner not in linears:
            layout[key] = shape
        elif leaf == "weight":  # DynamicQuantizedLinear's own state_dict order
            layout[f"{owner}.scale"] = ()
            layout[f"{owner}.zero_point"] = ()
            layout[f"{owner}._packed_params.dtype"] = "dtype"
            layout[f"{owner}._packed_params._packed_params"] = ("tuple", shape)
    return layout


def count_parameters(model: nn.Module) -> int:
    """Learnable numbers, counting int8 weights and biases (which are not Parameters)."""
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.Linear):
            bias = module.bias()
            total += module.weight().numel() + (bias.numel() if bias is not None else 0)
    return total


# Wrapper names a backbone's keys may sit under (DataParallel, torch.compile, trainers).
PREFIX_TOKENS = frozenset({"module", "model", "backbone", "_orig_mod"})
_ANCHOR = "stem.0.weight"  # first key of every EdgeNeXt


def normalise_keys(state_dict: Mapping) -> tuple[str, OrderedDict]:
    """Official ``model.``-prefixed keys, and the wrapper prefix that was stripped.

    The prefix is whatever precedes the EdgeNeXt stem in the file, accepted only when
    made of known wrapper names; otherwise the keys are returned unchanged (and will
    match no variant).
    """
    anchor = next((k for k in state_dict if k.endswith(_ANCHOR)), None)
    if anchor is None:
        return "", OrderedDict(state_dict)
    prefix = anchor[: -len(_ANCHOR)]
    if prefix and (not prefix.endswith(".")
                   or any(tok not in PREFIX_TOKENS for tok in prefix[:-1].split("."))):
        return "", OrderedDict(state_dict)
    return prefix, OrderedDict(
        ("model." + k[len(prefix):] if k.startswith(prefix) else k, v)
        for k, v in state_dict.items())
