"""Build hostile checkpoint files by hand: raw pickle opcodes (protocol 2, what torch.save
writes and torch's weights-only unpickler reads) and torch-style zip archives around them.

A gadget here is a pickle fragment that, if any unpickler really called what it names,
would create a marker file. Tests assert the marker never appears.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

PROTO = b"\x80\x02"
STOP = b"."
MARK = b"("
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
SETITEM = b"s"
APPEND = b"a"
REDUCE = b"R"
BUILD = b"b"
NEWOBJ = b"\x81"
NONE = b"N"
POP = b"0"
NEWTRUE = b"\x88"


def s(text: str) -> bytes:
    """BINUNICODE"""
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def i(n: int) -> bytes:
    """An int literal (BININT, or LONG1 for big ones)."""
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def g(path: str) -> bytes:
    """GLOBAL 'module name' for 'module.name' (split at the last dot)."""
    module, _, name = path.rpartition(".")
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def put(k: int) -> bytes:
    return b"r" + struct.pack("<I", k)


def get(k: int) -> bytes:
    return b"j" + struct.pack("<I", k)


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) through REDUCE; func is any fragment that pushes a callable."""
    return func + tup(*args) + REDUCE


def dict_of(**items: bytes) -> bytes:
    out = EMPTY_DICT
    for key, value in items.items():
        out += s(key) + value + SETITEM
    return out


def list_of(*items: bytes) -> bytes:
    return EMPTY_LIST + b"".join(item + APPEND for item in items)


def obj(cls: str, state: bytes) -> bytes:
    """An instance of ``cls`` (e.g. a __main__ dataclass) rebuilt by NEWOBJ + BUILD."""
    return g(cls) + EMPTY_TUPLE + NEWOBJ + state + BUILD


def pickle_bytes(body: bytes) -> bytes:
    return PROTO + body + STOP


def tensor(values_key: str = "0", numel: int = 2) -> bytes:
    """A float32 tensor of ``numel`` elements in storage member data/<values_key>."""
    storage = tup(s("storage"), g("torch.FloatStorage"), s(values_key), s("cpu"), i(numel))
    return call(g("torch._utils._rebuild_tensor_v2"),
                storage + b"Q", i(0), tup(i(numel)), tup(i(1)), b"\x89",
                call(g("collections.OrderedDict")))


def write_torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None,
                    compress: bool = False, extra: dict[str, bytes] | None = None) -> Path:
    """A zip laid out like torch.save's: archive/data.pkl, archive/data/<key>, version."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        for key, raw in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", raw)
        for name, raw in (extra or {}).items():
            zf.writestr(name, raw)
        zf.writestr("archive/version", b"3\n")
    return path


def write_tensor_dict(path: Path, body_around_tensor=lambda t: dict_of(w=t)) -> Path:
    """A valid checkpoint with one real tensor, wrapped as ``body_around_tensor`` says."""
    data = pickle_bytes(body_around_tensor(tensor("0", 2)))
    return write_torch_zip(path, data, {"0": struct.pack("<2f", 1.0, 2.0)})


# --- gadgets: fragments that would create ``marker`` if really called ---------------------

def gadgets(marker: Path) -> dict[str, bytes]:
    m = str(marker)
    touch_py = f"open({m!r}, 'w').close()"
    os_module = call(g("builtins.__import__"), s("os"))
    return {
        "os.system": call(g("os.system"), s(f"touch {m}")),
        "posix.system": call(g("posix.system"), s(f"touch {m}")),
        "subprocess.Popen": call(g("subprocess.Popen"), list_of(s("touch"), s(m))),
        "subprocess.check_output": call(g("subprocess.check_output"),
                                        list_of(s("touch"), s(m))),
        "builtins.exec": call(g("builtins.exec"), s(touch_py)),
        "builtins.eval": call(g("builtins.eval"), s(touch_py)),
        "builtins.__import__+methodcaller": call(
            call(g("operator.methodcaller"), s("system"), s(f"touch {m}")), os_module),
        "cProfile.run": call(g("cProfile.run"), s(touch_py)),
        "profile.run": call(g("profile.run"), s(touch_py)),
        "pdb.run": call(g("pdb.run"), s(touch_py)),
        "importlib.import_module+attrgetter": call(
            call(call(g("operator.attrgetter"), s("system")),
                 call(g("importlib.import_module"), s("os"))),
            s(f"touch {m}")),
        "functools.partial": call(call(g("functools.partial"), g("os.system"), s(f"touch {m}"))),
        "functools.partial(partial)": call(call(
            g("functools.partial"),
            call(g("functools.partial"), g("builtins.exec")), s(touch_py))),
        "functools.partial+BUILD": call(
            g("functools.partial") + tup(g("builtins.exec")) + REDUCE
            + tup(g("builtins.exec"), tup(s(touch_py)), EMPTY_DICT, NONE) + BUILD),
        "operator.methodcaller": call(
            call(g("operator.methodcaller"), s("system"), s(f"touch {m}")),
            call(g("importlib.import_module"), s("os"))),
        "operator.attrgetter": call(
            call(g("operator.attrgetter"), s("system")), call(g("builtins.__import__"), s("os"))),
        "unknown module": call(g("facediag_no_such_module.touch"), s(m)),
        "NEWOBJ on a gadget": g("subprocess.Popen") + tup(list_of(s("touch"), s(m))) + NEWOBJ,
        "BUILD on a config": obj("__main__.Config", dict_of(callback=call(
            g("builtins.exec"), s(touch_py)))),
    }


def nestings() -> dict[str, callable]:
    """Where a gadget sits: top level, or inside containers and configs at several depths."""
    def config(inner, depth=1):
        for _ in range(depth):
            inner = obj("__main__.TrainConfig", dict_of(lr=b"G" + struct.pack(">d", 0.1),
                                                        hook=inner))
        return inner

    def dicts(inner, depth):
        for _ in range(depth):
            inner = dict_of(x=inner)
        return inner

    def lists(inner, depth):
        for _ in range(depth):
            inner = list_of(inner)
        return inner

    return {
        "top": lambda gad: gad,
        "dict": lambda gad: dict_of(epoch=i(3), config=gad),
        "dict x4": lambda gad: dict_of(config=dicts(gad, 4)),
        "list x3": lambda gad: dict_of(history=lists(gad, 3)),
        "config": lambda gad: dict_of(config=config(gad)),
        "config x3 in list": lambda gad: dict_of(runs=list_of(config(gad, 3))),
        "tuple in config": lambda gad: dict_of(config=config(tup(i(1), gad), 2)),
    }
