"""Property-based: whatever a file holds (random nested objects, tensors of any dtype and
shape, configs, gadgets, random opcode streams, truncated or corrupted archives),
load_checkpoint returns a LoadedModel or raises FacediagError in one line, runs
nothing (no marker file appears) and leaves the file as it was."""
import contextlib
import functools
import json
import operator
import os
import subprocess
import sys
import tempfile
import types
from collections import OrderedDict
from pathlib import Path

import hostile_pickles as H
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facediag.errors import FacediagError
from facediag.inspect import inspect_dict
from facediag.models import build_edgeface
from facediag.models.checkpoint import load_checkpoint
from facediag.models.loaded import LoadedModel

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings(r"ignore:torch\.quantize_per_tensor:UserWarning"),
]

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_SLOW = settings(FUZZ, max_examples=40)  # each example builds and loads an EdgeFace

# Every marker a gadget would write lives in one folder, checked after each example.
MARKERS = Path(tempfile.mkdtemp(prefix="facediag-fuzz-markers-"))
MARKER = MARKERS / "pwned"


@pytest.fixture(scope="module")
def xxs_sd():
    torch.manual_seed(5)
    return build_edgeface("edgeface_xxs").state_dict()


@contextlib.contextmanager
def scratch_file(name="fuzz.pth"):
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / name


def assert_safe(path, **kwargs):
    """The property every test checks."""
    before = path.read_bytes()
    try:
        loaded = load_checkpoint(path, **kwargs)
    except FacediagError as e:
        assert "\n" not in str(e) and str(e).strip(), repr(str(e))
        loaded = None
    else:
        assert isinstance(loaded, LoadedModel)
        json.dumps(inspect_dict(loaded), default=str)  # what `inspect --json` prints
    assert not any(MARKERS.iterdir()), "a gadget ran"
    assert path.read_bytes() == before, "loading changed the file"
    return loaded


# --- random checkpoint-like objects --------------------------------------------------

class _Gadget:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


TOUCH_PY = f"open({str(MARKER)!r}, 'w').close()"
GADGET_OBJECTS = [
    _Gadget(os.system, (f"touch {MARKER}",)),
    _Gadget(subprocess.check_output, (["touch", str(MARKER)],)),
    _Gadget(exec, (TOUCH_PY,)),
    _Gadget(eval, (TOUCH_PY,)),
    _Gadget(__import__("cProfile").run, (TOUCH_PY,)),
    _Gadget(__import__("profile").run, (TOUCH_PY,)),
    _Gadget(__import__("importlib").import_module, ("os",)),
    functools.partial(os.system, f"touch {MARKER}"),
    operator.methodcaller("system", f"touch {MARKER}"),
    operator.attrgetter("system"),
]

_CFG = types.ModuleType("facediag_fuzz_cfg")
exec("from dataclasses import dataclass, field\n"  # noqa: S102 - a script's config class
     "@dataclass\nclass TrainConfig:\n    lr: float = 0.1\n    extra: object = None\n",
     _CFG.__dict__)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8,
          torch.uint8, torch.int32, torch.int64, torch.bool, torch.complex64]


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    t = (torch.randn(shape) * 3).to(dtype)
    if draw(st.integers(0, 9)) == 0 and dtype == torch.float32:
        t = torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)
    return t


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=12),
    tensors(), st.builds(np.float64, st.floats(allow_nan=False)),
    st.sampled_from(GADGET_OBJECTS),
    st.builds(lambda lr: _CFG.TrainConfig(lr=lr), st.floats(-1, 1)),
)


def containers(children):
    keys = st.one_of(st.text(max_size=10), st.sampled_from(
        ["state_dict", "model", "config", "subject_to_id", "arcface_state_dict", "weight",
         "model.stem.0.weight", "_metadata"]), st.integers(-3, 3))
    return st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=3).map(OrderedDict),
        st.builds(lambda x: _CFG.TrainConfig(extra=x), children),
    )


objects = st.recursive(leaves, containers, max_leaves=12)


@given(obj=objects, wrap=st.sampled_from(["bare", "state_dict", "training"]),
       legacy=st.booleans())
@FUZZ
def test_random_objects_load_or_are_refused_in_one_line(xxs_sd, obj, wrap, legacy):
    payload = {"bare": obj, "state_dict": {"state_dict": obj},
               "training": {"backbone_state_dict": xxs_sd, "config": obj, "head": obj}}[wrap]
    with scratch_file() as path:
        sys.modules[_CFG.__name__] = _CFG
        try:
            torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
        finally:
            del sys.modules[_CFG.__name__]  # as when the training script's __main__ is gone
        assert_safe(path)


@given(changes=st.lists(st.tuples(st.integers(0, 159), st.sampled_from(DTYPES + ["drop", "shape"])),
                        min_size=1, max_size=3),
       prefix=st.sampled_from(["", "module.", "backbone.", "bogus."]),
       wrapper=st.sampled_from([None, "model_state_dict", "backbone_state_dict"]))
