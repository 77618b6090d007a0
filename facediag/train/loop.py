"""One training run, start to end: set up from a checked TrainConfig, validate the starting
model (epoch 0), then train and validate epoch by epoch (facediag.Monitor, train.validate), keep
the checkpoint with the best gallery rank-1, stop early when the Monitor says so or after
``patience`` epochs without a better one, and save the reports and the resume state after every
epoch."""
from __future__ import annotations

import math
import platform
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from facediag.cache import EmbeddingCache, default_cache_dir
from facediag.data.aligner import Aligner
from facediag.data.images import normalize
from facediag.errors import FacediagError
from facediag.io import remove_stale_temps
from facediag.models.checkpoint import save_state_dict
from facediag.models.dsr import load_dsr
from facediag.progress import progress_bar
from facediag.runner import settle_alignment
from facediag.session import Session, SessionConfig
from facediag.train.config import RESUME_IDENTITY, TrainConfig, output_paths
from facediag.train.data import TrainPixels, epoch_batches, split_data
from facediag.train.display import EpochTable
from facediag.distributed import Distributed
from facediag.train.history import best_row, build_sidecar, fmt, write_report_files
from facediag.train.losses import objective_for
from facediag.train.model import frozen_copy, load_model, make_optimizer, warmup_cosine
from facediag.train.resume import (
    load_resume_state,
    restore_training,
    resume_point,
    save_resume_state,
    seed_all,
)
from facediag.train.validate import build_monitor, first_call, flag_lines, protocol_info, row_fields


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


_VAL_LABEL = {"subjects": "held-out subjects", "images": "held-out images of the training subjects",
              "val-data": "--val-data", "seen": "held-out images of the training subjects"}


