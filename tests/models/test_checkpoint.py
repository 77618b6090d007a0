"""Strict checkpoint loading: official files, wrappers and prefixes, training dicts,
refusals, TorchScript and safetensors, fingerprints and atomic saving."""
import hashlib
import re
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from facediag.errors import CheckpointError
from facediag.models import (
    build_edgeface,
    fingerprint_state_dict,
    load_checkpoint,
    save_state_dict,
)
from facediag.models.checkpoint import dequantize_state_dict

# Building TorchScript test files uses APIs torch now marks deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def xxs():
    torch.manual_seed(1)
    return build_edgeface("edgeface_xxs")


@pytest.fixture(scope="module")
def probe():
    torch.manual_seed(2)
    return torch.rand(2, 3, 112, 112) * 2 - 1


def embed(model, x):
    with torch.no_grad():
        return model(x)


def strip_official(sd, new_prefix):
    return {new_prefix + k[len("model."):]: v for k, v in sd.items()}


def orl_face(orl_root, subject=1, image=1):
    """ORL (AT&T) 92x112 grey face, padded (black) to 112x112 RGB, scaled to [-1, 1]."""
    grey = np.asarray(Image.open(orl_root / f"s{subject}" / f"{image}.pgm"), dtype=np.float32)
    x = torch.full((1, 3, 112, 112), -1.0)
    x[0, :, :, 10:102] = torch.from_numpy(grey / 127.5 - 1.0)
    return x


# --- official assets -------------------------------------------------------------------

@pytest.mark.parametrize("fixture,variant", [("quant_weights", "edgeface_xxs_q"),
                                             ("float_weights", "edgeface_xxs")])
def test_official_files_load_strictly(request, fixture, variant):
    path = request.getfixturevalue(fixture)
    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.format, ckpt.key_prefix) == (variant, "state_dict", "model.")
    assert ckpt.matched_fraction == 1.0 and ckpt.missing_keys == [] == ckpt.unexpected_keys
    assert ckpt.parameters == 1_244_744
    assert ckpt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ckpt.head is None and ckpt.label_map is None and not ckpt.model.training


def test_quantised_and_float_files_agree_on_a_real_face(quant_weights, float_weights,
                                                        orl_root):
    x = orl_face(orl_root)
    q = embed(load_checkpoint(quant_weights).model, x)
    f = embed(load_checkpoint(float_weights).model, x)
    # Same weights; int8 dynamic quantisation of activations costs a little (measured 0.945).
    assert F.cosine_similarity(q, f).item() > 0.9
    # Dequantising the int8 file (what loading it on CUDA does) gives the float file exactly.
    twin = build_edgeface("edgeface_xxs")
    twin.load_state_dict(dequantize_state_dict(torch.load(quant_weights, weights_only=True)))
    assert torch.allclose(embed(twin, x), f, atol=1e-5)


# --- wrappers and prefixes ---------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "module.", "backbone.", "module.model.",
                                    "_orig_mod.model."])
def test_known_key_prefixes_are_normalised(tmp_path, xxs, probe, prefix):
    path = tmp_path / "w.pth"
    torch.save(strip_official(xxs.state_dict(), prefix), path)
    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.key_prefix) == ("edgeface_xxs", prefix)
    assert torch.equal(embed(ckpt.model, probe), embed(xxs, probe))


def test_training_dict_with_head_label_map_and_pickled_config(tmp_path, xxs, probe):
    cfg_mod = types.ModuleType("facediag_test_train_script")
    exec("from dataclasses import dataclass\n@dataclass\nclass Config:\n"  # noqa: S102 - test module
         "    lr: float = 1e-3\n    margin: float = 0.5\n", cfg_mod.__dict__)
    sys.modules[cfg_mod.__name__] = cfg_mod
    opt = torch.optim.SGD(xxs.parameters(), lr=0.1, momentum=0.9)
    xxs(probe).sum().backward()
    opt.step()  # momentum buffers: real optimiser state, full of tensors
    opt.zero_grad(set_to_none=True)
    weight = torch.randn(5, 512)
    path = tmp_path / "train.pth"
    torch.save({"backbone_state_dict": strip_official(xxs.state_dict(), "module."),
                "arcface_state_dict": {"weight": weight},
                "optimizer_state_dict": opt.state_dict(), "epoch": 7,
                "config": cfg_mod.Config(lr=0.01),
                "subject_to_id": {f"{i:03d}": i for i in range(5)},
                "val_similarity": 0.9992, "val_accuracy": torch.tensor(0.0192)}, path)
    del sys.modules[cfg_mod.__name__]  # as when a script's __main__ is gone

    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.format, ckpt.key_prefix) == ("edgeface_xxs", "training_dict",
                                                           "module.")
    assert torch.equal(ckpt.head, weight)
    assert ckpt.label_map == {"000": 0, "001": 1, "002": 2, "003": 3, "004": 4}
    assert ckpt.meta["epoch"] == 7 and ckpt.meta["val_similarity"] == 0.9992
    assert ckpt.meta["val_accuracy"] == pytest.approx(0.0192)
    assert ckpt.meta["config"] == {"__class__": "facediag_test_train_script.Config",
                                   "lr": 0.01, "margin": 0.5}
    assert ckpt.meta["omitted_keys"] == ["optimizer_state_dict"]
    assert torch.equal(embed(ckpt.model, probe), embed(xxs, probe))


def test_whole_pickled_model_is_read_without_importing_it(tmp_path, xxs, probe):
    path = tmp_path / "model.pth"
    torch.save(xxs, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.format) == ("edgeface_xxs", "pickled_module")
    assert torch.equal(embed(ckpt.model, probe), embed(xxs, probe))


