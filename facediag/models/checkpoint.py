"""Load EdgeFace checkpoints strictly, whatever wrapper or format they come in.

A checkpoint either loads every parameter of one EdgeFace variant exactly (same keys,
same shapes, nothing left over) or is refused with one line saying what was expected
and what was found. There is no partial load: a backbone whose keys did not match
silently stays random, which is the failure this module exists to prevent.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facediag.errors import CheckpointError
from facediag.io import atomic_save
from facediag.models.adapter import with_preset
from facediag.models.card import resolve_card
from facediag.models.edgeface import (
    CUSTOM,
    EMBEDDING_DIM,
    VARIANTS,
    build_edgeface,
    count_parameters,
    describe_entry,
    expected_layout,
    normalise_keys,
)
from facediag.models.fingerprint import sha256_file
from facediag.models.loaded import LoadedModel, run_device
from facediag.models.onnx import is_onnx_file, load_onnx
from facediag.models.presets import ModelPreset
from facediag.models.safe_load import (
    StandIn,
    clip,
    display_name,
    quiet_torch_deprecations,
    read_weights_file,
    to_plain,
)

FORMATS = ("state_dict", "training_dict", "pickled_module", "torchscript", "safetensors")

# Where training scripts put the backbone weights, the class-centre head, the label map.
WEIGHT_KEYS = ("backbone_state_dict", "model_state_dict", "state_dict", "model", "backbone",
               "net", "ema_state_dict")
HEAD_KEYS = ("arcface_state_dict", "head_state_dict", "margin_state_dict", "arcface", "head",
             "metric_fc", "margin", "classifier", "loss_state_dict", "criterion_state_dict")
LABEL_KEYS = ("subject_to_id", "label_map", "class_to_idx", "label_to_id", "subject_to_label")
INVERSE_LABEL_KEYS = ("id_to_subject", "idx_to_class", "id_to_label")


@dataclass
class VariantMatch:
    variant: str
    expected: int
    matched: int
    missing: list[str]
    unexpected: list[str]
    wrong_shape: list[str]

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    def detail(self) -> str:
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("wrong shape", self.wrong_shape)):
            if keys:
                return f"{len(keys)} {label}, e.g. '{clip(keys[0])}'"
        return "exact"


def load_checkpoint(path, arch: str | None = None, device="cpu", runtime: bool = True, card=None):
    """Load an EdgeFace checkpoint strictly. ``arch`` forces a variant (still strict);
    ``arch="custom"`` accepts a TorchScript model that is not EdgeFace, as it is.
    An ONNX file (by extension or content) comes back as a LoadedOnnx (models/onnx.py);
    ``runtime=False`` only describes it, without needing onnxruntime.

    A model card (``card``, else ``<path>.toml`` beside the file; models/card.py) gives the
    preset the model runs with; a model of another family (ONNX or TorchScript) runs as it is,
    fed through models/adapter.PresetInput. Without a card: EdgeFace's preset.

    Loading never runs the model (nor any other code from the file)."""
    path = Path(path)
    preset, card_path = resolve_card(path, card)
    loaded = _load(path, arch, torch.device(device), runtime, preset)
    if card_path is not None:
        loaded.preset, loaded.card = preset, str(card_path)
        loaded.model = with_preset(loaded.model, preset, display_name(path))
    return loaded


def _load(path: Path, arch: str | None, device: torch.device, runtime: bool, preset: ModelPreset):
    name = display_name(path)
    if arch is not None and arch != CUSTOM:
        arch = resolve_variant(arch)
    if path.is_file() and is_onnx_file(path):
        return load_onnx(path, arch=arch, runtime=runtime, preset=preset)
    raw = read_weights_file(path)
    if raw.kind == "torchscript":
        # A card naming another family is the user's word that the model is not EdgeFace.
        custom = arch is None and not preset.is_edgeface
        return _load_torchscript(path, raw.payload, CUSTOM if custom else arch, device, preset.embedding_dim)
    if not preset.is_edgeface:
        raise CheckpointError(f"{name}: its card says family {preset.family!r}, but a {raw.kind} checkpoint "
                              "holds EdgeFace weights (other families load as ONNX or TorchScript)")
    if arch == CUSTOM:
        raise CheckpointError(f"{name}: arch '{CUSTOM}' (a TorchScript model run as it is) "
                              f"needs a TorchScript file, this is a {raw.kind} checkpoint")
    if raw.kind == "safetensors":
        parts = _Parts(raw.payload, "safetensors", meta=dict(raw.metadata))
    else:
        parts = _unpack(raw.payload, name)
    prefix, state_dict = normalise_keys(parts.state_dict)
    match = detect_variant(state_dict, arch=arch, name=name, raw_keys=list(parts.state_dict))
    head = _validate_head(parts.head, name)
    model, dequantized = _instantiate(match.variant, state_dict, device, name)
    return LoadedModel(
        model=model, variant=match.variant, format=parts.format,
        parameters=count_parameters(model), matched_fraction=match.matched / match.expected,
        missing_keys=[], unexpected_keys=[],
        head=head.to(device) if head is not None else None,
        label_map=parts.label_map, meta=parts.meta, sha256=sha256_file(path), path=str(path),
        key_prefix=prefix, dequantized=dequantized,
    )


def resolve_variant(name: str) -> str:
    """'edgeface_xxs' or its short form 'xxs'."""
    for candidate in (name, f"edgeface_{name}"):
        if candidate in VARIANTS:
            return candidate
    raise CheckpointError(f"unknown EdgeFace variant '{clip(name)}' "
                          f"(known: {', '.join(VARIANTS)}; or '{CUSTOM}' for a TorchScript model)")


def match_variant(state_dict: Mapping, variant: str) -> VariantMatch:
    """Compare official-layout keys and shapes with one variant's expected layout."""
    expected = expected_layout(variant)
    found = {k: describe_entry(v) for k, v in state_dict.items()}
    common = [k for k in expected if k in found]
    wrong = [k for k in common if found[k] != expected[k]]
    return VariantMatch(variant, len(expected), len(common) - len(wrong),
                        [k for k in expected if k not in found],
                        [k for k in found if k not in expected], wrong)


