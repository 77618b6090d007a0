"""Contrastive fine-tuning of EdgeFace for low-resolution pipelines, validated by gallery matching.

Each step embeds a P×K batch twice — DSR(VLR) and HR — and pulls every view of a person
towards all of that person's views (supervised contrastive loss), so DSR probes land near
the person's HR gallery, not only near their own HR twin. Every epoch the model is judged
the way it will be used: HR templates vs DSR probes of held-out data, by the Session and
evaluation code run-all uses. The checkpoint kept is the best by gallery rank-1, never by
paired similarity, which is logged beside it precisely because it can disagree.

Outputs beside ``out``: the weights (plain official-key state_dict), ``<out>.json``
(config, data fingerprints, history, best epoch), ``<stem>.history.json``,
``<stem>.curves.png``, and ``<stem>.resume.pt`` (the state ``--resume`` continues from).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from facediag import __version__
from facediag.data.images import normalize
from facediag.device import resolve_device
from facediag.errors import FacediagError
from facediag.io import atomic_save, atomic_write_text
from facediag.progress import progress_bar
from facediag.train.config import RESUME_IDENTITY, TrainConfig, output_paths
from facediag.train.data import TrainPixels, epoch_batches, split_data
from facediag.train.losses import instance_infonce_loss, paired_cosine_loss, supcon_loss
from facediag.train.validate import Validator, protocol_info

__all__ = ["TrainConfig", "TrainResult", "train_contrastive", "output_paths"]

SCHEMA_VERSION = 1
METRICS = ("rank1", "accuracy_at_threshold", "far_at_threshold", "genuine_mean", "impostor_mean",
           "paired_mean", "pair_gap", "threshold_at_far_1pct", "n_probes", "n_subjects")
# Flags raised on an epoch's validation (see _flags): values far from any healthy model.
COLLAPSE_IMPOSTOR = 0.5     # healthy EdgeFace impostor mean on ORL is ~0.05
COLLAPSE_SEPARATION = 0.1   # genuine − impostor mean below this: people no longer separate
THRESHOLD_FAR = 0.05        # FAR at the fixed threshold beyond this: the threshold no longer holds
RANK1_DROP = 0.05           # below the starting model's rank-1 by more than this
PAIRED_LOOKS_PERFECT = 0.95


@dataclass
class TrainResult:
    out_path: Path
    best_epoch: int | None          # None when no epoch finished
    best_metrics: dict | None       # validation metrics of the kept checkpoint
    history: list[dict]             # epoch 0 = the starting model, before any step
    sidecar_path: Path
    history_path: Path
    plot_path: Path
    resume_path: Path
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> dict | None:
        return self.history[0] if self.history and self.history[0]["epoch"] == 0 else None


# ------------------------------------------------------------------ distributed
@dataclass
class _Dist:
    """torchrun environment: one process per GPU; rank 0 validates, logs and writes."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_spec: str) -> "_Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        cuda = torch.cuda.is_available() and device_spec != "cpu"
        initialised = False
        if not dist.is_initialized():
            # Ranks > 0 wait while rank 0 validates: allow a long validation.
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
            initialised = True
        return cls(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), initialised)

    def device(self, spec: str) -> torch.device:
        if self.world == 1:
            return resolve_device(spec)
        if torch.cuda.is_available() and spec != "cpu":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def broadcast(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.broadcast(t, 0)
        return float(t.item())

    def mean(self, values: list[float]) -> list[float]:
        """Average per-rank numbers (epoch loss, paired cosine) over ranks."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def close(self):
        if self.initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


# ---------------------------------------------------------------------- model
def _load_model(cfg: TrainConfig, device: torch.device):
    """(float EdgeFace in train mode on device, variant, input sha256 or None, notes)."""
    from facediag.models.checkpoint import dequantize_state_dict, load_checkpoint, resolve_variant
    from facediag.models.edgeface import VARIANTS, build_edgeface

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
    if loaded.variant == "torchscript":
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


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    anchor = copy.deepcopy(model).eval()
    for p in anchor.parameters():
        p.requires_grad_(False)
    return anchor


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
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


# ----------------------------------------------------------------------- loss
def _objective(cfg: TrainConfig, device: torch.device):
    """loss(dsr_emb | None, hr_emb, labels) on raw embeddings."""
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


# ------------------------------------------------------------------ RNG state
def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- main entry
def train_contrastive(cfg: TrainConfig, console: Console | None = None) -> TrainResult:
    """Fine-tune (or train) EdgeFace contrastively; validate each epoch by gallery matching.

    Raises FacediagError for unusable input. Ctrl-C leaves only complete files; run again
    with ``resume=True`` to continue from the last saved state.
    """
    cfg = dataclasses.replace(cfg).check()
    dist = _Dist.from_env(cfg.device)
    try:
        return _Run(cfg, dist, console).run()
    finally:
        dist.close()


class _Run:
    def __init__(self, cfg: TrainConfig, dist: _Dist, console: Console | None):
        self.cfg, self.dist = cfg, dist
        self.console = console or Console()
        if not dist.main:
            self.console = Console(quiet=True)
        self.paths = output_paths(cfg.out)
        self.notes: list[str] = []

    # ----------------------------------------------------------------- setup
    def setup(self):
        from facediag.models.dsr import load_dsr

        cfg, c = self.cfg, self.console
        _seed_all(cfg.seed)
        self.device = self.dist.device(cfg.device)
        self.amp = bool(cfg.amp and self.device.type == "cuda")
        self.dsr = load_dsr(cfg.dsr, str(cfg.dsr_weights) if cfg.dsr_weights else None,
                            device=self.device)
        self.split = split = split_data(cfg)
        self.notes += split.notes
        self.model, self.variant, self.weights_sha, notes = _load_model(cfg, self.device)
        self.notes += notes
        self.anchor = _frozen_copy(self.model) if cfg.anchor_weight > 0 else None
        train = split.train
        self.labels = train.labels
        n_subjects = len(train.subjects)
        self.P = min(cfg.batch_subjects, n_subjects)
        if self.P < cfg.batch_subjects:
            self.notes.append(f"only {n_subjects} training subjects: batches of {self.P} subjects, "
                              f"not {cfg.batch_subjects}")
        self.K = cfg.images_per_subject
        per_step = self.P * self.K * self.dist.world
        self.steps = cfg.steps_per_epoch or max(1, len(train.items) // per_step)
        self.total_steps = self.steps * cfg.epochs
        self.warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(0.05 * self.total_steps)
        self.pixels = TrainPixels(train.items, cfg.vlr_size, self.dsr, self.device,
                                  need_lr=cfg.views == "hr+lr", cache_images=cfg.cache_images)
        self.loss_fn = _objective(cfg, self.device)
        self.optimizer = _optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, self.warmup, self.total_steps))
        self.net = self.model
        if self.dist.world > 1:
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            # Depthwise [C,1,3,3] weights: a size-1 dim's stride differs from the bucket's. Harmless.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        vkw = dict(dsr=self.dsr, device=self.device, threshold=cfg.threshold,
                   batch_size=cfg.batch_size, amp=self.amp, progress=cfg.progress,
                   layout=cfg.layout, subject_regex=cfg.subject_regex,
                   gallery_per_subject=cfg.gallery_per_subject)
        self.validators = {"val": Validator(split.val, split.val_root, **vkw)}
        if split.seen is not None:
            self.validators["seen"] = Validator(split.seen, split.train.root, **vkw)
        self.identity = {
            "weights_sha256": self.weights_sha,
            "train_fingerprint": train.fingerprint(cfg.vlr_size, self.dsr.fingerprint),
            "val_fingerprint": split.val.fingerprint(),
            "seen_fingerprint": split.seen.fingerprint() if split.seen else None,
            **{k: getattr(cfg, k) for k in RESUME_IDENTITY},
        }
        c.print(f"[bold]train-contrastive[/] {self.variant} on {self.device}"
                f"{' ×' + str(self.dist.world) + ' (DDP)' if self.dist.world > 1 else ''}"
                f"{' bf16' if self.amp else ''}: objective {cfg.objective}, views {cfg.views}, "
                f"{len(train.items)} images of {n_subjects} subjects, batches {self.P}×{self.K}, "
                f"{self.steps} steps/epoch, lr {cfg.lr:g}", highlight=False)
        if cfg.objective != "supcon":
            c.print(f"[yellow]--objective {cfg.objective} reproduces a known failure on purpose "
                    "(see the validation columns)[/]", highlight=False)
        for name, v in self.validators.items():
            c.print(f"  {name}: {len(v.protocol.gallery_subjects)} subjects, "
                    f"{len(v.protocol.probes)} probes at {cfg.vlr_size} px, {self.dsr.name} DSR "
                    f"({_VAL_LABEL[name if name == 'seen' else split.val_kind]})", highlight=False)
        for note in self.notes:
            c.print(f"  [dim]note:[/] {note}", highlight=False)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainResult:
        cfg = self.cfg
        self.setup()
        self.history: list[dict] = []
        self.best_epoch, self.best_rank1, self.best_sha = None, -1.0, None
        start_epoch, partial = 0, None
        if cfg.resume:
            start_epoch, partial = self.load_state()
        self.table = _EpochTable(self.console, "seen" in self.validators, cfg.threshold)
        self.table.header()
        for row in self.history:
            self.table.row(row)
        if not self.history:  # epoch 0: the starting model, the bar to beat
            row = {"epoch": 0, "steps": 0, **self.validate()}
            row["flags"] = []
            self.history.append(row)
            self.table.row(row)
            self.save_all(0, None)  # so a run killed in epoch 1 can already resume
        stopped = False
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                if self.should_stop():
                    stopped = True
                    break
                row = self.train_epoch(epoch, partial)
                partial = None
                row.update(self.validate())
                row["flags"] = _flags(row, self.history[0], cfg.threshold)
                is_best = self.dist.main and row["val_rank1"] is not None and row["val_rank1"] > self.best_rank1
                row["best"] = bool(is_best)
                if is_best:
                    from facediag.models.checkpoint import save_state_dict

                    self.best_epoch, self.best_rank1 = epoch, row["val_rank1"]
                    self.best_sha = save_state_dict(self.model, self.paths["out"])
                self.history.append(row)
                self.table.row(row)
                self.save_all(epoch, None)
        except KeyboardInterrupt:
            self.console.print(f"[yellow]interrupted[/]: every file written is complete; continue "
                               f"with --resume (state: {self.paths['resume'].name})")
            raise
        return self.finish(stopped)

    def should_stop(self) -> bool:
        """Early stopping: ``patience`` epochs without a better validation rank-1 (rank 0 decides)."""
        p = self.cfg.patience
        stop = bool(p and self.best_epoch is not None and self.history[-1]["epoch"] - self.best_epoch >= p)
        return bool(self.dist.broadcast(float(stop)))

    # ---------------------------------------------------------------- epochs
    def train_epoch(self, epoch: int, partial: dict | None) -> dict:
        cfg, dist = self.cfg, self.dist
        batches = epoch_batches(self.labels, self.P, self.K, self.steps * dist.world, cfg.seed, epoch)
        batches = batches[dist.rank::dist.world]  # each rank its own share of the same list
        first = partial["step"] if partial else 0
        sums = dict(partial["sums"]) if partial else {"loss": 0.0, "paired": 0.0, "anchor": 0.0,
                                                      "images": 0, "seconds": 0.0, "steps": 0}
        self.model.train()
        # Decode (and DSR) the next batch in a background thread while this one trains.
        with ThreadPoolExecutor(1) as prefetch, progress_bar(
                f"epoch {epoch}/{cfg.epochs}", len(batches) - first, cfg.progress and dist.main) as advance:
            pending = prefetch.submit(self.fetch, batches, epoch, first) if first < len(batches) else None
            for step in range(first, len(batches)):
                t0 = time.perf_counter()
                batch = pending.result()
                if step + 1 < len(batches):
                    pending = prefetch.submit(self.fetch, batches, epoch, step + 1)
                loss, paired, anchor, n = self.step(batch)
                sums["loss"] += loss
                sums["paired"] += paired if paired is not None else float("nan")
                sums["anchor"] += anchor
                sums["paired_last"] = paired
                sums["images"] += n
                sums["steps"] += 1
                sums["seconds"] += time.perf_counter() - t0
                advance(1)
                if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < len(batches):
                    self.save_state(epoch - 1, {"epoch": epoch, "step": step + 1, "sums": sums})
        n = max(1, sums["steps"])
        loss, paired, anchor = dist.mean([sums["loss"] / n, sums["paired"] / n, sums["anchor"] / n])
        images = sums["images"] * dist.world
        return {"epoch": epoch, "steps": sums["steps"], "lr": self.scheduler.get_last_lr()[0],
                "train_loss": loss, "train_paired_cos": None if math.isnan(paired) else paired,
                "train_paired_last": sums.get("paired_last"),
                "train_anchor": anchor if self.anchor is not None else None,
                "train_images": images, "seconds": sums["seconds"],
                "images_per_s": images / sums["seconds"] if sums["seconds"] else None}

    def fetch(self, batches: list[list[int]], epoch: int, step: int):
        """Pixels and labels of one batch. Flips are drawn from (seed, epoch, step, rank), so
        a resumed step sees the same ones."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(
            (cfg.seed * 1_000_003 + epoch * 10_007 + step * 101 + self.dist.rank) % 2**63)
        idx = batches[step]
        hr, lr, kept = self.pixels.batch(idx, gen, hflip=cfg.hflip)
        return hr, lr, torch.as_tensor(self.labels[[idx[p] for p in kept]])

    def step(self, batch):
        """One optimisation step: (loss, paired cosine or None, anchor term, images)."""
        hr, lr, y = batch
        y = y.to(self.device)
        x = torch.cat([lr, hr]) if lr is not None else hr
        x = normalize(x).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            emb = self.net(x)
        emb = emb.float()  # the loss in float32 whatever the autocast dtype
        d, h = (emb[:len(hr)], emb[len(hr):]) if lr is not None else (None, emb)
        loss = self.loss_fn(d, h, y)
        anchor = torch.zeros((), device=self.device)
        if self.anchor is not None:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                ref = self.anchor(x[-len(hr):]).float()
            anchor = (1 - F.cosine_similarity(h, ref, dim=1)).mean()
            loss = loss + self.cfg.anchor_weight * anchor
        if not torch.isfinite(loss):
            raise FacediagError(f"the loss became {loss.item()} (diverged); lower --lr "
                                f"(now {self.cfg.lr:g}) or resume from the last good state")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        paired = F.cosine_similarity(d, h, dim=1).mean().item() if d is not None else None
        return loss.item(), paired, anchor.item(), len(hr)

    def validate(self) -> dict:
        """Validation metrics (``val_*``, ``seen_*``) on rank 0; other ranks wait."""
        out = {}
        if self.dist.main:
            t0 = time.perf_counter()
            for name, validator in self.validators.items():
                metrics = validator(self.model, self.variant)
                out.update({f"{name}_{k}": metrics.get(k) for k in METRICS})
            out["val_seconds"] = time.perf_counter() - t0
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return out

    # ---------------------------------------------------------------- state
    def save_state(self, epoch: int, partial: dict | None) -> None:
        """Everything --resume needs, atomically (rank 0)."""
        if not self.dist.main:
            return
        state = {"format": "facediag-train-resume", "version": SCHEMA_VERSION, "epoch": epoch,
                 "partial": partial, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": _rng_state(), "history": self.history, "best_epoch": self.best_epoch,
                 "best_rank1": self.best_rank1, "best_sha256": self.best_sha,
                 "identity": self.identity, "variant": self.variant}
        atomic_save(self.paths["resume"], lambda tmp: torch.save(state, tmp))

    def load_state(self) -> tuple[int, dict | None]:
        path = self.paths["resume"]
        if not path.is_file():
            raise FacediagError(f"--resume: no saved state {path} (start without --resume)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable state is bad input
            raise FacediagError(f"--resume: {path.name} is not readable: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != "facediag-train-resume":
            raise FacediagError(f"--resume: {path.name} is not a facediag training state")
        changed = [k for k, v in self.identity.items() if state["identity"].get(k) != v]
        if changed:
            k = changed[0]
            raise FacediagError(f"--resume: the saved run differs in {', '.join(changed)} "
                                f"(saved {state['identity'].get(k)!r}, now {self.identity[k]!r}); "
                                "use the same settings or start without --resume")
        if state["best_epoch"] is not None and not self.paths["out"].is_file():
            raise FacediagError(f"--resume: the best checkpoint {self.paths['out']} is missing")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.history = list(state["history"])
        self.best_epoch, self.best_rank1 = state["best_epoch"], state["best_rank1"]
        self.best_sha = state["best_sha256"]
        partial = state.get("partial")
        where = (f"epoch {partial['epoch']} step {partial['step']}" if partial
                 else f"the end of epoch {state['epoch']}")
        self.console.print(f"resuming from {where} ({path.name})", highlight=False)
        return state["epoch"], partial

    def save_all(self, epoch: int, partial: dict | None) -> None:
        """Sidecar, history, curves, then the resume state; each file atomic (rank 0)."""
        if not self.dist.main:
            return
        self.write_reports(stopped=False)
        self.save_state(epoch, partial)

    def write_reports(self, stopped: bool) -> None:
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), None)
        atomic_write_text(self.paths["history"], json.dumps(_jsonable(self.history), indent=2))
        if self.best_epoch is not None:
            atomic_write_text(self.paths["sidecar"], json.dumps(_jsonable(self.sidecar(best, stopped)), indent=2))
        write_curves(self.history, self.paths["plot"], self.best_epoch, self.cfg.threshold)

    def sidecar(self, best: dict | None, stopped: bool) -> dict:
        cfg, split = self.cfg, self.split
        return {
            "schema_version": SCHEMA_VERSION, "tool": "facediag", "version": __version__,
            "kind": "train-contrastive",
            "output": {"path": str(self.paths["out"]), "sha256": self.best_sha, "variant": self.variant,
                       "format": "state_dict (official EdgeFace keys, model.*)"},
            "input_weights": ({"path": str(cfg.weights), "sha256": self.weights_sha}
                              if cfg.weights else None),
            "config": cfg.to_dict(),
            "data": {
                "train": {"root": str(split.train.root), "subjects": len(split.train.subjects),
                          "images": len(split.train.items),
                          "fingerprint": self.identity["train_fingerprint"],
                          "dsr": self.dsr.name, "vlr_size": cfg.vlr_size},
                "val": {"kind": split.val_kind, **protocol_info(split.val, split.val_root)},
                "seen": protocol_info(split.seen, split.train.root) if split.seen else None,
            },
            "selection": "best validation gallery rank-1 (never paired similarity)",
            "best_epoch": self.best_epoch,
            "best_metrics": best,
            "baseline": self.history[0] if self.history else None,
            "stopped_early": stopped,
            "history": self.history,
            "environment": {"torch": torch.__version__, "python": platform.python_version(),
                            "device": str(self.device), "world_size": self.dist.world, "amp_bf16": self.amp,
                            "steps_per_epoch": self.steps, "batch": [self.P, self.K],
                            "warmup_steps": self.warmup},
            "notes": self.notes + ([f"{len(self.pixels.failures)} training image(s) unreadable"]
                                   if self.pixels.failures else []),
        }

    def finish(self, stopped: bool) -> TrainResult:
        c = self.console
        if self.dist.main:
            self.write_reports(stopped)
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), None)
        base = self.history[0]
        if stopped:
            c.print(f"early stop: {self.cfg.patience} epoch(s) without a better validation rank-1")
        if best is not None:
            msg = (f"kept epoch {self.best_epoch} (best validation rank-1 {best['val_rank1']:.3f}; "
                   f"starting model {base['val_rank1']:.3f}; paired cosine {_f(best.get('val_paired_mean'))}"
                   f" — not used for selection) -> {self.paths['out']}")
            c.print(f"[bold green]{msg}[/]" if best["val_rank1"] >= base["val_rank1"] else
                    f"[bold red]{msg}[/] [red](no epoch beat the starting model)[/]", highlight=False)
        for w in self.pixels.failures.values():
            c.print(f"[yellow]unreadable training image:[/] {w}", highlight=False)
            break
        c.print(f"history: {self.paths['history']}  curves: {self.paths['plot']}  "
                f"sidecar: {self.paths['sidecar']}", highlight=False)
        return TrainResult(out_path=self.paths["out"], best_epoch=self.best_epoch, best_metrics=best,
                           history=self.history, sidecar_path=self.paths["sidecar"],
                           history_path=self.paths["history"], plot_path=self.paths["plot"],
                           resume_path=self.paths["resume"], stopped_early=stopped, notes=self.notes)


