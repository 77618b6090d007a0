"""Pickled checkpoints load with weights_only=True only: unknown classes come back as
inert stand-ins, code-execution gadgets are refused and never run."""
import argparse
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from facediag.errors import CheckpointError
from facediag.models.safe_load import StandIn, load_pickled, read_weights_file, to_plain


def throwaway_module(name, source):
    """A module importable only until it is deleted: like a script's __main__."""
    module = types.ModuleType(name)
    exec(source, module.__dict__)
    sys.modules[name] = module
    return module


class _Gadget:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def one_line_error(path, loader=load_pickled):
    with pytest.raises(CheckpointError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path.name)
    return message


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("gadget", ["os.system", "builtins.eval", "subprocess.call"])
def test_code_execution_gadgets_are_refused_and_never_run(tmp_path, gadget, legacy):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": (os.system, (f"touch {marker}",)),
        "builtins.eval": (eval, (f"__import__('os').system('touch {marker}')",)),
        "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
    }[gadget]
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(2), "x": _Gadget(*payload)}, path,
               _use_new_zipfile_serialization=not legacy)
    assert "refused" in one_line_error(path)
    assert not marker.exists()


def test_unknown_callable_is_inert_even_when_importable(tmp_path):
    marker = tmp_path / "ran"
    mod = throwaway_module("facediag_test_sidefx", "from pathlib import Path\n"
                                                   "def touch(p):\n    Path(p).touch()\n")
    path = tmp_path / "sidefx.pth"
    try:
        torch.save({"x": _Gadget(mod.touch, (str(marker),))}, path)
        loaded = load_pickled(path)  # module still in sys.modules: it must not be used
    finally:
        del sys.modules["facediag_test_sidefx"]
    assert not marker.exists()
    assert isinstance(loaded["x"], StandIn)
    assert to_plain(loaded["x"]) == {"__class__": "facediag_test_sidefx.touch",
                                     "__args__": [str(marker)]}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_dataclass_from_vanished_module_and_namespace_become_stand_ins(tmp_path, legacy):
    mod = throwaway_module("facediag_test_cfg", (
        "from dataclasses import dataclass, field\nfrom pathlib import Path\n"
        "@dataclass\nclass TrainConfig:\n    lr: float = 1e-3\n    margin: float = 0.5\n"
        "    data: Path = Path('/data/faces')\n"
        "    sizes: list = field(default_factory=lambda: [16, 24])\n"))
    path = tmp_path / "cfg.pth"
    torch.save({"config": mod.TrainConfig(lr=0.01),
                "args": argparse.Namespace(epochs=3, name="run1"),
                "val_similarity": np.float64(0.9992), "val_accuracy": torch.tensor(0.25)},
               path, _use_new_zipfile_serialization=not legacy)
    del sys.modules["facediag_test_cfg"]

    loaded = load_pickled(path)
    assert isinstance(loaded["config"], StandIn)
    assert loaded["config"].fields["lr"] == 0.01
    assert to_plain(loaded) == {
        "config": {"__class__": "facediag_test_cfg.TrainConfig", "lr": 0.01, "margin": 0.5,
                   "data": "/data/faces", "sizes": [16, 24]},
        "args": {"__class__": "argparse.Namespace", "epochs": 3, "name": "run1"},
        "val_similarity": 0.9992, "val_accuracy": 0.25,
    }


def test_truncated_file_is_refused(tmp_path):
    full = tmp_path / "full.pth"
    torch.save({"w": torch.randn(64, 64)}, full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    one_line_error(cut, read_weights_file)


def test_png_renamed_pth_is_refused(tmp_path):
    path = tmp_path / "face.pth"
    Image.new("RGB", (8, 8)).save(path, format="PNG")
    assert "PNG image" in one_line_error(path, read_weights_file)


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random"])
def test_empty_or_random_bytes_are_refused(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    assert "not a PyTorch, TorchScript or safetensors file" in one_line_error(
        path, read_weights_file)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_weights_file(tmp_path / "nope.pth")


def test_big_tensors_are_not_metadata():
    with pytest.raises(ValueError):
        to_plain({"state": torch.zeros(3)})


def test_pickle_protocol_the_safe_unpickler_cannot_read_is_explained(tmp_path):
    path = tmp_path / "p4.pth"
    torch.save({"w": torch.zeros(2)}, path, pickle_protocol=4)
    message = one_line_error(path)
    assert "Unsupported operand" in message and "protocol" in message
    assert "weights_only` set to `False" not in message  # torch's advice is not passed on