def detect_variant(state_dict: Mapping, arch: str | None = None, name: str = "checkpoint",
                   raw_keys: list[str] | None = None) -> VariantMatch:
    """The variant whose layout ``state_dict`` (official keys) matches exactly, or
    CheckpointError naming the closest one."""
    raw_keys = raw_keys if raw_keys is not None else list(state_dict)
    found = (f"found {len(raw_keys)} keys like '{clip(raw_keys[0])}'" if raw_keys
             else "found no keys")
    if arch is not None:
        match = match_variant(state_dict, arch)
        if match.exact:
            return match
        raise CheckpointError(f"{name}: does not match {arch} ({match.expected} keys expected, "
                              f"{match.matched} matched: {match.detail()}; {found})")
    # Layouts are built on first use (slow-ish), so try the likely variants first: same
    # int8 / low-rank flavour as the keys show.
    packed = any(k.endswith("._packed_params") for k in state_dict)
    low_rank = any(".linear1." in k for k in state_dict)
    order = sorted(VARIANTS, key=lambda v: (VARIANTS[v].quantized != packed,
                                            (VARIANTS[v].low_rank_ratio is not None) != low_rank))
    matches = []
    for variant in order:
        matches.append(match_variant(state_dict, variant))
        if matches[-1].exact:
            return matches[-1]
    best = max(matches, key=lambda m: (m.matched, -len(m.unexpected)))
    raise CheckpointError(f"{name}: matches no EdgeFace variant (closest {best.variant}: "
                          f"{best.expected} keys expected, {best.matched} matched; {found})")


@dataclass
class _Parts:
    state_dict: Mapping
    format: str
    head: object = None
    label_map: dict | None = None
    meta: dict = field(default_factory=dict)


