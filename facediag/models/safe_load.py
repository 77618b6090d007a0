"""Read weights files without ever running code from them, and without letting a small
file make us read, build or walk something huge.

Pickled checkpoints go through ``torch.load(weights_only=True)`` only. Before torch sees
a byte, the file is bounded: the zip directory (member sizes, inflation, duplicate names),
then every pickle opcode in a dry scan that builds nothing (opcode count, size of what
literals ask constructors to allocate, declared storage sizes, mark nesting). Globals
that torch does not allow by default (a ``__main__`` dataclass config,
``argparse.Namespace``, a whole pickled ``nn.Module``) are found by that scan and
registered as inert :class:`StandIn` classes under their pickled names: the real class
is never imported, and calling, constructing or building a stand-in only records what
was passed. Safety does not depend on knowing which names are dangerous; names that can
only mean "run something" (``os.system``, ``builtins.eval`` ...) are still refused
outright, so that the user hears what the file tried. After loading, the object graph
is walked once, iteratively: too deep, cyclic or expanding to too many objects is refused,
so nothing later (metadata rendering, JSON) can recurse without bound.

TorchScript archives load through ``torch.jit.load`` (it does not unpickle Python
objects) after the same zip bounds, and are refused when their code defines
``__setstate__``, which ``torch.jit.load`` would run. Safetensors files go through the
safetensors library.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import pickletools
import tomllib
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from facediag.errors import CheckpointError, FacediagError
from facediag.formatting import clip, display_name
from facediag.formatting import one_line as _one_line
from facediag.io import read_user_text

# --- limits --------------------------------------------------------------------------
# Real checkpoints keep tensor bytes in separate zip members; the pickle only describes
# them. The byte, opcode and object limits leave 15x or more over a large real case (a base
# training dict with Adam state, a head and a 100,000-subject label map) and are reached
# within seconds; nesting leaves 4x (the figures: benchmarks/README.md, "Checkpoint loading limits").
MAX_PICKLE_BYTES = 64 * 2**20     # one pickle member (data.pkl) as stored in the zip directory
MAX_PICKLE_OPS = 5_000_000        # opcodes over all pickles of one file (~1.5 M label-map entries)
MAX_OBJECTS = 5_000_000           # objects the loaded structure expands to, shared ones each time
MAX_DEPTH = 100                   # container nesting; a whole pickled EdgeFace module is ~25 deep
MAX_ZIP_MEMBERS = 65_536          # torch.save writes one member per storage (~1,000 for a training dict)
# torch.save and torch.jit.save store tensors uncompressed (TorchScript deflates its code
# only), so all members together are about the size of the file. A zip bomb is not.
MAX_INFLATION = 10
INFLATION_SLACK = 2**20           # bytes, so tiny archives with compressed code still pass

# Modules whose globals in a checkpoint can only mean "run something". Not a safety
# boundary (stand-ins are inert whatever their name): a clearer refusal.
_GADGET_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "shutil", "socket",
    "importlib", "runpy", "pty", "ctypes", "pickle", "_pickle", "cPickle", "marshal",
    "code", "codeop", "commands", "webbrowser", "multiprocessing", "signal", "platform",
    "pdb", "bdb", "timeit", "io", "_io", "tempfile", "asyncio", "threading", "_thread",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests", "dill", "cloudpickle",
    "cProfile", "profile", "trace", "torch.hub", "torch.jit", "torch.package",
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
_LEGACY_PICKLES = 5  # magic, protocol, sys_info, the object, the storage keys
_KNOWN_MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"\x1f\x8b": "gzip data", b"\x89HDF": "an HDF5 file (Keras?)", b"%PDF": "a PDF",
}


class StandIn:
    """Inert placeholder for a class or function named in a checkpoint.

    Calling the stand-in class (pickle REDUCE), constructing it (NEWOBJ) or building it
    (BUILD) only records what was passed. Instances have no ``__dict__``: nothing in the
    file can shadow a method (``__setstate__``, ``keys`` ...) that torch or a duck-typed
    constructor would then call. Read the pickled fields with :attr:`fields`.
    """

    __slots__ = ("_standin_args", "_standin_fields", "_standin_kwargs", "_standin_state")
    _standin_path = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "_standin_args", args)
        object.__setattr__(obj, "_standin_kwargs", kwargs)
        object.__setattr__(obj, "_standin_fields", {})
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(
                s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        if isinstance(state, dict):
            self._standin_fields.update(state)
        else:
            object.__setattr__(self, "_standin_state", state)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self!r} is read-only")

    def __delattr__(self, name):
        raise AttributeError(f"{self!r} is read-only")

    @property
    def fields(self) -> dict:
        """The pickled instance fields (empty for objects rebuilt from arguments only)."""
        return self._standin_fields

    @property
    def args(self) -> tuple:
        """The positional arguments it was called or constructed with."""
        return self._standin_args

    @property
    def state(self):
        """A BUILD state that was not a dict of fields, or None."""
        return getattr(self, "_standin_state", None)

    def __repr__(self):
        return f"StandIn({type(self)._standin_path})"


def _standin_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return type(name or "_", (StandIn,),
                {"__module__": module, "_standin_path": path, "__slots__": ()})


@dataclass
class RawCheckpoint:
    """What a weights file holds, before any interpretation."""

    kind: str            # "pickle", "torchscript" or "safetensors"
    payload: Any         # unpickled object, ScriptModule, or dict of tensors
    metadata: dict       # safetensors header metadata; empty otherwise


def read_weights_file(path, map_location="cpu") -> RawCheckpoint:
    """Load a torch.save pickle, TorchScript archive or safetensors file safely."""
    path = Path(path)
    name = display_name(path)
    kind = "weights file"
    try:
        if not path.is_file():
            raise CheckpointError(f"{name}: no such file")
        kind = sniff_format(path)
        with quiet_torch_deprecations():
            return _read(path, kind, map_location)
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{name}: cannot be read: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - torch/zip/safetensors on corrupt files: one line
        raise CheckpointError(f"{name}: cannot be read as {kind.replace('_', ' ')} "
                              f"(truncated or corrupt?): {_one_line(e)}") from None


def _read(path: Path, kind: str, map_location) -> RawCheckpoint:
    if kind == "torchscript":
        check_torchscript_archive(path)
        return RawCheckpoint(kind, torch.jit.load(str(path), map_location=map_location), {})
    if kind == "safetensors":
        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata() or {})
        return RawCheckpoint(kind, load_file(str(path), device=str(map_location)), metadata)
    return RawCheckpoint("pickle", load_pickled(path, map_location, kind), {})


def sniff_format(path) -> str:
    """'torch_zip', 'torch_legacy', 'torchscript' or 'safetensors', from the file's bytes."""
    path = Path(path)
    name = display_name(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except Exception as e:  # noqa: BLE001 - BadZipFile, bad name encodings, offsets ...
            raise CheckpointError(f"{name}: broken zip archive (truncated?): "
                                  f"{_one_line(e)}") from None
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
    raise CheckpointError(f"{name}: not a PyTorch, TorchScript or safetensors file ({what})")


# --- zip archives --------------------------------------------------------------------

def check_zip_archive(path, zf: zipfile.ZipFile | None = None) -> list[zipfile.ZipInfo]:
    """The archive's members, after refusing what would make a reader allocate far more
    than the file's size: too many members, names that collide (the C++ reader torch
    uses looks names up case-insensitively), inflation beyond ``MAX_INFLATION``, a
    pickle member over ``MAX_PICKLE_BYTES``. Reads only the zip directory."""
    path = Path(path)
    name = display_name(path)
    try:
        with (contextlib.nullcontext(zf) if zf is not None else zipfile.ZipFile(path)) as z:
            infos = z.infolist()
    except Exception as e:  # noqa: BLE001 - any unreadable directory is bad input
        raise CheckpointError(f"{name}: broken zip archive (truncated?): {_one_line(e)}") from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise CheckpointError(f"{name}: zip archive with {len(infos):,} members "
                              f"(limit {MAX_ZIP_MEMBERS:,}); not a checkpoint")
    seen = set()
    for info in infos:
        key = info.filename.lower()
        if key in seen:
            raise CheckpointError(f"{name}: zip archive names '{clip(info.filename)}' twice; "
                                  "refusing an ambiguous archive")
        seen.add(key)
        if key.endswith(".pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"{name}: '{clip(info.filename)}' inflates to {_mib(info.file_size)} "
                f"(limit {_mib(MAX_PICKLE_BYTES)} for a pickle); refused before reading it")
    total = sum(info.file_size for info in infos)
    on_disk = path.stat().st_size
    if total > MAX_INFLATION * on_disk + INFLATION_SLACK:
        raise CheckpointError(f"{name}: zip members inflate to {_mib(total)} from "
                              f"{_mib(on_disk)} on disk (zip bomb?); refused before reading them")
    return infos


def check_torchscript_archive(path, advice: str = "facediag runs no code from a weights file (save the "
                                                  "model's state_dict instead)", name: str | None = None) -> None:
    """Zip bounds, then refuse code that ``torch.jit.load`` itself would run. ``advice`` ends the
    refusal (what the user can do instead); ``name`` names the file in it."""
    path = Path(path)
    name = name or display_name(path)
    with zipfile.ZipFile(path) as zf:
        infos = check_zip_archive(path, zf)
        for info in infos:
            parts = info.filename.split("/")
            if info.is_dir() or (len(parts) == 3 and parts[1] == "data" and parts[2].isdigit()):
                continue  # tensor storages: numbers only
            with zf.open(info) as member:
                text = member.read(info.file_size + 1)
            if b"__setstate__" in text:
                raise CheckpointError(
                    f"{name}: TorchScript code in '{clip(info.filename)}' defines "
                    f"__setstate__, which loading would run; {advice}")


# --- pickles -------------------------------------------------------------------------

def load_pickled(path, map_location="cpu", kind: str | None = None) -> Any:
    """torch.load(weights_only=True) with unknown classes as StandIns; gadgets refused."""
    path = Path(path)
    name = display_name(path)
    kind = kind or sniff_format(path)
    if kind not in ("torch_zip", "torch_legacy"):
        raise CheckpointError(f"{name}: not a torch.save checkpoint ({kind})")
    found = _globals_in_checkpoint(path, kind)
    gadgets = sorted(g for g in found if _is_gadget(g))
    if gadgets:
        raise CheckpointError(f"{name}: refused, the pickle calls {', '.join(gadgets)} "
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
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the unpickler refuses is bad input
        raise CheckpointError(f"{name}: cannot be loaded safely: {_unpickler_reason(e)}"
                              ) from None
    check_structure(obj, name)
    return obj


def _globals_in_checkpoint(path: Path, kind: str) -> set[str]:
    """Every 'module.name' the pickles name, from a dry scan that enforces the limits."""
    name = display_name(path)
    scan = _PickleScan(name)
    try:
        if kind == "torch_zip":
            with zipfile.ZipFile(path) as zf:
                infos = check_zip_archive(path, zf)
                pkls = [i for i in infos if PurePosixPath(i.filename).name.lower() == "data.pkl"
                        and i.filename.count("/") == 1]
                if len(pkls) != 1:
                    raise CheckpointError(f"{name}: zip archive without a torch data.pkl")
                with zf.open(pkls[0]) as member:
                    data = member.read(MAX_PICKLE_BYTES + 1)
                if len(data) > MAX_PICKLE_BYTES:  # the directory lied
                    raise CheckpointError(f"{name}: data.pkl is over {_mib(MAX_PICKLE_BYTES)}")
                scan.storage_budget = sum(i.file_size for i in infos)
                scan.run(io.BytesIO(data), 1)
        else:
            scan.storage_budget = path.stat().st_size  # storages follow the pickles, raw
            with open(path, "rb") as f:
                scan.run(f, _LEGACY_PICKLES)
        return scan.globals
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - opcodes that do not parse: bad input
        raise CheckpointError(f"{name}: corrupt pickle (truncated?): {_one_line(e)}") from None


def scan_pickle_globals(stream, name: str, pickles: int = 1) -> set[str]:
    """Every 'module.name' a plain pickle stream names, from the same dry scan (opcode count,
    nesting, allocation sizes; nothing built, nothing imported). For other pickled formats
    (verification ``.bin`` sets), which then unpickle with their own allow-list."""
    scan = _PickleScan(name)
    try:
        scan.run(stream, pickles)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - opcodes that do not parse: bad input
        raise CheckpointError(f"{name}: corrupt pickle (truncated?): {_one_line(e)}") from None
    return scan.globals


class _Global(str):
    """A GLOBAL's 'module.name' on the scan's stack (not a string literal)."""


_OPAQUE = object()  # any value the scan does not follow (containers, call results)
_LITERAL_OPS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


@functools.lru_cache(maxsize=1)
def _allocators() -> frozenset:
    """Globals torch allows whose call with a number allocates that many elements."""
    names = {"builtins.bytearray", "torch.Tensor", "torch.nn.parameter.Parameter"}
    names |= {f"{t.__module__}.{t.__name__}" for t in torch._tensor_classes}
    names |= {f"{t.__module__}.{t.__name__}" for t in torch._storage_classes}
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def _storage_element_sizes() -> dict:
    sizes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in torch._storage_classes:
            dtype = getattr(t, "dtype", None)
            sizes[f"{t.__module__}.{t.__name__}"] = (
                torch._utils._element_size(dtype) if isinstance(dtype, torch.dtype) else 1)
    return sizes


class _PickleScan:
    """Walks pickle opcodes building nothing: literals are followed (numbers, strings and
    tuples of them, through the memo), everything else is opaque. Enforces the limits."""

    def __init__(self, name: str):
        self.name = name
        self.ops = 0
        self.globals: set[str] = set()
        self.storages: dict = {}
        self.storage_budget = 0

    def refuse(self, why: str):
        raise CheckpointError(f"{self.name}: refused, {why}")

    def run(self, stream, count: int) -> None:
        for _ in range(count):
            self._one(stream)

    def _one(self, stream) -> None:  # noqa: C901 - one branch per opcode the allowlist understands
        stack: list = []
        metastack: list = []
        memo: dict = {}
        for op, arg, _pos in pickletools.genops(stream):
            self.ops += 1
            if self.ops > MAX_PICKLE_OPS:
                self.refuse(f"the pickle has over {MAX_PICKLE_OPS:,} opcodes")
            code = op.name
            if code in _LITERAL_OPS:
                stack.append(arg)
            elif code in _PUT_OPS:
                memo[arg] = stack[-1]
            elif code in _GET_OPS:
                stack.append(memo.get(arg, _OPAQUE))
            elif code == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif code == "MARK":
                metastack.append(stack)
                if len(metastack) > MAX_DEPTH:
                    self.refuse(f"the pickle nests deeper than {MAX_DEPTH} levels")
                stack = []
            elif code == "TUPLE":
                items, stack = stack, metastack.pop()
                stack.append(tuple(items))
            elif code in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(code[-1])
                if len(stack) < n:
                    raise ValueError(f"{code} on a stack of {len(stack)}")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif code == "EMPTY_TUPLE":
                stack.append(())
            elif code in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[code])
            elif code in ("GLOBAL", "INST"):
                module, _, attr = arg.partition(" ")
                path = _Global(f"{module}.{attr}")
                self.globals.add(str(path))
                if code == "INST":
                    stack = metastack.pop()
                stack.append(path)
            elif code == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                if isinstance(module, str) and isinstance(attr, str):
                    self.globals.add(f"{module}.{attr}")
                stack.append(_OPAQUE)
            elif code in ("REDUCE", "NEWOBJ"):
                args, func = stack.pop(), stack.pop()
                self._check_call(func, args)
                stack.append(_OPAQUE)
            elif code == "BINPERSID":
                self._check_storage(stack.pop())
                stack.append(_OPAQUE)
            else:  # generic: pop what the opcode consumes, push opaque results
                before = op.stack_before
                if pickletools.markobject in before:
                    stack = metastack.pop()
                    n = before.index(pickletools.markobject)
                else:
                    n = len(before)
                if len(stack) < n:
                    raise ValueError(f"{code} on a stack of {len(stack)}")
                if n:
                    del stack[-n:]
                stack.extend([_OPAQUE] * len(op.stack_after))

    def _check_call(self, func, args) -> None:
        if not (isinstance(func, _Global) and func in _allocators() and isinstance(args, tuple)):
            return
        count = 1
        for value in args:
            if type(value) is int:
                count *= max(abs(value), 1)
        if count > MAX_PICKLE_BYTES:
            self.refuse(f"the pickle asks {func} for {count:,} elements")

    def _check_storage(self, pid) -> None:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
            return
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if type(numel) is not int:
            return
        size = numel * _storage_element_sizes().get(storage_type, 1)
        try:
            self.storages[key] = max(self.storages.get(key, 0), size)
        except TypeError:  # unhashable key: torch refuses it anyway
            return
        total = sum(self.storages.values())
        if total > self.storage_budget:
            self.refuse(f"the pickle declares {_mib(total)} of tensor data, more than the "
                        f"file holds ({_mib(self.storage_budget)})")


def is_gadget(path: str) -> bool:
    """Whether a pickled global can only mean "run something" (os.system, builtins.eval ...)."""
    return _is_gadget(path)


def _is_gadget(path: str) -> bool:
    module, _, name = path.rpartition(".")
    if module in ("builtins", "__builtin__"):
        return name in _GADGET_BUILTINS
    return any(module == m or module.startswith(m + ".") for m in _GADGET_MODULES)


# --- the loaded object graph ---------------------------------------------------------

_END = object()


def check_structure(root, name: str = "checkpoint", what: str = "the pickled data") -> None:
    """Refuse a loaded object nested deeper than ``MAX_DEPTH``, holding a reference cycle,
    expanding to more than ``MAX_OBJECTS`` objects (shared references counted each time
    they are reached, as a recursive reader would), or a tensor carrying hooks. ``what``
    names the data in the message ("the pickled data", "the TOML").

    Iterative: a hostile structure cannot exhaust the Python stack here, and once it
    passes, recursive readers of it stay within ``MAX_DEPTH`` frames."""
    children = _children(root, name)
    if children is None:
        return
    sizes: dict[int, tuple[Any, int]] = {}  # id -> (object, expanded size); holds a reference
    on_path = {id(root)}
    frames = [[root, iter(children), 1]]
    while frames:
        frame = frames[-1]
        child = next(frame[1], _END)
        if child is _END:
            frames.pop()
            on_path.discard(id(frame[0]))
            sizes[id(frame[0])] = (frame[0], frame[2])
            if frames:
                frames[-1][2] += frame[2]
                _check_count(frames[-1][2], name, what)
            continue
        cid = id(child)
        if cid in sizes:
            frame[2] += sizes[cid][1]
        elif cid in on_path:
            raise CheckpointError(f"{name}: refused, {what} refers to itself (a reference cycle)")
        else:
            grand = _children(child, name)
            if grand is None:
                frame[2] += 1
            else:
                if len(frames) >= MAX_DEPTH:
                    raise CheckpointError(f"{name}: refused, {what} nests deeper than {MAX_DEPTH} levels")
                on_path.add(cid)
                frames.append([child, iter(grand), 1])
                continue
        _check_count(frame[2], name, what)


def _check_count(count: int, name: str, what: str = "the pickled data") -> None:
    if count > MAX_OBJECTS:
        raise CheckpointError(f"{name}: refused, {what} expands to more than {MAX_OBJECTS:,} objects")


def read_toml(path, what: str) -> dict:
    """A TOML file the user named as ``what`` ("model card", "suite"), parsed: FacediagError, one
    line, when it cannot be read, is not TOML, or nests deeper than ``MAX_DEPTH`` (the bound
    :func:`check_structure` puts on a checkpoint's data; tomllib itself recurses, so a file
    nested thousands of tables deep would otherwise end in RecursionError, as would any
    recursive reader of what it returned). Every TOML facediag reads comes through here."""
    path = Path(path)
    text = read_user_text(path, what)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FacediagError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise FacediagError(f"{path}: refused, the {what} nests deeper than Python can parse "
                            f"(a {what} nests a few levels; at most {MAX_DEPTH})") from None
    try:
        check_structure(doc, str(path), f"the {what}")
    except CheckpointError as exc:
        raise FacediagError(str(exc)) from None
    return doc


def _children(obj, name: str):
    """What a reader would descend into, or None for a leaf."""
    if isinstance(obj, (str, bytes, bytearray, int, float, complex)) or obj is None:
        return None
    if isinstance(obj, dict):
        extra = getattr(obj, "__dict__", None)  # OrderedDict._metadata of a state_dict
        items = [x for kv in obj.items() for x in kv]
        return items + list(extra.values()) if extra else items
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, StandIn):
        return [obj.args, obj._standin_kwargs, obj.state, obj.fields]
    if isinstance(obj, torch.Tensor):
        if getattr(obj, "_backward_hooks", None):
            raise CheckpointError(f"{name}: refused, a tensor carries backward hooks")
        extra = getattr(obj, "__dict__", None)
        return list(extra.values()) if extra else None
    if isinstance(obj, np.ndarray):
        return [obj.dtype] + (list(obj.flat) if obj.dtype.hasobject else [])
    if isinstance(obj, np.generic):
        return [obj.dtype]
    if isinstance(obj, np.dtype):
        out = [obj.metadata] if obj.metadata else []
        out += list(obj.fields.values()) if obj.fields else []
        return out + ([obj.subdtype] if obj.subdtype else [])
    return None


