"""A Session over models in memory, and Session.with_models: what a training loop's monitor
does every N steps. The data and pixel rooms are built once; each call's model is its own."""
import numpy as np
import pytest
import torch
from torch import nn

from facediag.session import Session, SessionConfig
from helpers import loaded_model, write_demo_faces


class CountingDSR:
    name, fingerprint = "counting", "counting-v1"

    def __init__(self):
        self.images = 0

    def __call__(self, lr):
        self.images += len(lr)
        return torch.nn.functional.interpolate(lr, size=(112, 112), mode="bicubic").clamp(0, 1)


@pytest.fixture
def faces(tmp_path):
    return write_demo_faces(tmp_path / "faces", 4)


@pytest.fixture
def config(faces):
    return SessionConfig(data=faces, use_cache=False, progress=False, device="cpu")


def _module(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32))


def _views(session):
    return {v: session.embeddings("model", v).raw for v in ("gallery", "probe_hr", "probe_dsr")}


def test_with_models_decodes_nothing_again_with_keep_pixels(config, decodes):
    dsr = CountingDSR()
    first = Session(config, models={"model": loaded_model(_module(0))}, dsr=dsr, keep_pixels=True)
    first.evaluation("model")
    assert sum(decodes.values()) == 20 and dsr.images == 8  # each file once; each probe super-resolved once
    decodes.clear()
    second = first.with_models({"model": loaded_model(_module(1))})
    ev = second.evaluation("model")
    assert sum(decodes.values()) == 0 and dsr.images == 8
    fresh = Session(config, models={"model": loaded_model(_module(1))})  # the same numbers, decoded afresh
    for view, raw in _views(fresh).items():
        np.testing.assert_array_equal(_views(second)[view], raw)
    np.testing.assert_array_equal(ev.genuine_ranks(), fresh.evaluation("model").genuine_ranks())


def test_without_keep_pixels_the_hr_images_are_decoded_again_but_not_super_resolved(config, decodes):
    dsr = CountingDSR()
    first = Session(config, models={"model": loaded_model(_module(0))}, dsr=dsr)
    first.evaluation("model")
    decodes.clear()
    first.with_models({"model": loaded_model(_module(1))}).evaluation("model")
    assert sum(decodes.values()) == 20 and dsr.images == 8  # gallery and probe HR files; DSR shared


def test_a_module_changed_in_place_is_embedded_afresh(config):
    module = _module(0)
    first = Session(config, models={"model": loaded_model(module)}, keep_pixels=True)
    before = first.embeddings("model", "gallery").raw.copy()
    with torch.no_grad():
        module[2].weight.mul_(-1)  # a training step, in place: the same object, other weights
    second = first.with_models({"model": loaded_model(module)})
    after = second.embeddings("model", "gallery").raw
    np.testing.assert_allclose(after, -before + 2 * module[2].bias.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(first.embeddings("model", "gallery").raw, before)  # each Session its own


def test_with_models_has_only_the_roles_it_is_given(config, tmp_path):
    first = Session(SessionConfig(**{**vars(config), "weights": tmp_path / "never-loaded.pt"}),
                    models={"model": loaded_model(_module(0))})
    second = first.with_models({"baseline": loaded_model(_module(1))})
    assert second.has_role("baseline") and not second.has_role("model")
    assert second.protocol is first.protocol and second.pixels is first.pixels
    assert first.has_role("model") and first.model() is not second.model("baseline")