def _unpack(obj, name: str) -> _Parts:
    """Split an unpickled checkpoint into weights, head, label map and metadata."""
    if isinstance(obj, StandIn):
        return _Parts(_module_state_dict(obj, name), "pickled_module")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name}: holds a {clip(type(obj).__name__)}, "
                              "not a state_dict or a training checkpoint dict")
    if _is_state_dict(obj):
        return _Parts(obj, "state_dict")
    weights_key = next((k for k in WEIGHT_KEYS if k in obj and (
        _is_state_dict(obj[k]) or isinstance(obj[k], StandIn))), None)
    if weights_key is None:
        keys = clip(", ".join(clip(k, 40) for k in list(obj)[:8]), 200)
        raise CheckpointError(f"{name}: no model weights found (top-level keys: {keys}; "
                              f"expected a state_dict or one of {', '.join(WEIGHT_KEYS[:4])})")
    weights = obj[weights_key]
    if isinstance(weights, StandIn):
        weights = _module_state_dict(weights, name)
    used = {weights_key}
    head_key, head = _find_head(obj, weights_key)
    used.add(head_key)
    label_key, label_map = _find_label_map(obj, name)
    used.add(label_key)
    meta, omitted = {}, []
    for key, value in obj.items():
        if key in used:
            continue
        try:
            meta[str(key)] = to_plain(value)
        except ValueError:  # optimiser/scheduler state and other tensors: not metadata
            omitted.append(str(key))
    meta["weights_key"] = weights_key
    if omitted:
        meta["omitted_keys"] = omitted
    return _Parts(weights, "training_dict", head, label_map, meta)


def _is_state_dict(obj) -> bool:
    if not isinstance(obj, Mapping) or not obj:
        return False
    for key, value in obj.items():
        if not isinstance(key, str):
            return False
        if not (isinstance(value, torch.Tensor)
                or (key.endswith("_packed_params.dtype") and isinstance(value, torch.dtype))
                or (key.endswith("._packed_params") and isinstance(value, tuple))):
            return False
    return True


def _module_state_dict(obj: StandIn, name: str, prefix: str = "") -> OrderedDict:
    """Parameters and persistent buffers of a whole pickled nn.Module (torch.save(model)),
    read from its inert stand-in. (Nesting is bounded by safe_load.MAX_DEPTH.)"""
    fields = obj.fields if isinstance(obj, StandIn) else {}
    params, modules = fields.get("_parameters"), fields.get("_modules")
    buffers = fields.get("_buffers") or {}
    if not (isinstance(params, Mapping) and isinstance(modules, Mapping)
            and isinstance(buffers, Mapping)):
        what = type(obj)._standin_path if isinstance(obj, StandIn) else type(obj).__name__
        where = f" at '{clip(prefix[:-1])}'" if prefix else ""
        raise CheckpointError(f"{name}: holds a pickled {clip(what)} object{where}, "
                              "not a model or state_dict")
    skip = fields.get("_non_persistent_buffers_set")
    skip = {k for k in skip if isinstance(k, str)} if isinstance(
        skip, (set, frozenset, list, tuple)) else set()
    out = OrderedDict()
    entries = [(k, v, True) for k, v in params.items()] + [
        (k, v, False) for k, v in buffers.items()]
    for key, value, is_param in entries:
        if value is None or (not is_param and key in skip):
            continue
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{name}: pickled module '{clip(prefix[:-1] or '.')}' holds "
                                  f"a {clip(type(value).__name__)} under "
                                  f"'{clip(key)}', not a tensor")
        out[prefix + key] = value
    for key, child in modules.items():
        if child is None:
            continue
        if not isinstance(key, str) or not isinstance(child, StandIn):
            raise CheckpointError(f"{name}: pickled module '{clip(prefix[:-1] or '.')}' has a "
                                  f"{clip(type(child).__name__)} as submodule '{clip(key)}'")
        out.update(_module_state_dict(child, name, f"{prefix}{key}."))
    return out


