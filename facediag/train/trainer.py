"""Contrastive fine-tuning of EdgeFace for low-resolution pipelines, validated by gallery matching.

Each step embeds a P×K batch twice — DSR(VLR) and HR — and pulls every view of a person
towards all of that person's views (supervised contrastive loss), so DSR probes land near
the person's HR gallery, not only near their own HR twin. Every epoch the model is judged
the way it will be used: HR templates vs DSR probes of held-out data, by a facediag.Monitor
call (run-all's checks and diagnoses, on the live model). The checkpoint kept is the best by gallery rank-1, never by
paired similarity, which is logged beside it precisely because it can disagree.

Outputs beside ``out``: the weights (plain official-key state_dict), ``<out>.json``
(config, data fingerprints, history, best epoch), ``<stem>.history.json``,
``<stem>.curves.png``, and ``<stem>.resume.pt`` (the state ``--resume`` continues from).

This module is the public entry; the work is in ``loop`` (the run), ``resume``, ``history``
(rows, flags, report files), ``display`` (the epoch table) and ``model``; torchrun through ``facediag.distributed``.
"""
from __future__ import annotations

import dataclasses

from rich.console import Console

from facediag.train.config import TrainConfig, output_paths
from facediag.distributed import launched
from facediag.train.loop import TrainingRun, TrainResult
from facediag.train.model import warmup_cosine

__all__ = ["TrainConfig", "TrainResult", "output_paths", "train_contrastive", "warmup_cosine"]


def train_contrastive(cfg: TrainConfig, console: Console | None = None) -> TrainResult:
    """Fine-tune (or train) EdgeFace contrastively; validate each epoch by gallery matching.

    Raises FacediagError for unusable input. Ctrl-C leaves only complete files; run again
    with ``resume=True`` to continue from the last saved state.
    """
    cfg = dataclasses.replace(cfg).check()
    with launched(cfg.device) as dist:
        return TrainingRun(cfg, dist, console).run()