_VAL_LABEL = {"subjects": "held-out subjects", "images": "held-out images of the training subjects",
              "val-data": "--val-data", "seen": "held-out images of the training subjects"}


# --------------------------------------------------------------- diagnosis
def _flags(row: dict, base: dict, threshold: float) -> list[str]:
    """Name the failures the validation shows in this epoch (compared with epoch 0)."""
    flags = []
    imp, gen, far = row.get("val_impostor_mean"), row.get("val_genuine_mean"), row.get("val_far_at_threshold")
    r1, r0 = row.get("val_rank1"), base.get("val_rank1")
    if imp is not None and gen is not None and imp >= COLLAPSE_IMPOSTOR and gen - imp < COLLAPSE_SEPARATION:
        flags.append(f"COLLAPSE: different people match as well as the same person (impostor mean "
                     f"{imp:.3f}, genuine {gen:.3f}; at start {_f(base.get('val_impostor_mean'))})")
    elif far is not None and far >= THRESHOLD_FAR:
        # The held-out set may have too few impostor pairs to support FAR 1 %; the seen set may.
        at = next(((name, row[f"{name}_threshold_at_far_1pct"]) for name in ("val", "seen")
                   if row.get(f"{name}_threshold_at_far_1pct") is not None), None)
        flags.append(f"THRESHOLD: cos >= {threshold:g} now accepts {far:.1%} of impostor pairs "
                     f"(impostor mean {_f(imp)}); choose a threshold for a target FAR"
                     + (f" (FAR 1 % on {at[0]}: {at[1]:.3f})" if at else ""))
    if r1 is not None and r0 is not None and r1 < r0 - RANK1_DROP:
        paired = max(row.get("val_paired_mean") or 0, row.get("train_paired_last") or 0)
        if paired >= PAIRED_LOOKS_PERFECT:
            flags.append(f"MISLEADING PAIRED METRIC: paired cosine {paired:.3f} (DSR_i vs its own "
                         f"HR_i) looks perfect while gallery rank-1 fell {r0:.3f} -> {r1:.3f}")
        else:
            flags.append(f"rank-1 below the starting model ({r0:.3f} -> {r1:.3f})")
    gap = row.get("val_pair_gap")
    if gap is not None and gap >= 0.3 and (r1 or 0) < (r0 or 0):
        flags.append(f"PAIR MEMORISATION: a probe matches its own HR image far better than its "
                     f"person's gallery (gap {gap:.3f})")
    return flags