def _find_head(obj: Mapping, weights_key: str):
    """(key, [C, D] class-centre tensor) of the classification head, or (None, None).

    Known head names first; otherwise any other top-level dict or module holding a
    [C, 512] ``weight`` (bare tensors elsewhere may be anything, e.g. saved embeddings).
    """
    named = [k for k in HEAD_KEYS if k in obj and k != weights_key]
    others = [k for k in obj if k not in named and k != weights_key
              and isinstance(obj[k], (Mapping, StandIn))]
    for key in named + others:
        weight = _head_weight(obj[key])
        if weight is not None and (key in named or weight.shape[1] == EMBEDDING_DIM):
            return key, weight
    return None, None


def _head_weight(value):
    if isinstance(value, StandIn):  # a whole pickled head module
        value = value.fields.get("_parameters") or {}
    if isinstance(value, torch.Tensor):
        return value if value.dim() == 2 else None
    if isinstance(value, Mapping):
        weight = value.get("weight")
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            return weight
        kernel = value.get("kernel")  # insightface-style ArcFace keeps [D, C]
        if isinstance(kernel, torch.Tensor) and kernel.dim() == 2:
            return kernel.t()
    return None


def _validate_head(weight, name: str):
    if weight is None:
        return None
    if weight.shape[1] != EMBEDDING_DIM:
        raise CheckpointError(f"{name}: head weight has shape {list(weight.shape)}, "
                              f"expected [classes, {EMBEDDING_DIM}]")
    if not _is_float_tensor(weight):
        raise CheckpointError(f"{name}: head weight is {_describe_tensor(weight)}, "
                              "expected floating point")
    return weight.detach().float()


def _find_label_map(obj: Mapping, name: str):
    for key in LABEL_KEYS + INVERSE_LABEL_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and key in INVERSE_LABEL_KEYS:
            value = dict(enumerate(value))
        if not isinstance(value, Mapping):
            raise CheckpointError(f"{name}: '{key}' is a {type(value).__name__}, "
                                  "expected a dict of subject -> class id")
        pairs = value.items() if key in LABEL_KEYS else ((v, k) for k, v in value.items())
        try:
            return key, {str(subject): _class_id(idx) for subject, idx in pairs}
        except (TypeError, ValueError):
            raise CheckpointError(f"{name}: '{key}' does not map subjects to integer "
                                  "class ids") from None
    return None, None


def _class_id(value) -> int:
    """An integer class id from an int, a numpy integer, an integral float or a
    one-element integer tensor; TypeError otherwise."""
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if (isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_quantized
            and value.layout == torch.strided and not value.is_floating_point()
            and not value.is_complex() and value.dtype != torch.bool):
        return int(value.item())
    raise TypeError(type(value).__name__)


def _instantiate(variant: str, state_dict: Mapping, device: torch.device, name: str):
    """Build ``variant`` on ``device`` and load ``state_dict`` strictly.

    int8 variants stay int8 on CPU; elsewhere (where run_device would not run them) their
    weights are dequantised into the float twin.
    """
    check_dtypes(state_dict, variant, name)
    dequantize = run_device(variant, device).type != device.type
    if dequantize:
        state_dict = dequantize_state_dict(state_dict)
    model = build_edgeface(variant, device=device, quantized=False if dequantize else None,
                           init_weights=False)
    # The layout matched exactly, so the module versions torch keys its loaders on (int8
    # Linear reads them) are those of the model just built, whatever the file carried.
    state_dict = OrderedDict(state_dict)
    state_dict._metadata = model.state_dict()._metadata
    try:
        with quiet_torch_deprecations():
            model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(f"{name}: weights do not fit {variant}: "
                              f"{clip(lines[-1] if lines else type(e).__name__, 300)}") from None
    return model.eval(), dequantize


