"""Leaving a training run as it was found: what a monitor call may touch, and how it is restored.

A call evaluates the live module the loop is training. Everything the loop can observe of that
module and of the process is either never written (parameters and buffers: the forward runs in
eval mode, so batch norm keeps its running statistics, and under ``torch.no_grad``) or saved
before and put back after (each submodule's train/eval flag, each parameter's
``requires_grad``, and the random number generators of Python, numpy and torch, CPU and every
CUDA device in use), so the next training step is the one it would have been without the call.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The module a wrapper trains: DistributedDataParallel and DataParallel hold it in
    ``.module``. The monitor runs the inner module, so a call is no collective of DDP's."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


@contextmanager
def rng_kept() -> Iterator[None]:
    """Every generator a training loop draws from, as it was on the way in."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    # CUDA generators exist once CUDA is initialised; asking for them earlier would initialise it.
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode under ``torch.no_grad`` and with the RNGs kept; on the way out each
    submodule's own train/eval flag and each parameter's ``requires_grad`` are set back one by
    one (``model.train()`` would set every submodule alike, and a loop may freeze some)."""
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with rng_kept(), torch.no_grad():
            model.eval()
            yield model
    finally:
        for m, flag in flags:
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)


def input_layout(model: nn.Module) -> tuple[torch.device, torch.dtype, bool]:
    """Where the module lives, the floating dtype of its weights, and whether its convolutions
    are channels_last: the monitor feeds it so, never moving or casting the module itself."""
    params = [p for p in model.parameters()]
    device = params[0].device if params else torch.device("cpu")
    floats = [p.dtype for p in params if p.is_floating_point()]
    dtype = floats[0] if floats else torch.float32
    # A 1×1 kernel is contiguous in both layouts: a larger one tells which the loop chose.
    channels_last = any(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
                        for m in model.modules() if isinstance(m, nn.Conv2d))
    return device, dtype, channels_last
