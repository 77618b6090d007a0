"""ONNX models as LoadedModels: read the graph without running it, run it with onnxruntime.

Loading parses the protobuf and validates it with ``onnx.checker`` (neither runs the graph),
reads input name/shape/dtype and the output width from the graph, and names the EdgeFace
variant from the initializers' names and shapes. The runtime session is created on the first
forward only, so ``facediag inspect`` needs the ``onnx`` package alone. Both packages are the
optional extra ``facediag[onnx]``; a command that needs a missing one says so in one line.
"""
from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facediag.errors import CheckpointError, FacediagError
from facediag.formatting import clip, display_name
from facediag.models.edgeface import CUSTOM, VARIANTS, expected_layout, normalise_keys
from facediag.models.fingerprint import sha256_file
from facediag.models.loaded import LoadedModel
from facediag.models.presets import EDGEFACE, ModelPreset

ONNX_FORMAT = "onnx"
INSTALL_HINT = "pip install 'facediag[onnx]'"
# ONNX TensorProto element types this module feeds or counts.
_NUMPY_INPUT = {1: np.float32, 10: np.float16, 11: np.float64}
_COUNTED = {1, 2, 3, 10, 11, 16}  # float, uint8, int8, float16, double, bfloat16: weights, not shape constants


def require(package: str) -> None:
    """FacediagError (one line, exit 2) when an optional ONNX package is not installed."""
    if importlib.util.find_spec(package) is None:
        raise FacediagError(f"ONNX models need the '{package}' package, which is not installed: {INSTALL_HINT}")


def is_onnx_file(path) -> bool:
    """By extension, or by content for other names: a protobuf ModelProto opens with field 1
    (ir_version, tag 0x08); zip archives, pickles and safetensors never parse as a graph."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    if head[:1] != b"\x08" or importlib.util.find_spec("onnx") is None:
        return False
    try:
        _parse(path)
    except CheckpointError:
        return False
    return True


@dataclass(kw_only=True)
class LoadedOnnx(LoadedModel):
    """An ONNX graph as a LoadedModel, with what the graph says of itself. Its variant is the
    EdgeFace variant its initializers match (CUSTOM if none), its parameters the elements of its
    weight initializers; nothing is loaded into another model, so matched_fraction is 1."""

    inputs: list[dict]
    outputs: list[dict]
    opset: int | None
    int8: bool                    # the graph holds int8 weights (dynamic quantisation)
    format: str = ONNX_FORMAT

    @property
    def embedding_dim(self) -> int | None:
        return self.outputs[0]["shape"][-1] if isinstance(self.outputs[0]["shape"][-1], int) else None


def load_onnx(path, arch: str | None = None, runtime: bool = True, preset: ModelPreset = EDGEFACE) -> LoadedOnnx:
    """Read and validate an ONNX graph; ``arch`` forces a variant name or "custom" (no detection).
    ``runtime=False``: describe only, onnxruntime need not be installed. ``preset``: what the
    graph's input and output must fit (a model card's; load_checkpoint reads the card)."""
    path = Path(path)
    name = display_name(path)
    require("onnx")
    if runtime:
        require("onnxruntime")
    graph_model = _parse(path)
    graph = graph_model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [_value_info(v) for v in graph.input if v.name not in initializers]
    outputs = [_value_info(v) for v in graph.output]
    if len(inputs) != 1:
        raise CheckpointError(f"{name}: the graph takes {len(inputs)} inputs; an embedder takes one image batch")
    if not outputs:
        raise CheckpointError(f"{name}: the graph has no output")
    layout = _input_layout(inputs[0], name, preset)
    out_shape = outputs[0]["shape"]
    if len(out_shape) != 2:
        raise CheckpointError(f"{name}: output '{clip(outputs[0]['name'])}' has shape {out_shape}; "
                              "an embedder returns [batch, dim]")
    if preset != EDGEFACE and isinstance(out_shape[1], int) and out_shape[1] != preset.embedding_dim:
        raise CheckpointError(f"{name}: output '{clip(outputs[0]['name'])}' is {out_shape[1]}-d, but its card "
                              f"({preset.name}) says embedding_dim = {preset.embedding_dim}")
    shapes, int8 = _weight_shapes(graph)
    detected = _detect_variant(shapes)
    if arch is not None and arch != CUSTOM and arch != detected:
        raise CheckpointError(f"{name}: the graph's initializers do not match {arch} "
                              f"(they match {detected if detected != CUSTOM else 'no EdgeFace variant'})")
    variant = CUSTOM if arch == CUSTOM else detected
    opset = next((o.version for o in graph_model.opset_import if o.domain in ("", "ai.onnx")), None)
    parameters = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type in _COUNTED)
    module = OnnxEmbedder(path, inputs[0], outputs[0]["name"], layout, name)
    meta = {"producer": f"{graph_model.producer_name} {graph_model.producer_version}".strip(),
            "ir_version": int(graph_model.ir_version), "int8": int8}
    return LoadedOnnx(model=module, variant=variant, path=str(path), sha256=sha256_file(path),
                      parameters=parameters, inputs=inputs, outputs=outputs, opset=opset, int8=int8, meta=meta)


def _parse(path: Path):
    """The ModelProto, validated; CheckpointError (one line) for anything else."""
    import onnx  # optional (facediag[onnx]): its absence is said by require() before any parse

    name = display_name(path)
    try:
        # External weights are resolved inside the model's folder only (onnx refuses paths outside it).
        graph_model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own DecodeError, and others on bad bytes
        raise CheckpointError(f"{name}: not a readable ONNX model ({clip(type(exc).__name__)}: "
                              f"{clip(str(exc).splitlines()[0] if str(exc) else 'unparseable', 120)})") from None
    try:
        onnx.checker.check_model(graph_model)
    except Exception as exc:  # onnx.checker.ValidationError, or a C++ error for nonsense
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CheckpointError(f"{name}: not a valid ONNX model ({clip(first, 160)})") from None
    if not graph_model.graph.node:
        raise CheckpointError(f"{name}: not a valid ONNX model (the graph has no nodes)")
    return graph_model


def _value_info(v) -> dict:
    import onnx  # optional (facediag[onnx]): only ever called on a graph it parsed

    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else None
    return {"name": v.name, "shape": dims, "dtype": dtype, "elem_type": int(t.elem_type)}


def _input_layout(info: dict, name: str, preset: ModelPreset = EDGEFACE) -> str:
    """"NCHW" or "NHWC" for a [batch, C, H, W] image input of the preset's size, or CheckpointError."""
    if info["elem_type"] not in _NUMPY_INPUT:
        raise CheckpointError(f"{name}: input '{clip(info['name'])}' is {info['dtype']}, not a float image batch")
    shape = info["shape"]
    c, h, w = preset.input_size
    fixed = [d if isinstance(d, int) else None for d in shape[1:]]
    for layout, want in (("NCHW", [c, h, w]), ("NHWC", [h, w, c])):
        if len(shape) == 4 and all(d is None or d == x for d, x in zip(fixed, want)):
            return layout
    whose = "facediag feeds" if preset == EDGEFACE else f"its card ({preset.name}) says"
    raise CheckpointError(f"{name}: input '{clip(info['name'])}' has shape {shape}; {whose} "
                          f"[batch, {c}, {h}, {w}] (or [batch, {h}, {w}, {c}]) images")


