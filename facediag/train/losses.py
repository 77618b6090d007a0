"""Training objectives: the fix (supervised contrastive) and the two that reproduce the failure.

The failure objectives take raw embeddings of the DSR (low-resolution) and HR views of the
same N images, in the same order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from facediag.train.config import TrainConfig


def paired_cosine_loss(dsr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """1 − cos(f(DSR_i), f(HR_i)): the original failure. No negatives, so it collapses."""
    return (1 - F.cosine_similarity(dsr, hr, dim=1)).mean()


def instance_infonce_loss(dsr: torch.Tensor, hr: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE where each DSR output's only positive is its own HR pair; other images of the
    same person count as negatives. It learns the pairs, not the people (memorisation)."""
    logits = F.normalize(dsr, dim=1) @ F.normalize(hr, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(dsr), device=dsr.device))


def supcon_loss(temperature: float = 0.07):
    """Supervised contrastive loss (Khosla et al. 2020), from pytorch-metric-learning: every other
    embedding with the same label is a positive, self excluded. Call it on [DSR; HR] with the
    labels repeated, so DSR outputs are pulled towards all of the person's HR images."""
    # pytorch-metric-learning: only a training run needs it, not every import of facediag.train
    from pytorch_metric_learning.losses import SupConLoss

    return SupConLoss(temperature=temperature)


def objective_for(cfg: TrainConfig, device: torch.device):
    """The configured objective as ``loss(dsr_emb | None, hr_emb, labels)`` on raw embeddings
    (``dsr_emb`` is None with ``--views hr``)."""
    if cfg.objective == "paired":
        return lambda d, h, y: paired_cosine_loss(d, h)
    if cfg.objective == "instance":
        return lambda d, h, y: instance_infonce_loss(d, h, cfg.temperature)
    supcon = supcon_loss(cfg.temperature).to(device)

    def loss(d, h, y):
        if d is None:
            return supcon(h, y)
        # One SupCon over [DSR; HR]: a DSR output's positives are every other view of its
        # person, HR images of other shots included — what gallery matching needs.
        return supcon(torch.cat([d, h]), torch.cat([y, y]))

    return loss