@FUZZ_SLOW
def test_mutated_edgeface_state_dicts_load_only_when_they_still_fit(xxs_sd, changes, prefix,
                                                                    wrapper):
    keys = list(xxs_sd)
    sd = dict(xxs_sd)
    for index, change in changes:
        key = keys[index]
        if change == "drop":
            sd.pop(key, None)
        elif change == "shape":
            sd[key] = torch.zeros(3, 1)
        elif key in sd:
            sd[key] = sd[key].to(change) if sd[key].dtype != torch.complex64 else sd[key].real
    sd = {prefix + k[len("model."):]: v for k, v in sd.items()}
    with scratch_file() as path:
        torch.save(sd if wrapper is None else {wrapper: sd, "epoch": 1}, path)
        loaded = assert_safe(path)
    fits = prefix != "bogus." and len(sd) == len(xxs_sd) and all(
        v.is_floating_point() and v.shape == xxs_sd["model." + k[len(prefix):]].shape
        for k, v in sd.items())
    assert (loaded is not None) == fits
    if loaded is not None:
        assert loaded.variant == "edgeface_xxs" and loaded.matched_fraction == 1.0


@given(label_key=st.sampled_from(["subject_to_id", "id_to_subject", "class_to_idx"]),
       labels=st.one_of(st.dictionaries(st.text(max_size=4), st.one_of(
           st.integers(-5, 5), st.floats(), tensors(), st.text(max_size=3)), max_size=3),
           st.lists(st.text(max_size=3), max_size=3), objects),
       head_key=st.sampled_from(["arcface_state_dict", "head", "metric_fc", "other"]),
       head=st.one_of(tensors(), st.builds(lambda n, d: {"weight": torch.randn(n, d)},
                                           st.integers(0, 3), st.sampled_from([511, 512])),
                      objects),
       legacy=st.booleans())
@FUZZ_SLOW
def test_random_training_dict_fields_around_real_weights(xxs_sd, label_key, labels, head_key,
                                                         head, legacy):
    payload = {"backbone_state_dict": xxs_sd, label_key: labels, head_key: head, "epoch": 1}
    with scratch_file() as path:
        sys.modules[_CFG.__name__] = _CFG
        try:
            torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
        finally:
            del sys.modules[_CFG.__name__]
        loaded = assert_safe(path)
    if loaded is not None:
        assert loaded.head is None or loaded.head.shape[1] == 512
        assert loaded.label_map is None or all(type(v) is int for v in loaded.label_map.values())


# --- random opcode streams -----------------------------------------------------------

GLOBALS = ["os.system", "posix.system", "builtins.exec", "builtins.eval", "builtins.getattr",
           "builtins.bytearray", "cProfile.run", "functools.partial", "operator.attrgetter",
           "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage",
           "torch.Size", "builtins.set", "__main__.Config", "numpy.core.multiarray.scalar",
           "numpy.dtype", "torch.nn.parameter.Parameter", "no_such_module.thing"]

fragments = st.one_of(
    st.integers(-(2**40), 2**40).map(H.i), st.text(max_size=8).map(H.s),
    st.sampled_from([H.NONE, H.NEWTRUE, H.MARK, H.TUPLE, H.TUPLE1, H.TUPLE2, H.EMPTY_TUPLE,
                     H.EMPTY_DICT, H.EMPTY_LIST, H.SETITEM, H.APPEND, b"e", b"u", H.REDUCE,
                     H.BUILD, H.NEWOBJ, b"Q", H.STOP, b"\x8f", b"\x90"]),
    st.integers(0, 6).map(H.put), st.integers(0, 6).map(H.get),
    st.sampled_from(GLOBALS).map(H.g),
    st.sampled_from(GLOBALS).map(lambda g: H.call(H.g(g), H.s(f"touch {MARKER}"))),
    st.just(H.tensor("0", 2)), st.binary(max_size=4),
)


@given(ops=st.lists(fragments, max_size=40), container=st.sampled_from(["zip", "legacy"]),
       storage=st.booleans())
@FUZZ
def test_random_opcode_streams(ops, container, storage):
    body = b"".join(ops)
    with scratch_file() as path:
        if container == "zip":
            H.write_torch_zip(path, H.pickle_bytes(body),
                              {"0": bytes(8)} if storage else None)
        else:
            magic = H.PROTO + H.i(0x1950A86A20F9469CFC6C) + H.STOP
            path.write_bytes(magic + H.pickle_bytes(H.i(1001)) + H.pickle_bytes(H.EMPTY_DICT)
                             + H.pickle_bytes(body) + H.pickle_bytes(H.EMPTY_LIST))
        assert_safe(path)


# --- truncated and corrupted archives ------------------------------------------------

@pytest.fixture(scope="module")
def sample_files(xxs_sd, tmp_path_factory):
    """Real files to damage: a training dict (zip and legacy), safetensors, TorchScript."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("fuzz-samples")
    training = {"backbone_state_dict": xxs_sd, "arcface_state_dict": {"weight": torch.randn(3, 512)},
                "subject_to_id": {"a": 0, "b": 1, "c": 2}, "epoch": 2}
    torch.save(training, root / "train.pth")
    torch.save(training, root / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in xxs_sd.items()}, str(root / "w.safetensors"))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 512))
    torch.jit.save(torch.jit.script(net), root / "scripted.pt")
    return {p.name: p.read_bytes() for p in root.iterdir()}


@given(data=st.data())
@FUZZ
def test_truncated_or_corrupted_files(sample_files, data):
    name = data.draw(st.sampled_from(sorted(sample_files)))
    raw = bytearray(sample_files[name])
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
    else:
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at + data.draw(st.integers(0, 64))] = data.draw(st.binary(max_size=64))
    with scratch_file(name) as path:
        path.write_bytes(bytes(raw))
        assert_safe(path, arch=data.draw(st.sampled_from([None, "custom"]))
                    if name == "scripted.pt" else None)