def check_dtypes(state_dict: Mapping, variant: str, name: str = "checkpoint") -> None:
    """Refuse, naming the first bad key in the model's order, any value whose dtype the variant's layout does not
    have: floating-point tensors for float variants; for ``_q`` variants the int8 packed
    (weight, bias) pairs with their float scale and integer zero point, floats elsewhere.

    A layout match checks keys and shapes only; int32 weights would otherwise be cast
    into the float model without a word."""
    quantized = VARIANTS[variant].quantized
    layout = expected_layout(variant)
    order = [k for k in layout if k in state_dict] + [k for k in state_dict if k not in layout]
    for key in order:  # the model's order, so "first" means the same in every format
        value = state_dict[key]
        problem = _dtype_problem(key, value, state_dict) if quantized else (
            None if _is_float_tensor(value) else f"is {_describe(value)}")
        if problem:
            want = ("int8 packed Linear weights and floating-point tensors" if quantized
                    else "floating-point tensors")
            raise CheckpointError(f"{name}: '{clip(key)}' {problem}; {variant} expects {want}")


def _dtype_problem(key: str, value, state_dict: Mapping) -> str | None:
    owner, _, leaf = key.rpartition(".")
    if key.endswith("._packed_params.dtype"):
        return None if value == torch.qint8 else f"is {_describe(value)}, not torch.qint8"
    if key.endswith("._packed_params._packed_params"):
        if not (isinstance(value, tuple) and len(value) == 2):
            return f"is {_describe(value)}, not an int8 (weight, bias) pair"
        weight, bias = value
        if not (isinstance(weight, torch.Tensor) and weight.is_quantized
                and weight.dtype == torch.qint8 and weight.layout == torch.strided):
            return f"holds a weight that is {_describe(weight)}, not torch.qint8"
        if bias is not None and not _is_float_tensor(bias):
            return f"holds a bias that is {_describe(bias)}, not floating point"
        return None
    if leaf in ("scale", "zero_point") and f"{owner}._packed_params.dtype" in state_dict:
        if leaf == "scale":
            return None if _is_float_tensor(value) else f"is {_describe(value)}"
        ok = (isinstance(value, torch.Tensor) and not value.is_quantized
              and not value.is_floating_point() and not value.is_complex()
              and value.dtype != torch.bool and value.layout == torch.strided)
        return None if ok else f"is {_describe(value)}, not an integer zero point"
    return None if _is_float_tensor(value) else f"is {_describe(value)}"


def _is_float_tensor(value) -> bool:
    return (isinstance(value, torch.Tensor) and value.is_floating_point()
            and not value.is_quantized and value.layout == torch.strided
            and value.device.type != "meta")


def _describe_tensor(t: torch.Tensor) -> str:
    text = f"a {t.dtype} tensor"
    if t.layout != torch.strided:
        text = f"a {str(t.layout).replace('torch.', '')} {t.dtype} tensor"
    if t.device.type == "meta":
        text += " without data (meta)"
    return text


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return _describe_tensor(value)
    if isinstance(value, torch.dtype):
        return f"the dtype {value}"
    return f"a {clip(type(value).__name__)}"


def dequantize_state_dict(state_dict: Mapping) -> OrderedDict:
    """Turn int8 packed Linear entries into float ``weight``/``bias`` entries."""
    out = OrderedDict()
    for key, value in state_dict.items():
        owner, _, leaf = key.rpartition(".")
        if key.endswith("._packed_params._packed_params"):
            owner = key[: -len("._packed_params._packed_params")]
            weight, bias = value
            out[f"{owner}.weight"] = weight.dequantize()
            if bias is not None:
                out[f"{owner}.bias"] = bias
        elif key.endswith("._packed_params.dtype") or (
                leaf in ("scale", "zero_point") and f"{owner}._packed_params.dtype" in state_dict):
            continue
        else:
            out[key] = value
    return out


class ScriptedEmbedder(nn.Module):
    """A TorchScript model that is not an EdgeFace layout, used as is (its own code runs
    when it embeds, never when it is loaded). Each call checks it returned [N, dim]
    (512 unless its card says otherwise)."""

    def __init__(self, scripted, name: str = "TorchScript model", dim: int = EMBEDDING_DIM):
        super().__init__()
        self.scripted = scripted
        self.name = name
        self.dim = dim

    def forward(self, x):
        out = self.scripted(x)
        n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() else "N"
        if not (isinstance(out, torch.Tensor) and out.dim() == 2
                and out.shape[0] == n and out.shape[1] == self.dim):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CheckpointError(f"{self.name}: TorchScript model returns {shape} for a "
                                  f"{list(x.shape)} input, expected [{n}, {self.dim}]")
        return out