def _severe(row: dict) -> bool:
    return any(not f.startswith("THRESHOLD") for f in row.get("flags") or [])


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ------------------------------------------------------------ epoch table
class _EpochTable:
    """One Rich row per epoch as it ends (header once), flags in red under the row.
    Sized for an 80-column terminal; the JSON history has every number."""

    def __init__(self, console: Console, seen: bool, threshold: float):
        self.console, self.seen = console, seen
        thr = f"{threshold:g}"
        self.cols = [("ep", 3), ("train\nloss", 6), ("train\npaired", 6), ("val\nrank-1", 6)]
        if seen:
            self.cols.append(("seen\nrank-1", 6))
        self.cols += [(f"acc\n@{thr}", 6), (f"FAR\n@{thr}", 6), ("val\ngenu.", 6),
                      ("val\nimpos.", 6), ("val\npaired", 6), ("s", 4), ("", 5)]

    def _table(self, header: bool) -> Table:
        t = Table(box=None, show_header=header, header_style="bold", pad_edge=False,
                  padding=(0, 1, 0, 0))
        for name, width in self.cols:
            t.add_column(name, width=width, justify="right", no_wrap=True)
        return t

    def header(self):
        self.console.print(self._table(True))

    def row(self, r: dict):
        t = self._table(False)
        cells = [str(r["epoch"]), _f(r.get("train_loss")), _f(r.get("train_paired_cos")),
                 _f(r.get("val_rank1"))]
        if self.seen:
            cells.append(_f(r.get("seen_rank1")))
        cells += [_f(r.get("val_accuracy_at_threshold")), _f(r.get("val_far_at_threshold")),
                  _f(r.get("val_genuine_mean")), _f(r.get("val_impostor_mean")),
                  _f(r.get("val_paired_mean")),
                  f"{(r.get('seconds') or 0) + (r.get('val_seconds') or 0):.0f}",
                  "best" if r.get("best") else ("start" if r["epoch"] == 0 else "")]
        style = "red" if _severe(r) else ("bold green" if r.get("best") else None)
        t.add_row(*cells, style=style)
        self.console.print(t)
        for flag in r.get("flags") or []:
            color = "yellow" if flag.startswith("THRESHOLD") else "bold red"
            self.console.print(f"    [{color}]{flag}[/]", highlight=False)


