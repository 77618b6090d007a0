"""Read weights files without ever running code from them.

Pickled checkpoints go through ``torch.load(weights_only=True)`` only. Globals that
torch does not allow by default (a ``__main__`` dataclass config, ``argparse.Namespace``,
a whole pickled ``nn.Module``) are found by scanning the pickle opcodes first and are
registered as inert :class:`StandIn` classes under their pickled names, so they come
back as plain field holders: the real class is never imported and nothing it names is
called. Globals that only make sense as code-execution gadgets (``os.system``,
``builtins.eval``, ``subprocess.Popen`` ...) refuse the whole file.

TorchScript archives load through ``torch.jit.load`` (it does not unpickle Python
objects), safetensors through the safetensors library.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickletools
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from facediag.errors import CheckpointError

# Modules whose globals in a checkpoint can only mean "run something".
_GADGET_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "shutil", "socket",
    "importlib", "runpy", "pty", "ctypes", "pickle", "_pickle", "cPickle", "marshal",
    "code", "codeop", "commands", "webbrowser", "multiprocessing", "signal", "platform",
    "pdb", "bdb", "timeit", "io", "_io", "tempfile", "asyncio", "threading", "_thread",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests", "dill", "cloudpickle",
    "torch.hub", "torch.jit", "torch.package",
})
_GADGET_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr",
    "globals", "locals", "vars", "input", "breakpoint", "apply", "execfile", "file",
    "reload", "exit", "quit", "help", "memoryview",
})

# numpy scalars/arrays/dtypes inside metrics (np.float64 val_accuracy): the reconstructors
# torch's docs suggest allow-listing; they only rebuild data, under both numpy 1 and 2 names.
try:
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray
_NUMPY_SAFE = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")] + [
    (getattr(_np_multiarray, fn), f"{mod}.multiarray.{fn}")
    for fn in ("scalar", "_reconstruct") for mod in ("numpy.core", "numpy._core")
] + [(getattr(np.dtypes, n), f"numpy.dtypes.{n}")
     for n in dir(getattr(np, "dtypes", None)) if n.endswith("DType")]

_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_KNOWN_MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"\x1f\x8b": "gzip data", b"\x89HDF": "an HDF5 file (Keras?)", b"%PDF": "a PDF",
}


class StandIn:
    """Inert placeholder for a class named in a checkpoint; holds the pickled fields.

    Constructing one (pickle NEWOBJ or REDUCE) only records the arguments.
    """

    _standin_path = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_standin_args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(
                s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_standin_state"] = state

    @property
    def fields(self) -> dict:
        """The pickled instance fields (empty for objects rebuilt from arguments only)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_standin_")}

    def __repr__(self):
        return f"StandIn({self._standin_path})"


def _standin_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return type(name, (StandIn,), {"__module__": module, "_standin_path": path})


@dataclass
class RawCheckpoint:
    """What a weights file holds, before any interpretation."""

    kind: str            # "pickle", "torchscript" or "safetensors"
    payload: Any         # unpickled object, ScriptModule, or dict of tensors
    metadata: dict       # safetensors header metadata; empty otherwise


def read_weights_file(path, map_location="cpu") -> RawCheckpoint:
    """Load a torch.save pickle, TorchScript archive or safetensors file safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    kind = sniff_format(path)
    try:
        with quiet_torch_deprecations():
            return _read(path, kind, map_location)
    except CheckpointError:
        raise
    except Exception as e:  # torch/zip/safetensors errors on corrupt files: one line
        raise CheckpointError(f"{path.name}: cannot be read as {kind.replace('_', ' ')} "
                              f"(truncated or corrupt?): {_one_line(e)}") from None


def _read(path: Path, kind: str, map_location) -> RawCheckpoint:
    if kind == "torchscript":
        return RawCheckpoint(kind, torch.jit.load(str(path), map_location=map_location), {})
    if kind == "safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata() or {})
        return RawCheckpoint(kind, load_file(str(path), device=str(map_location)), metadata)
    return RawCheckpoint("pickle", load_pickled(path, map_location, kind), {})


def sniff_format(path) -> str:
    """'torch_zip', 'torch_legacy', 'torchscript' or 'safetensors', from the file's bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path.name}: broken zip archive (truncated?): {_one_line(e)}")
        if any(PurePosixPath(n).name == "constants.pkl" for n in names):
            return "torchscript"
        return "torch_zip"
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch_legacy"
    if len(head) >= 10 and head[8:10] in (b"{\"", b"{}"):
        return "safetensors"
    what = next((w for magic, w in _KNOWN_MAGIC.items() if head.startswith(magic)), None)
    if what is None:
        what = "empty" if not head else f"starts with {head[:8].hex(' ')}"
    raise CheckpointError(f"{path.name}: not a PyTorch, TorchScript or safetensors file ({what})")