def _load_torchscript(path: Path, scripted, arch: str | None, device: torch.device, dim: int = EMBEDDING_DIM):
    """EdgeFace-layout archives are read into our EdgeFace (their code never runs); other
    scripted models only when sized like an EdgeFace variant with a 512-wide last layer,
    or on ``arch="custom"``. Nothing is run to decide."""
    name = display_name(path)
    state_dict = scripted.state_dict()
    common = {"format": "torchscript", "head": None, "label_map": None,
              "sha256": sha256_file(path), "path": str(path), "missing_keys": [],
              "unexpected_keys": [], "matched_fraction": 1.0}
    parameters = sum(p.numel() for p in scripted.parameters())
    if arch == CUSTOM:
        return LoadedModel(model=ScriptedEmbedder(scripted, name, dim).to(device).eval(),
                                variant=CUSTOM, parameters=parameters, key_prefix="",
                                meta={"arch": "custom TorchScript model, run as it is"},
                                **common)
    prefix, normalised = normalise_keys(state_dict)
    try:
        match = detect_variant(normalised, arch=arch, name=name, raw_keys=list(state_dict))
    except CheckpointError:
        if arch is not None:
            raise
        like = _sized_like_edgeface(state_dict, parameters, name)
        return LoadedModel(model=ScriptedEmbedder(scripted, name).to(device).eval(),
                                variant="torchscript", parameters=parameters, key_prefix="",
                                meta={"parameter_count_of": like}, **common)
    model, dequantized = _instantiate(match.variant, normalised, device, name)
    return LoadedModel(model=model, variant=match.variant,
                            parameters=count_parameters(model), key_prefix=prefix,
                            dequantized=dequantized, meta={}, **common)


@functools.lru_cache(maxsize=1)
def variant_parameter_counts() -> dict[str, int]:
    """Learnable numbers of every variant (int8 ones count like their float twin)."""
    counts = {}
    for variant in VARIANTS:
        model = build_edgeface(variant, device="meta", quantized=False)
        counts[variant] = sum(p.numel() for p in model.parameters())
    return counts


def _sized_like_edgeface(state_dict: Mapping, parameters: int, name: str) -> str:
    """The variant a foreign scripted model has the size of, judged without running it:
    same parameter count, and a last layer 512 wide. CheckpointError otherwise."""
    advice = f"pass --arch {CUSTOM} to run it as it is"
    same = [v for v, n in variant_parameter_counts().items() if n == parameters]
    if not same:
        raise CheckpointError(f"{name}: TorchScript model with {parameters:,} parameters whose "
                              "keys match no EdgeFace variant and whose size matches none "
                              f"either; {advice}")
    last = next((v for v in reversed(list(state_dict.values()))
                 if isinstance(v, torch.Tensor) and v.dim() >= 1), None)
    if last is None or last.shape[0] != EMBEDDING_DIM:
        width = "none" if last is None else last.shape[0]
        raise CheckpointError(f"{name}: TorchScript model sized like {same[0]} but its last "
                              f"layer is {width} wide, not {EMBEDDING_DIM}; {advice}")
    return same[0]


def save_state_dict(model: nn.Module, path) -> str:
    """Write ``model``'s weights as an official-layout plain state_dict, atomically.

    Refuses a model whose keys match no EdgeFace variant. Returns the file's sha256.
    """
    path = Path(path)
    _, state_dict = normalise_keys(model.state_dict())
    detect_variant(state_dict, name=type(model).__name__)
    state_dict = OrderedDict(
        (k, v.detach().cpu() if isinstance(v, torch.Tensor) else v)
        for k, v in state_dict.items())
    atomic_save(path, lambda tmp: torch.save(state_dict, tmp))
    return sha256_file(path)