def _weight_shapes(graph) -> tuple[dict[str, tuple], bool]:
    """Initializer name -> shape, int8 weights under their float names and shapes (quantize_dynamic
    appends ``_quantized``, adds scale/zero-point tensors, transposes Gemm weights), and whether
    any was int8."""
    shapes, int8 = {}, False
    names = {t.name for t in graph.initializer}
    for t in graph.initializer:
        stem = next((t.name[: -len(s)] for s in ("_scale", "_zero_point") if t.name.endswith(s)), None)
        if stem is not None and stem + "_quantized" in names:
            continue
        key = t.name
        shape = tuple(int(d) for d in t.dims)
        if key.endswith("_quantized") and t.data_type in (2, 3):
            key, int8 = key[: -len("_quantized")], True
        if key.endswith("_Transposed") and len(shape) == 2:  # the quantiser stores Gemm weights transposed
            key, shape = key[: -len("_Transposed")], shape[::-1]
        shapes[key] = shape
    return shapes, int8


def _detect_variant(shapes: dict[str, tuple]) -> str:
    """The float EdgeFace variant whose every state_dict entry is in the graph: by name with
    its shape, or (the exporter renames the weights of Linear layers it turns into MatMul,
    stored transposed) among the unnamed initializers by shape. "custom" when none fits."""
    _, named = normalise_keys(shapes)
    anonymous = Counter(s for k, s in named.items() if not k.startswith("model.") and len(s) >= 2)
    ours = {k: s for k, s in named.items() if k.startswith("model.")}
    for variant, spec in VARIANTS.items():
        if spec.quantized:  # an int8 ONNX graph is detected as its float twin, with int8 = True
            continue
        layout = expected_layout(variant)
        if any(k not in layout or tuple(layout[k]) != s for k, s in ours.items()):
            continue
        unnamed = Counter(tuple(reversed(s)) if len(s) == 2 else tuple(s)
                          for k, s in layout.items() if k not in ours)
        if not unnamed - anonymous and len(ours) >= len(layout) // 2:
            return variant
    return CUSTOM


