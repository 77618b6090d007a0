"""EdgeFace variants: exact official layouts, forward contract, variant detection."""
import pytest
import torch

from facediag.errors import CheckpointError
from facediag.models.checkpoint import detect_variant
from facediag.models.edgeface import (
    VARIANTS, LowRankLinear, build_edgeface, describe_state_dict, expected_layout, normalise_keys,
)


@pytest.fixture(scope="module")
def built():
    """Each variant built once for real (edgenext_base included), random weights."""
    torch.manual_seed(0)
    return {v: build_edgeface(v) for v in VARIANTS}


def as_json_layout(layout):
    """Our layout signatures in the form edgeface_state_dict_layouts.json uses."""
    def one(sig):
        if isinstance(sig, tuple) and sig[:1] == ("tuple",):
            return "tuple"
        return list(sig) if isinstance(sig, tuple) else sig
    return {k: one(s) for k, s in layout.items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_built_variant_matches_official_layout(built, layouts, variant):
    official = layouts[variant]
    spec = VARIANTS[variant]
    assert (spec.arch, spec.low_rank_ratio, spec.quantized) == (
        official["timm_arch"], official["low_rank_ratio"], official["dynamic_int8_linear"])
    real = as_json_layout(describe_state_dict(built[variant].state_dict()))
    assert list(real.items()) == list(official["keys"].items())  # keys, shapes and order
    assert len(real) == official["num_state_dict_entries"]
    # the meta-device layout used for detection is the same as the real one
    assert as_json_layout(expected_layout(variant)) == official["keys"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_layout_is_detected_as_its_variant(built, variant):
    prefix, sd = normalise_keys(built[variant].state_dict())
    assert prefix == "model."
    assert detect_variant(sd).variant == variant


def test_low_rank_and_quantised_structure(built):
    head_fc = built["edgeface_xs_gamma_06"].model.head.fc
    assert isinstance(head_fc, LowRankLinear)
    assert head_fc.in_features == 192  # edgenext_x_small's last stage width
    assert head_fc.linear1.weight.shape == (int(192 * 0.6), 192)
    assert head_fc.linear2.weight.shape == (512, int(192 * 0.6))
    assert head_fc.linear1.bias is None and head_fc.linear2.bias is not None
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear
                   for m in built["edgeface_xxs_q"].modules())


def test_forward_returns_raw_512d_embeddings(built):
    model = built["edgeface_xxs"]
    assert not model.training
    with torch.no_grad():
        out = model(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert out.shape == (2, 512)
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))  # not L2-normalised


def test_quantised_variant_refuses_non_cpu_device():
    with pytest.raises(CheckpointError, match="CPU only"):
        build_edgeface("edgeface_xxs_q", device="meta")


def test_unknown_variant_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="unknown EdgeFace variant 'edgeface_huge'"):
        build_edgeface("edgeface_huge")
