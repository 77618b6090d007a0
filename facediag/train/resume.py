"""The state ``--resume`` continues from (``<stem>.resume.pt``): weights, optimiser, schedule,
every RNG, the history so far and the best epoch. Saved atomically after each epoch (and every
``--save-every`` steps), so a killed run loses at most the steps since the last save."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from facediag.errors import FacediagError
from facediag.io import atomic_save

RESUME_FORMAT = "facediag-train-resume"
RESUME_VERSION = 1


def save_resume_state(path: Path, *, epoch: int, partial: dict | None, model: torch.nn.Module,
                      optimizer: torch.optim.Optimizer, scheduler, history: list[dict],
                      best_epoch: int | None, best_rank1: float, best_sha256: str | None,
                      identity: dict, variant: str) -> None:
    """``epoch``: the last finished epoch; ``partial``: where inside the next one (or None)."""
    state = {"format": RESUME_FORMAT, "version": RESUME_VERSION, "epoch": epoch,
             "partial": partial, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": rng_state(), "history": history, "best_epoch": best_epoch,
             "best_rank1": best_rank1, "best_sha256": best_sha256,
             "identity": identity, "variant": variant}
    atomic_save(path, lambda tmp: torch.save(state, tmp))


def load_resume_state(path: Path, identity: dict, checkpoint: Path) -> dict:
    """The saved state, refused (FacediagError) when it is unreadable, is not a training state,
    was made with other settings (``identity``), or its best ``checkpoint`` is gone."""
    if not path.is_file():
        raise FacediagError(f"--resume: no saved state {path} (start without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable state is bad input
        raise FacediagError(f"--resume: {path.name} is not readable: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise FacediagError(f"--resume: {path.name} is not a facediag training state")
    changed = [k for k, v in identity.items() if state["identity"].get(k) != v]
    if changed:
        k = changed[0]
        raise FacediagError(f"--resume: the saved run differs in {', '.join(changed)} "
                            f"(saved {state['identity'].get(k)!r}, now {identity[k]!r}); "
                            "use the same settings or start without --resume")
    if state["best_epoch"] is not None and not checkpoint.is_file():
        raise FacediagError(f"--resume: the best checkpoint {checkpoint} is missing")
    return state


def restore_training(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler) -> None:
    """Put weights, optimiser, schedule and RNGs back where the saved run left them."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])


def resume_point(state: dict) -> str:
    partial = state.get("partial")
    return (f"epoch {partial['epoch']} step {partial['step']}" if partial
            else f"the end of epoch {state['epoch']}")


# ------------------------------------------------------------------ RNG state
def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    # numpy's state as tensors and plain numbers: torch.load(weights_only=True) reads it back.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    # CUDA states only when the GPUs match the saved run's (a resume on CPU skips them).
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    # random.setstate accepts only tuples, the inner state too: do not rely on the loader's types.
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