class OnnxEmbedder(nn.Module):
    """``model(x)`` for the embedding engine: [B, C, H, W] pixels as the preset says (torch) in, raw
    [B, D] embeddings (torch, on x's device) out, computed by onnxruntime. The session is made on
    the first call: CUDA provider for CUDA inputs when onnxruntime has it, else CPU, with torch's
    thread count so both runtimes are measured alike. A graph with a fixed batch size is fed in
    chunks of that size (the last one padded)."""

    OUTPUT_NDIM, OUTPUT_DIMS = 2, "dim"  # what one image's output is: an embedding

    def __init__(self, path: Path, input_info: dict, output_name: str, layout: str, name: str):
        super().__init__()
        self.path = Path(path)
        self.input_name = input_info["name"]
        self.input_dtype = _NUMPY_INPUT[input_info["elem_type"]]
        batch = input_info["shape"][0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.output_name = output_name
        self.layout = layout
        self.name = name
        self._sessions: dict[str, object] = {}

    def session(self, cuda: bool = False):
        import onnxruntime as ort  # optional (facediag[onnx]): load_onnx has required it

        available = ort.get_available_providers()
        kind = "cuda" if cuda and "CUDAExecutionProvider" in available else "cpu"
        if kind not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3  # warnings about unused initializers are not the user's business
            providers = (["CUDAExecutionProvider"] if kind == "cuda" else []) + ["CPUExecutionProvider"]
            try:
                self._sessions[kind] = ort.InferenceSession(str(self.path), options, providers=providers)
            except Exception as exc:  # onnxruntime refuses graphs the checker let through (unknown ops, ...)
                first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                raise CheckpointError(f"{self.name}: onnxruntime cannot run this graph ({clip(first, 160)})") from None
        return self._sessions[kind]

    def providers(self, cuda: bool = False) -> list[str]:
        return list(self.session(cuda).get_providers())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self.session(x.is_cuda)
        arr = x.detach().float().cpu()
        if self.layout == "NHWC":
            arr = arr.permute(0, 2, 3, 1)
        arr = np.ascontiguousarray(arr.numpy(), dtype=self.input_dtype)
        step = self.fixed_batch or len(arr) or 1
        outs = []
        for start in range(0, len(arr), step):
            chunk = arr[start:start + step]
            n = len(chunk)
            if n < step:  # a fixed-batch graph: pad, then drop the padding
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), chunk.dtype)])
            out = np.asarray(session.run([self.output_name], {self.input_name: chunk})[0])
            if out.ndim != self.OUTPUT_NDIM or out.shape[0] != len(chunk):  # a 0-d scalar, a vector, ...
                raise CheckpointError(f"{self.name}: the graph returns {list(out.shape)} for a "
                                      f"{list(chunk.shape)} input, expected [{len(chunk)}, {self.OUTPUT_DIMS}]")
            outs.append(out[:n])
        out = np.concatenate(outs) if outs else np.zeros((0,) * self.OUTPUT_NDIM, np.float32)
        if out.ndim != self.OUTPUT_NDIM or out.shape[0] != len(arr):
            raise CheckpointError(f"{self.name}: the graph returns {list(out.shape)} for a "
                                  f"{list(x.shape)} input, expected [{len(arr)}, {self.OUTPUT_DIMS}]")
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


class OnnxImageModule(OnnxEmbedder):
    """An image-to-image graph (a super-resolution DSR): [B, 3, h, w] in, [B, 3, H, W] out, by
    onnxruntime, which runs graph operators only: no code from the file."""

    OUTPUT_NDIM, OUTPUT_DIMS = 4, "3, H, W"


def load_onnx_image_module(path) -> OnnxImageModule:
    """Read and validate an image-to-image ONNX graph (one float [batch, 3, h, w] input, NCHW; the
    low-resolution size may be fixed or free), without running it."""
    path = Path(path)
    name = display_name(path)
    require("onnx")
    require("onnxruntime")
    graph = _parse(path).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [_value_info(v) for v in graph.input if v.name not in initializers]
    if len(inputs) != 1 or not graph.output:
        raise CheckpointError(f"{name}: the graph takes {len(inputs)} inputs and gives {len(graph.output)} "
                              f"outputs; an image-to-image graph takes one image batch and gives one")
    info = inputs[0]
    channels = info["shape"][1] if len(info["shape"]) == 4 else None
    if info["elem_type"] not in _NUMPY_INPUT or len(info["shape"]) != 4 or channels not in (3, None):
        raise CheckpointError(f"{name}: input '{clip(info['name'])}' is {info['dtype']} {info['shape']}; an "
                              f"image-to-image graph takes a float [batch, 3, h, w] batch")
    return OnnxImageModule(path, info, graph.output[0].name, "NCHW", name)