# --- refusals ----------------------------------------------------------------------------

def refused(path, **kwargs):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_renamed_keys_match_no_variant(tmp_path, xxs):
    path = tmp_path / "weights.pth"
    torch.save({"core." + k: v for k, v in xxs.state_dict().items()}, path)
    assert refused(path) == (
        "weights.pth: matches no EdgeFace variant (closest edgeface_xxs: 160 keys expected, "
        "0 matched; found 160 keys like 'core.model.stem.0.weight')")


def test_one_missing_key_or_wrong_shape_is_refused(tmp_path, xxs):
    sd = dict(xxs.state_dict())
    del sd["model.head.fc.bias"]
    torch.save(sd, tmp_path / "missing.pth")
    assert "159 matched" in refused(tmp_path / "missing.pth")
    sd["model.head.fc.bias"] = torch.zeros(256)
    torch.save(sd, tmp_path / "shape.pth")
    assert "159 matched" in refused(tmp_path / "shape.pth")
    assert "wrong shape, e.g. 'model.head.fc.bias'" in refused(tmp_path / "shape.pth",
                                                               arch="edgeface_xxs")


def test_arch_override_is_strict(tmp_path, xxs):
    path = tmp_path / "w.pth"
    torch.save(xxs.state_dict(), path)
    assert load_checkpoint(path, arch="xxs").variant == "edgeface_xxs"
    assert refused(path, arch="edgeface_base").startswith("w.pth: does not match edgeface_base")
    assert "unknown EdgeFace variant" in refused(path, arch="resnet50")


def test_dict_without_weights_is_refused(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, path)
    assert "no model weights found (top-level keys: epoch, config" in refused(path)


def test_truncated_checkpoint_is_refused(tmp_path, xxs):
    full = tmp_path / "full.pth"
    torch.save(xxs.state_dict(), full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[:100_000])
    assert refused(cut).startswith("cut.pth: ")


# --- other formats -----------------------------------------------------------------------

def test_torchscript_edgeface_loads_into_edgeface(tmp_path, xxs, probe):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(xxs, probe, check_trace=False), path)
    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.format) == ("edgeface_xxs", "torchscript")
    assert type(ckpt.model).__name__ == "EdgeFace"
    assert torch.allclose(embed(ckpt.model, probe), embed(xxs, probe), atol=1e-5)


def test_foreign_torchscript_is_refused_unless_custom(tmp_path, probe):
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(48, 512))
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(net), path)
    assert "pass --arch custom to run it as it is" in refused(path)
    with pytest.raises(CheckpointError, match="does not match edgeface_xxs"):
        load_checkpoint(path, arch="edgeface_xxs")
    ckpt = load_checkpoint(path, arch="custom")
    assert (ckpt.variant, ckpt.format, ckpt.parameters) == ("custom", "torchscript",
                                                            48 * 512 + 512)
    assert torch.allclose(embed(ckpt.model, probe), embed(net, probe))
    bad = tmp_path / "bad.pt"
    torch.jit.save(torch.jit.script(torch.nn.Flatten()), bad)
    wrong = load_checkpoint(bad, arch="custom")  # accepted unrun; its output is checked on use
    with pytest.raises(CheckpointError, match=r"returns \[2, 37632\] .* expected \[2, 512\]"):
        embed(wrong.model, probe)


def test_safetensors_round_trip(tmp_path, xxs, probe):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in xxs.state_dict().items()}, str(path),
              metadata={"note": "exported"})
    ckpt = load_checkpoint(path)
    assert (ckpt.variant, ckpt.format, ckpt.meta) == ("edgeface_xxs", "safetensors",
                                                      {"note": "exported"})
    assert torch.equal(embed(ckpt.model, probe), embed(xxs, probe))


# --- fingerprints and saving -------------------------------------------------------------

def test_save_state_dict_is_official_and_atomic(tmp_path, xxs):
    path = tmp_path / "out" / "edgeface.pth"
    digest = save_state_dict(xxs, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["edgeface.pth"]  # no temp file left
    saved = torch.load(path, weights_only=True)
    assert list(saved) == list(xxs.state_dict())
    assert fingerprint_state_dict(saved) == fingerprint_state_dict(xxs.state_dict())
    with pytest.raises(CheckpointError, match="matches no EdgeFace variant"):
        save_state_dict(torch.nn.Linear(2, 2), tmp_path / "linear.pth")
    assert not (tmp_path / "linear.pth").exists()


def test_fingerprint_tracks_values_not_order(xxs, quant_weights):
    sd = xxs.state_dict()
    base = fingerprint_state_dict(sd)
    assert fingerprint_state_dict(dict(reversed(list(sd.items())))) == base
    changed = dict(sd)
    changed["model.head.fc.bias"] = sd["model.head.fc.bias"].clone()
    changed["model.head.fc.bias"][0] += 1e-3
    assert fingerprint_state_dict(changed) != base
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    q = torch.load(quant_weights, weights_only=True)  # int8 packed params hash too
    assert fingerprint_state_dict(q) == fingerprint_state_dict(dict(q))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quantised_file_is_dequantised_on_cuda(quant_weights, float_weights, orl_root):
    x = orl_face(orl_root)
    ckpt = load_checkpoint(quant_weights, device="cuda")
    assert ckpt.variant == "edgeface_xxs_q" and ckpt.dequantized
    f = embed(load_checkpoint(float_weights).model, x)
    assert torch.allclose(embed(ckpt.model, x.cuda()).cpu(), f, atol=1e-3)