def load_pickled(path, map_location="cpu", kind: str | None = None) -> Any:
    """torch.load(weights_only=True) with unknown classes as StandIns; gadgets refused."""
    path = Path(path)
    kind = kind or sniff_format(path)
    if kind not in ("torch_zip", "torch_legacy"):
        raise CheckpointError(f"{path.name}: not a torch.save checkpoint ({kind})")
    found = _globals_in_checkpoint(path, kind)
    gadgets = sorted(g for g in found if _is_gadget(g))
    if gadgets:
        raise CheckpointError(f"{path.name}: refused, the pickle calls {', '.join(gadgets)} "
                              "(code execution on load); not loading it")
    # torch resolves its own allow-list before user globals, so stand-ins registered for
    # names torch already knows (tensor rebuilders, OrderedDict) are never used. Names
    # the caller has allow-listed itself keep their real class.
    trusted = {name for _, name in _NUMPY_SAFE} | {
        g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"
        for g in torch.serialization.get_safe_globals()}
    stand_ins = [(_standin_class(g), g) for g in sorted(found - trusted)]
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE + stand_ins), \
                quiet_torch_deprecations():
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path.name}: cannot be loaded safely: {_unpickler_reason(e)}"
                              ) from None


def _globals_in_checkpoint(path: Path, kind: str) -> set[str]:
    """Every 'module.name' a GLOBAL opcode names, without unpickling anything."""
    try:
        if kind == "torch_zip":
            with zipfile.ZipFile(path) as zf:
                pkls = [n for n in zf.namelist()
                        if PurePosixPath(n).name == "data.pkl" and n.count("/") == 1]
                if len(pkls) != 1:
                    raise CheckpointError(f"{path.name}: zip archive without a torch data.pkl")
                stream, count = io.BytesIO(zf.read(pkls[0])), 1
        else:
            # legacy torch.save: magic, protocol, sys_info, then the object (then storage keys)
            stream, count = open(path, "rb"), 4
        found: set[str] = set()
        with stream:
            for _ in range(count):
                for op, arg, _pos in pickletools.genops(stream):
                    if op.name in ("GLOBAL", "INST"):
                        module, name = arg.split(" ", 1)
                        found.add(f"{module}.{name}")
        return found
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path.name}: corrupt pickle (truncated?): {_one_line(e)}") from None


def _is_gadget(path: str) -> bool:
    module, _, name = path.rpartition(".")
    if module in ("builtins", "__builtin__"):
        return name in _GADGET_BUILTINS
    return any(module == m or module.startswith(m + ".") for m in _GADGET_MODULES)


def to_plain(obj: Any, max_tensor_numel: int = 1) -> Any:
    """Render loaded metadata as JSON-friendly values; StandIns become dicts.

    Raises ValueError for tensors/arrays larger than ``max_tensor_numel`` (weights and
    optimiser state do not belong in metadata).
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        size = obj.numel() if isinstance(obj, torch.Tensor) else np.size(obj)
        if size > max_tensor_numel:
            raise ValueError(f"tensor with {size} elements")
        return obj.tolist() if size != 1 else obj.reshape(-1)[0].item()
    if isinstance(obj, torch.dtype):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_plain(v, max_tensor_numel) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v, max_tensor_numel) for v in obj]
    if isinstance(obj, StandIn):
        args = obj.__dict__["_standin_args"]
        if obj._standin_path.startswith("pathlib.") and all(isinstance(a, str) for a in args):
            return os.path.join(*args) if args else "."
        out = {"__class__": obj._standin_path}
        if args:
            out["__args__"] = to_plain(list(args), max_tensor_numel)
        if "_standin_state" in obj.__dict__:
            out["__state__"] = to_plain(obj.__dict__["_standin_state"], max_tensor_numel)
        out.update(to_plain(obj.fields, max_tensor_numel))
        return out
    if isinstance(obj, type):
        return getattr(obj, "_standin_path", f"{obj.__module__}.{obj.__qualname__}")
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex() if len(obj) <= 64 else f"<{len(obj)} bytes>"
    return repr(obj)


@contextlib.contextmanager
def quiet_torch_deprecations():
    """Silence torch's notices about the formats we must read (deprecated TorchScript,
    int8 tensors and storages; pickle protocols): a real problem comes back as an error."""
    with warnings.catch_warnings():
        for pattern in (r"`torch\.jit\.\w+` is deprecated", r"TypedStorage is deprecated",
                        r"torch\.quantize_per_tensor", r"Detected pickle protocol"):
            warnings.filterwarnings("ignore", message=pattern)
        yield


def _unpickler_reason(e: BaseException) -> str:
    """The actual reason inside torch's long weights_only failure text (whose advice,
    weights_only=False, is exactly what must not be done)."""
    text = str(e)
    marker = "WeightsUnpickler error:"
    if marker not in text:
        return _one_line(e)
    reason = " ".join(text.split(marker, 1)[1].split("Check the documentation")[0].split())
    if reason.startswith("Unsupported operand"):
        reason += " (pickle protocol above 2? re-save with torch.save's default protocol)"
    return reason[:300]


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