# --- rendering -----------------------------------------------------------------------

def to_plain(obj: Any, max_tensor_numel: int = 1) -> Any:
    """Render loaded metadata as JSON-friendly values; StandIns become dicts.

    Raises ValueError for tensors/arrays larger than ``max_tensor_numel`` (weights and
    optimiser state do not belong in metadata). Never calls anything from the file.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (torch.TypedStorage, torch.UntypedStorage)):
        size = obj.nbytes() if isinstance(obj, torch.UntypedStorage) else obj.size()
        if size > max_tensor_numel:
            raise ValueError(f"storage with {size} elements")
        return f"<storage of {size}>"
    if isinstance(obj, torch.Tensor):
        if obj.numel() > max_tensor_numel:
            raise ValueError(f"tensor with {obj.numel()} elements")
        return _tensor_plain(obj)
    if isinstance(obj, (np.ndarray, np.generic)):
        return _array_plain(obj, max_tensor_numel)
    if isinstance(obj, (torch.dtype, np.dtype)):
        return str(obj)
    if isinstance(obj, dict):
        return {_key_text(k): to_plain(v, max_tensor_numel) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v, max_tensor_numel) for v in obj]
    if isinstance(obj, StandIn):
        return _standin_plain(obj, max_tensor_numel)
    if isinstance(obj, type):
        return getattr(obj, "_standin_path", f"{obj.__module__}.{obj.__qualname__}")
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex() if len(obj) <= 64 else f"<{len(obj)} bytes>"
    return clip(_safe_repr(obj), 200)


def _array_plain(obj, max_tensor_numel: int):
    size = np.size(obj)
    if size > max_tensor_numel:
        raise ValueError(f"array with {size} elements")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        items = [to_plain(x, max_tensor_numel) for x in obj.flat]
        return items[0] if size == 1 and obj.ndim == 0 else items
    try:
        value = obj.reshape(-1)[0].item() if size == 1 else obj.tolist()
    except Exception:  # noqa: BLE001 - exotic dtypes: say what it is
        return f"<{type(obj).__name__} {obj.dtype}>"
    return repr(value) if isinstance(value, np.generic) else to_plain(value, max_tensor_numel)


def _standin_plain(obj: StandIn, max_tensor_numel: int):
    args = obj.args
    path = type(obj)._standin_path
    if path.startswith("pathlib.") and all(isinstance(a, str) for a in args):
        return os.path.join(*args) if args else "."
    out = {"__class__": path}
    if args:
        out["__args__"] = to_plain(list(args), max_tensor_numel)
    if obj.state is not None:
        out["__state__"] = to_plain(obj.state, max_tensor_numel)
    fields = to_plain(obj.fields, max_tensor_numel)
    # A field named "__class__" cannot rename the class (nor hide its arguments).
    out.update((k, v) for k, v in fields.items() if k not in out)
    return out


def _tensor_plain(t: torch.Tensor):
    try:
        if t.is_quantized:
            t = t.dequantize()
        if t.is_complex():
            return str(t.tolist())
        values = t.detach().cpu().reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - sparse, meta, ...: say what it is
        return f"<tensor {t.dtype} {list(t.shape)}>"
    return values[0] if len(values) == 1 else values


def _key_text(key) -> str:
    if isinstance(key, str):
        return key
    plain = to_plain(key) if not isinstance(key, (torch.Tensor, np.ndarray)) else _safe_repr(key)
    return plain if isinstance(plain, str) else clip(_safe_repr(plain), 200)


def _safe_repr(obj) -> str:
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - a repr that fails is still just data
        return f"<{type(obj).__name__}>"


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
    if marker in text:
        body = text.split(marker, 1)[1]
    elif text.startswith("Weights only load failed"):  # the reason is the next paragraph
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        body = paragraphs[1] if len(paragraphs) > 1 else "refused by the weights-only unpickler"
    else:
        return _one_line(e)
    reason = " ".join(body.split("Check the documentation")[0].split())
    if reason.startswith("Unsupported operand"):
        reason += " (pickle protocol above 2? re-save with torch.save's default protocol)"
    return reason[:300]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


__all__ = ["MAX_DEPTH", "MAX_INFLATION", "MAX_OBJECTS", "MAX_PICKLE_BYTES", "MAX_PICKLE_OPS",
           "MAX_ZIP_MEMBERS", "RawCheckpoint", "StandIn", "check_structure", "read_toml",
           "check_torchscript_archive", "check_zip_archive", "is_gadget", "load_pickled",
           "quiet_torch_deprecations", "read_weights_file", "scan_pickle_globals", "sniff_format", "to_plain"]