class TrainingRun:
    def __init__(self, cfg: TrainConfig, dist: Distributed, console: Console | None):
        self.cfg, self.dist = cfg, dist
        self.console = console or Console()
        if not dist.main:
            self.console = Console(quiet=True)
        self.paths = output_paths(cfg.out)
        self.notes: list[str] = []

    # ----------------------------------------------------------------- setup
    def clean_up_after_killed_run(self) -> None:
        """Delete temp files a killed run (SIGKILL, power loss) left beside the outputs. Rank 0
        only, before anything is written: the temps of this run's own writes must not go."""
        if not self.dist.main:
            return
        removed = [p for target in self.paths.values() for p in remove_stale_temps(target)]
        if removed:
            self.console.print(f"[dim]removed {len(removed)} temporary file(s) an interrupted run "
                               f"left behind ({', '.join(p.name for p in removed)})[/]", highlight=False)

    def setup(self):
        """Everything a run needs, in order: seeds, device, DSR, data split, model, batch shape,
        alignment, training pixels, optimiser, validation monitors and the identity --resume checks."""
        cfg = self.cfg
        seed_all(cfg.seed)
        self.device = self.dist.device(cfg.device)
        self.amp = bool(cfg.amp and self.device.type == "cuda")
        self.dsr = load_dsr(cfg.dsr, str(cfg.dsr_weights) if cfg.dsr_weights else None,
                            device=self.device)
        self.split = split = split_data(cfg)
        self.notes += split.notes
        self.model, self.variant, self.weights_sha, notes = load_model(cfg, self.device)
        self.notes += notes
        self.anchor = frozen_copy(self.model) if cfg.anchor_weight > 0 else None
        self.labels = split.train.labels
        self.plan_batches()
        self.aligner = self.settle_alignment()
        self.align_training_faces()
        self.pixels = TrainPixels(split.train.items, cfg.vlr_size, self.dsr, self.device,
                                  need_lr=cfg.views == "hr+lr", cache_images=cfg.cache_images, mode=cfg.degrade,
                                  **({"load": self.aligner.load} if self.aligner is not None else {}))
        self.build_optimisation()
        self.monitors = self.build_monitors()
        self.identity = self.resume_identity()
        self.announce()

    def plan_batches(self) -> None:
        """Batch shape (P subjects × K images), steps per epoch, total steps and warmup steps."""
        cfg, train = self.cfg, self.split.train
        n_subjects = len(train.subjects)
        self.P = min(cfg.batch_subjects, n_subjects)
        if self.P < cfg.batch_subjects:
            self.notes.append(f"only {n_subjects} training subjects: batches of {self.P} subjects, "
                              f"not {cfg.batch_subjects}")
        self.K = cfg.images_per_subject
        images_per_step = self.P * self.K * self.dist.world
        self.steps = cfg.steps_per_epoch or max(1, len(train.items) // images_per_step)
        self.total_steps = self.steps * cfg.epochs
        self.warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(0.05 * self.total_steps)

    def align_training_faces(self) -> None:
        """Landmarks of every training face now, batched (cached by content), when aligning."""
        if self.aligner is None:
            return
        self.aligner.prepare([it.hr.path for it in self.split.train.items], "detecting training faces")
        counts = self.aligner.counts()
        self.notes.append(f"training faces aligned on the fly to the ArcFace template ({self.aligner.id}): "
                          f"{counts['aligned']} aligned, {counts['no_face']} with no face found used as given")

    def build_optimisation(self) -> None:
        """Loss, optimiser, warmup-cosine schedule and the network steps run through (DDP when
        more than one process)."""
        cfg = self.cfg
        self.loss_fn = objective_for(cfg, self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, self.warmup, self.total_steps))
        self.net = self.model
        if self.dist.world > 1:
            # Depthwise [C,1,3,3] weights: a size-1 dim's stride differs from the bucket's. Harmless.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def build_monitors(self) -> dict:
        """A Monitor per held-out set: ``val`` always (its diagnoses flag rows and may stop the
        run); ``seen`` (held-out images of the training subjects) when the split has it. Built on
        every rank (a Monitor's constructor is a collective under torch.distributed)."""
        cfg, split = self.cfg, self.split
        kw = {"threshold": cfg.threshold, "dsr": self.dsr, "aligner": self.aligner, "device": self.device, "cfg": cfg}
        monitors = {"val": build_monitor(split.val, split.val_root, **kw)}
        if split.seen is not None:
            monitors["seen"] = build_monitor(split.seen, split.train.root, **kw)
        return monitors

    def resume_identity(self) -> dict:
        """What --resume requires unchanged: weights, data fingerprints and the identity options."""
        cfg, split = self.cfg, self.split
        align_id = self.aligner.id if self.aligner is not None else None
        return {
            "weights_sha256": self.weights_sha,
            "train_fingerprint": split.train.fingerprint(cfg.vlr_size, self.dsr.fingerprint, align_id, cfg.degrade),
            "val_fingerprint": split.val.fingerprint(),
            "seen_fingerprint": split.seen.fingerprint() if split.seen else None,
            **{k: getattr(cfg, k) for k in RESUME_IDENTITY},
            **({"align": align_id} if self.aligner is not None else {}),  # absent: older states resume
            **({"degrade": cfg.degrade} if cfg.degrade != "bicubic" else {}),  # likewise
        }

    def announce(self) -> None:
        """The run's header: model, device, objective, data, batches, validation sets and notes."""
        cfg, c, train = self.cfg, self.console, self.split.train
        c.print(f"[bold]train-contrastive[/] {self.variant} on {self.device}"
                f"{' ×' + str(self.dist.world) + ' (DDP)' if self.dist.world > 1 else ''}"
                f"{' bf16' if self.amp else ''}: objective {cfg.objective}, views {cfg.views}, "
                f"{len(train.items)} images of {len(train.subjects)} subjects, batches {self.P}×{self.K}, "
                f"{self.steps} steps/epoch, lr {cfg.lr:g}", highlight=False)
        if cfg.objective != "supcon":
            c.print(f"[yellow]--objective {cfg.objective} reproduces a known failure on purpose "
                    "(see the validation columns)[/]", highlight=False)
        for name, protocol in (("val", self.split.val), ("seen", self.split.seen)):
            if protocol is None:
                continue
            c.print(f"  {name}: {len(protocol.gallery_subjects)} subjects, "
                    f"{len(protocol.probes)} probes at {cfg.vlr_size} px, {self.dsr.name} DSR "
                    f"({_VAL_LABEL[name if name == 'seen' else self.split.val_kind]})", highlight=False)
        for note in self.notes:
            c.print(f"  [dim]note:[/] {note}", highlight=False)

    def settle_alignment(self):
        """The Aligner under --align mtcnn (or auto, when the alignment check finds the training faces
        as given not aligned: measured on the sample run-all would take of --data), else None."""
        cfg = self.cfg
        if cfg.align == "none":
            return None
        if cfg.align == "auto":
            probe = Session(SessionConfig(data=cfg.data, layout=cfg.layout, subject_regex=cfg.subject_regex,
                                          align="auto", device=str(self.device), progress=cfg.progress))
            settle_alignment(probe)
            self.notes.append(probe.alignment_info()["note"])
            if probe.alignment == "none":
                return None
        device = str(self.device) if self.device.type == "cuda" else "cpu"
        return Aligner(EmbeddingCache(default_cache_dir()), device=device, progress=cfg.progress)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainResult:
        cfg = self.cfg
        self.clean_up_after_killed_run()
        self.setup()
        self.history: list[dict] = []
        self.best_epoch, self.best_rank1, self.best_sha = None, -1.0, None
        start_epoch, partial = 0, None
        if cfg.resume:
            start_epoch, partial = self.load_state()
            if self.history and self.dist.main:  # the trends read against epoch 0, as before the kill
                self.monitors["val"].history = [first_call(self.history[0])]
        self.table = EpochTable(self.console, "seen" in self.monitors, cfg.threshold)
        self.table.header()
        for row in self.history:
            self.table.row(row)
        if not self.history:  # epoch 0: the starting model, the bar to beat
            row = {"epoch": 0, "steps": 0, **self.validate(0)}
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
                row.update(self.validate(epoch * self.steps))
                is_best = self.dist.main and row["val_rank1"] is not None and row["val_rank1"] > self.best_rank1
                row["best"] = bool(is_best)
                if is_best:
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
        """Early stopping (rank 0 decides): the val Monitor said stop at a trained epoch (its
        policy: collapse, pair memorisation, the seed's signature, a rank-1 drop), or ``patience``
        epochs passed without a better validation rank-1."""
        p, last = self.cfg.patience, self.history[-1]
        # A starting model the policy already stops on (a run from scratch at its init) gives the
        # Monitor no healthy start to tell a failure of training from: patience alone decides.
        stop = bool(last["epoch"] > 0 and last.get("should_stop") and not self.history[0].get("should_stop")) or bool(
            p and self.best_epoch is not None and last["epoch"] - self.best_epoch >= p)
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

    def validate(self, step: int) -> dict:
        """A Monitor call per held-out set at training step ``step``: the row's ``val_*`` and
        ``seen_*`` numbers, the val diagnoses and trends as flags, and its stop decision. Every
        rank calls; rank 0 evaluates and the others wait for its verdict (monitor.ranks). Under
        --amp the module is fed under the same bf16 autocast it trains under."""
        out = {}
        t0 = time.perf_counter()
        for name, monitor in self.monitors.items():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                result = monitor(self.model, step=step)
            out.update(row_fields(name, result))
            if name == "val":
                first = monitor.history[0] if monitor.history and monitor.history[0] is not result else None
                out["flags"] = flag_lines(result, first)
        out["val_seconds"] = time.perf_counter() - t0
        return out

    # ---------------------------------------------------------------- state
    def save_state(self, epoch: int, partial: dict | None) -> None:
        """Everything --resume needs, atomically (rank 0)."""
        if not self.dist.main:
            return
        save_resume_state(self.paths["resume"], epoch=epoch, partial=partial, model=self.model,
                          optimizer=self.optimizer, scheduler=self.scheduler, history=self.history,
                          best_epoch=self.best_epoch, best_rank1=self.best_rank1,
                          best_sha256=self.best_sha, identity=self.identity, variant=self.variant)

    def load_state(self) -> tuple[int, dict | None]:
        path = self.paths["resume"]
        state = load_resume_state(path, self.identity, self.paths["out"])
        restore_training(state, self.model, self.optimizer, self.scheduler, variant=self.variant, name=path.name)
        self.history = list(state["history"])
        self.best_epoch, self.best_rank1 = state["best_epoch"], state["best_rank1"]
        self.best_sha = state["best_sha256"]
        self.console.print(f"resuming from {resume_point(state)} ({path.name})", highlight=False)
        return state["epoch"], state.get("partial")

    def save_all(self, epoch: int, partial: dict | None) -> None:
        """Sidecar, history, curves, then the resume state; each file atomic (rank 0)."""
        if not self.dist.main:
            return
        self.write_reports(stopped=False)
        self.save_state(epoch, partial)

    def write_reports(self, stopped: bool) -> None:
        write_report_files(self.paths, self.history, self.best_epoch, self.sidecar(stopped),
                      self.cfg.threshold)

    def sidecar(self, stopped: bool) -> dict:
        cfg, split = self.cfg, self.split
        data = {
            "train": {"root": str(split.train.root), "subjects": len(split.train.subjects),
                      "images": len(split.train.items),
                      "fingerprint": self.identity["train_fingerprint"],
                      "dsr": self.dsr.name, "vlr_size": cfg.vlr_size},
            "val": {"kind": split.val_kind, **protocol_info(split.val, split.val_root)},
            "seen": protocol_info(split.seen, split.train.root) if split.seen else None,
        }
        environment = {"torch": torch.__version__, "python": platform.python_version(),
                       "device": str(self.device), "world_size": self.dist.world, "amp_bf16": self.amp,
                       "steps_per_epoch": self.steps, "batch": [self.P, self.K],
                       "warmup_steps": self.warmup}
        notes = self.notes + ([f"{len(self.pixels.failures)} training image(s) unreadable"]
                              if self.pixels.failures else [])
        return build_sidecar(cfg=cfg, out_path=self.paths["out"], best_sha256=self.best_sha,
                       variant=self.variant, weights_sha256=self.weights_sha, data=data,
                       environment=environment, history=self.history, best_epoch=self.best_epoch,
                       stopped=stopped, notes=notes)

    def finish(self, stopped: bool) -> TrainResult:
        c = self.console
        if self.dist.main:
            self.write_reports(stopped)
        best = best_row(self.history, self.best_epoch)
        base = self.history[0]
        if stopped:
            reason = self.history[-1].get("stop_reason") if self.history[-1].get("should_stop") else None
            c.print(f"early stop: the monitor {reason}" if reason else
                    f"early stop: {self.cfg.patience} epoch(s) without a better validation rank-1", highlight=False)
        if best is not None:
            msg = (f"kept epoch {self.best_epoch} (best validation rank-1 {best['val_rank1']:.3f}; "
                   f"starting model {base['val_rank1']:.3f}; paired cosine {fmt(best.get('val_paired_mean'))}"
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
