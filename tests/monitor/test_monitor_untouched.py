"""A monitor call leaves the training run as it found it, and prepares the held-out set once.

A small model with everything a loop can hold (batch norm running statistics, dropout, a frozen
layer, a submodule left in eval mode, gradients waiting for the optimiser's step) and a forward
that draws from every RNG, on synthetic faces (no assets needed).
"""
import random

import numpy as np
import pytest
import torch
from torch import nn

from facediag.monitor import Monitor
from helpers import write_folders_dataset


class Noisy(nn.Module):
    """Draws from torch's, numpy's and Python's generators in every forward, as augmentation
    layers or stochastic depth do: a call that did not restore them would shift training."""

    def forward(self, x):
        return x + 0 * (torch.rand(1).item() + np.random.rand() + random.random())


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.BatchNorm2d(8), nn.ReLU(), Noisy())
        self.frozen = nn.Conv2d(8, 8, 3, stride=2)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 16)

    def forward(self, x):
        x = self.frozen(self.stem(x))
        return self.head(self.drop(x.mean(dim=(2, 3))))


def _tiny_trained() -> Tiny:
    torch.manual_seed(0)
    model = Tiny()
    model.frozen.requires_grad_(False)
    model.train()
    model.drop.eval()  # a loop may keep one part in eval mode: it must stay so
    for _ in range(2):  # running statistics away from their init, gradients left for a step
        model.zero_grad()
        model(torch.rand(4, 3, 112, 112)).pow(2).mean().backward()
    return model


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "flags": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "torch_rng": torch.get_rng_state().clone(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
    }


def _assert_same(before: dict, after: dict) -> None:
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for name, grad in before["grads"].items():
        later = after["grads"][name]
        assert (grad is None) == (later is None) and (grad is None or torch.equal(grad, later)), name
    assert before["flags"] == after["flags"]
    assert before["requires_grad"] == after["requires_grad"]
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])
    assert before["python_rng"] == after["python_rng"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_folders_dataset(tmp_path_factory.mktemp("held") / "faces", subjects=4, images=5)


def test_a_call_leaves_the_model_and_every_rng_bit_identical(faces, tmp_path):
    model = _tiny_trained()
    monitor = Monitor(data=faces, vlr_size=16, device="cpu", history=tmp_path / "h.jsonl")
    before = _snapshot(model)
    for step in (0, 1):  # the first call (which decodes) and a later one
        result = monitor(model, step=step)
        _assert_same(before, _snapshot(model))
    assert result.statuses["pair-gap"] != "ERROR" and "identification.rank1" in result.metrics


def test_a_ddp_style_wrapper_is_evaluated_through_its_module(faces):
    model = _tiny_trained()
    monitor = Monitor(data=faces, vlr_size=16, device="cpu")
    plain = monitor(model, step=0)
    wrapped = monitor(nn.DataParallel(model), step=1)  # holds the model in .module, as DDP does
    assert wrapped.metrics == plain.metrics


def test_the_held_out_set_is_decoded_once(faces, decodes):
    model = _tiny_trained()
    monitor = Monitor(data=faces, vlr_size=16, device="cpu")
    monitor(model, step=0)
    first = sum(decodes.values())
    assert len(decodes) == 20 and first == 20  # every held-out image (4 people × 5), once
    with torch.no_grad():
        model.head.weight.mul_(-1)  # training moved the weights: the next call embeds anew
    second = monitor(model, step=1)
    assert sum(decodes.values()) == first
    assert second.metrics != monitor.history[0].metrics
