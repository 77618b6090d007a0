"""A layout match is keys and shapes; dtypes must match the variant too: floating point
for float variants, the int8 packed layout for ``_q`` variants. Anything else is refused
with one line naming the first bad key and its dtype, never cast in silently."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facediag.models import build_edgeface, load_checkpoint
from helpers import refused

pytestmark = pytest.mark.filterwarnings(r"ignore:torch\.quantize_per_tensor:UserWarning")


@pytest.fixture(scope="module")
def xxs_sd():
    torch.manual_seed(3)
    return build_edgeface("edgeface_xxs").state_dict()


def test_int32_weights_are_refused_not_loaded_as_100_percent_strict(tmp_path, xxs_sd):
    path = tmp_path / "int32.pth"
    torch.save({k: (v * 100).to(torch.int32) for k, v in xxs_sd.items()}, path)
    assert refused(path) == ("int32.pth: 'model.stem.0.weight' is a torch.int32 tensor; "
                             "edgeface_xxs expects floating-point tensors")


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int64, torch.bool,
                                   torch.complex64])
def test_one_non_float_tensor_is_named(tmp_path, xxs_sd, dtype):
    sd = dict(xxs_sd)
    key = "model.stages.2.blocks.0.mlp.fc1.weight"
    assert key in sd
    sd[key] = sd[key].to(dtype)
    path = tmp_path / "one.pth"
    torch.save({"model_state_dict": sd, "epoch": 1}, path)
    assert f"'{key}' is a {dtype} tensor" in refused(path)
    assert f"'{key}' is a {dtype} tensor" in refused(path, arch="xxs")


def test_quantised_or_meta_tensor_in_a_float_variant_is_refused(tmp_path, xxs_sd):
    sd = dict(xxs_sd)
    sd["model.stem.0.weight"] = torch.quantize_per_tensor(sd["model.stem.0.weight"], 0.1, 0,
                                                          torch.qint8)
    torch.save(sd, tmp_path / "q.pth")
    assert "'model.stem.0.weight' is a torch.qint8 tensor" in refused(tmp_path / "q.pth")
    sd["model.stem.0.weight"] = torch.empty(xxs_sd["model.stem.0.weight"].shape, device="meta")
    torch.save(sd, tmp_path / "meta.pth")
    assert "without data (meta)" in refused(tmp_path / "meta.pth")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_precisions_still_load(tmp_path, xxs_sd, dtype):
    path = tmp_path / "half.pth"
    torch.save({k: v.to(dtype) for k, v in xxs_sd.items()}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.variant == "edgeface_xxs" and ckpt.matched_fraction == 1.0
    loaded = ckpt.model.state_dict()["model.stem.0.weight"]
    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded, xxs_sd["model.stem.0.weight"].to(dtype).float())


def test_safetensors_int32_is_refused(tmp_path, xxs_sd):
    path = tmp_path / "w.safetensors"
    save_file({k: v.to(torch.int32).contiguous() for k, v in xxs_sd.items()}, str(path))
    assert "'model.stem.0.weight' is a torch.int32 tensor" in refused(path)


def test_integer_head_is_refused(tmp_path, xxs_sd):
    path = tmp_path / "head.pth"
    torch.save({"backbone_state_dict": xxs_sd,
                "arcface_state_dict": {"weight": torch.ones(5, 512, dtype=torch.int64)}}, path)
    assert "head weight is a torch.int64 tensor, expected floating point" in refused(path)


@pytest.fixture(scope="module")
def quant_sd(quant_weights):
    return torch.load(quant_weights, weights_only=True)


PACKED = "model.stages.0.blocks.0.mlp.fc1._packed_params._packed_params"


@pytest.mark.parametrize("change,expect", [
    (lambda sd: sd.__setitem__(PACKED, (sd[PACKED][0].dequantize(), sd[PACKED][1])),
     f"'{PACKED}' holds a weight that is a torch.float32 tensor, not torch.qint8"),
    (lambda sd: sd.__setitem__(PACKED, (sd[PACKED][0], sd[PACKED][1].to(torch.int32))),
     f"'{PACKED}' holds a bias that is a torch.int32 tensor, not floating point"),
    (lambda sd: sd.__setitem__(PACKED, (sd[PACKED][0],)),
     f"'{PACKED}' is a tuple, not an int8 (weight, bias) pair"),
    (lambda sd: sd.__setitem__(PACKED.replace("_packed_params._packed_params",
                                              "_packed_params.dtype"), torch.quint8),
     "_packed_params.dtype' is the dtype torch.quint8, not torch.qint8"),
    (lambda sd: sd.__setitem__(PACKED.replace("_packed_params._packed_params", "zero_point"),
                               torch.tensor(0.0)),
     "zero_point' is a torch.float32 tensor, not an integer zero point"),
    (lambda sd: sd.__setitem__("model.stem.0.weight", sd["model.stem.0.weight"].to(torch.int16)),
     "'model.stem.0.weight' is a torch.int16 tensor"),
], ids=["float-weight", "int-bias", "short-tuple", "quint8", "float-zero-point", "int16-conv"])
def test_quantised_layout_is_checked_entry_by_entry(tmp_path, quant_sd, change, expect):
    sd = dict(quant_sd)
    change(sd)
    path = tmp_path / "q.pth"
    torch.save(sd, path)
    message = refused(path, arch="edgeface_xxs_q")
    assert expect in message and message.endswith(
        "edgeface_xxs_q expects int8 packed Linear weights and floating-point tensors")


def test_official_quantised_file_passes_the_check(quant_weights):
    assert load_checkpoint(quant_weights).variant == "edgeface_xxs_q"


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1.5, torch.zeros(2), "3", True,
                                   torch.tensor(2.0)], ids=repr)
def test_class_ids_must_be_integers(tmp_path, xxs_sd, value):
    path = tmp_path / "labels.pth"
    torch.save({"backbone_state_dict": xxs_sd, "subject_to_id": {"001": value}}, path)
    assert "'subject_to_id' does not map subjects to integer class ids" in refused(path)


def test_integer_like_class_ids_are_read(tmp_path, xxs_sd):
    path = tmp_path / "labels.pth"
    torch.save({"backbone_state_dict": xxs_sd, "subject_to_id": {
        "a": 0, "b": np.int64(1), "c": 2.0, "d": torch.tensor(3)}}, path)
    assert load_checkpoint(path).label_map == {"a": 0, "b": 1, "c": 2, "d": 3}