# ------------------------------------------------------------------ curves
def write_curves(history: list[dict], path: Path, best_epoch: int | None, threshold: float) -> Path:
    """Training curves (matplotlib Agg) written atomically: identification, similarities, loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]

    def series(key):
        return [np.nan if r.get(key) is None else r[key] for r in history]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(ep, series("val_rank1"), "o-", label="val rank-1 (selects the checkpoint)")
    if any(r.get("seen_rank1") is not None for r in history):
        ax.plot(ep, series("seen_rank1"), "s--", label="rank-1, held-out images of training subjects")
    ax.plot(ep, series("val_accuracy_at_threshold"), "^:", label=f"val accuracy @ {threshold:g}")
    ax.plot(ep, series("val_far_at_threshold"), "x:", color="tab:red", label=f"val FAR @ {threshold:g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("gallery matching (held-out)")
    ax = axes[1]
    ax.plot(ep, series("train_paired_cos"), "o-", color="tab:gray", label="train paired cos (objective's own)")
    ax.plot(ep, series("val_paired_mean"), "o--", color="tab:purple", label="val paired (DSR_i vs own HR_i)")
    ax.plot(ep, series("val_genuine_mean"), "s-", color="tab:green", label="val genuine (probe vs template)")
    ax.plot(ep, series("val_impostor_mean"), "x-", color="tab:red", label="val impostor")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title("mean cosine similarity")
    ax = axes[2]
    ax.plot(ep, series("train_loss"), "o-", label="train loss")
    if any(r.get("train_anchor") is not None for r in history):
        ax.plot(ep, series("train_anchor"), "s--", label="anchor (1 − cos to start)")
    ax.set_title("training loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:green", alpha=0.3, lw=6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("facediag train-contrastive (green band: kept checkpoint, by val rank-1)", fontsize=10)
    fig.tight_layout()
    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
    return path
