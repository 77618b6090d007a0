"""What is trained and how: the EdgeFace to fine-tune (or a fresh one), the frozen anchor copy,
the optimiser and the learning-rate schedule."""
from __future__ import annotations

import copy
import math

import torch

from facediag.errors import FacediagError
from facediag.models.checkpoint import dequantize_state_dict, load_checkpoint, resolve_variant
from facediag.models.edgeface import VARIANTS, build_edgeface
from facediag.train.config import TrainConfig


def load_model(cfg: TrainConfig, device: torch.device):
    """(float EdgeFace in train mode on device, variant, input sha256 or None, notes)."""
    notes = []
    if cfg.weights is None:
        variant = resolve_variant(cfg.arch)
        if VARIANTS[variant].quantized:
            raise FacediagError(f"--arch {variant} is int8-quantised; train its float twin")
        torch.manual_seed(cfg.seed)
        model = build_edgeface(variant, device="cpu")
        notes.append(f"from scratch: randomly initialised {variant}")
        return model.to(device).train(), variant, None, notes
    loaded = load_checkpoint(cfg.weights, arch=None)
    if loaded.variant not in VARIANTS:  # "torchscript" or "custom": no EdgeFace layout to train
        raise FacediagError(f"{cfg.weights}: a TorchScript model that is not an EdgeFace layout "
                            "cannot be fine-tuned here")
    model, variant = loaded.model, loaded.variant
    if VARIANTS[variant].quantized:
        # int8 weights cannot learn: train the float twin (same keys once dequantised).
        twin = next(v for v, s in VARIANTS.items()
                    if s.arch == VARIANTS[variant].arch and not s.quantized and s.low_rank_ratio is None)
        model = build_edgeface(twin, device="cpu", quantized=False)
        model.load_state_dict(dequantize_state_dict(loaded.model.state_dict()), strict=True)
        notes.append(f"{variant} is int8: its weights were dequantised and {twin} is trained")
        variant = twin
    return model.float().to(device).train(), variant, loaded.sha256, notes


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The starting model, kept fixed, for ``--anchor-weight``."""
    anchor = copy.deepcopy(model).eval()
    for p in anchor.parameters():
        p.requires_grad_(False)
    return anchor


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Norm scales and biases are not decayed: pulling them to 0 degrades a pretrained net.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))
