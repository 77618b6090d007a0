"""The state ``--resume`` continues from (``<stem>.resume.pt``): weights, optimiser, schedule,
every RNG, the history so far and the best epoch. Saved atomically after each epoch (and every
``--save-every`` steps), so a killed run loses at most the steps since the last save."""
from __future__ import annotations

import numbers
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
    check_fields(state, path.name)
    changed = [k for k, v in identity.items() if state["identity"].get(k) != v]
    if changed:
        k = changed[0]
        raise FacediagError(f"--resume: the saved run differs in {', '.join(changed)} "
                            f"(saved {_shown(state['identity'].get(k))}, now {_shown(identity[k])}); "
                            "use the same settings or start without --resume")
    if state["best_epoch"] is not None and not checkpoint.is_file():
        raise FacediagError(f"--resume: the best checkpoint {checkpoint} is missing")
    return state


def restore_training(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler, *, variant: str | None = None, name: str = "the saved state") -> None:
    """Put weights, optimiser, schedule and RNGs back where the saved run left them: all of it
    checked against this run's model, optimiser and schedule first (FacediagError naming what does
    not fit), so nothing is restored from a state that would crash the run later."""
    if variant is not None and state["variant"] != variant:
        raise FacediagError(f"--resume: {name} is a state of {_shown(state['variant'])}, this run trains "
                            f"{variant}; start without --resume")
    _check_model(state["model"], model, name)
    _check_optimizer(state["optimizer"], optimizer, name)
    _check_scheduler(state["scheduler"], scheduler, name)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])


# ------------------------------------------------------------------ what a state must hold
def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _misfit(name: str, what: str) -> FacediagError:
    return FacediagError(f"--resume: {name}: {what}; it does not fit this run (start without --resume)")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_fields(state: dict, name: str) -> None:
    """Every field a training state holds, of the type this version writes (FacediagError, one line,
    naming the first that is missing or is not): a state that passes restores and runs."""
    checks = {
        "identity": (lambda v: isinstance(v, dict), "a table"),
        "epoch": (lambda v: _is_int(v) and v >= 0, "a whole number of epochs"),
        "partial": (lambda v: v is None or _partial_ok(v), "None or {epoch, step, sums}"),
        "model": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                                        for k, t in v.items()), "a state_dict of tensors"),
        "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
                      and isinstance(v.get("param_groups"), list), "an optimiser state_dict"),
        "scheduler": (lambda v: isinstance(v, dict), "a schedule state_dict"),
        "rng": (_rng_ok, "the random generators' states"),
        "history": (_history_ok, "a list of epoch rows"),
        "best_epoch": (lambda v: v is None or (_is_int(v) and v >= 0), "None or an epoch"),
        "best_rank1": (_is_number, "a number"),
        "best_sha256": (lambda v: v is None or isinstance(v, str), "None or a digest"),
        "variant": (lambda v: isinstance(v, str), "a variant name"),
    }
    for key, (ok, what) in checks.items():
        if key not in state:
            raise _misfit(name, f"has no {key}")
        if not ok(state[key]):
            raise _misfit(name, f"{key} is {_shown(state[key], 40)}, not {what}")


_SUMS = ("loss", "paired", "anchor", "images", "seconds", "steps")


def _partial_ok(v) -> bool:
    return (isinstance(v, dict) and _is_int(v.get("epoch")) and _is_int(v.get("step")) and v["step"] >= 0
            and isinstance(v.get("sums"), dict) and all(_is_number(v["sums"].get(k)) for k in _SUMS)
            and all(isinstance(k, str) and (x is None or _is_number(x)) for k, x in v["sums"].items()))


def _history_ok(v) -> bool:
    # A row holds numbers; text only where validation writes it (train.validate): the flag lines,
    # the val Monitor's diagnosis and trend ids, and its stop reason.
    def value_ok(k, x) -> bool:
        if k in ("flags", "val_diagnoses", "val_trends"):
            return isinstance(x, list) and all(isinstance(f, str) for f in x)
        return x is None or isinstance(x, (bool, int, float)) or (k == "stop_reason" and isinstance(x, str))

    def row_ok(r) -> bool:
        return isinstance(r, dict) and _is_int(r.get("epoch")) and all(
            isinstance(k, str) and value_ok(k, x) for k, x in r.items())

    return isinstance(v, list) and all(row_ok(r) for r in v)


def _rng_ok(v) -> bool:
    """Each generator's state, tried on a scratch generator of its kind (the process's own are
    not touched until the whole state is known to fit)."""
    if not isinstance(v, dict) or not {"python", "torch", "numpy"} <= set(v):
        return False
    try:
        random.Random().setstate(_tuples(v["python"]))
        if not (isinstance(v["torch"], torch.Tensor) and v["torch"].dtype == torch.uint8):
            return False
        torch.Generator().set_state(v["torch"])
        n = v["numpy"]
        np.random.RandomState().set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                                           n["has_gauss"], n["cached"]))
        cuda = v.get("cuda", [])
        return isinstance(cuda, (list, tuple)) and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                                       for t in cuda)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError, OverflowError):
        return False


def _check_model(saved: dict, model: torch.nn.Module, name: str) -> None:
    want = model.state_dict()
    missing = [k for k in want if k not in saved]
    extra = [k for k in saved if k not in want]
    if missing or extra:
        what = f"lacks {_shown(missing[0])}" if missing else f"has {_shown(extra[0])}, which this model has not"
        raise _misfit(name, f"the saved weights {what} ({len(missing)} missing, {len(extra)} unknown)")
    for k, t in want.items():
        if saved[k].shape != t.shape or saved[k].dtype != t.dtype:
            raise _misfit(name, f"the saved weight {_shown(k)} is {saved[k].dtype} {list(saved[k].shape)}, "
                                f"this model's {t.dtype} {list(t.shape)}")


def _check_optimizer(saved: dict, optimizer: torch.optim.Optimizer, name: str) -> None:
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        raise _misfit(name, f"the optimiser state has {len(saved['param_groups'])} parameter groups, "
                            f"this run {len(groups)}")
    params = {}
    for i, (s, g) in enumerate(zip(saved["param_groups"], groups)):
        ids = s.get("params") if isinstance(s, dict) else None
        if not isinstance(ids, list) or len(ids) != len(g["params"]) or not all(_is_int(p) for p in ids):
            raise _misfit(name, f"the optimiser's parameter group {i} does not match this run's")
        params.update(zip(ids, g["params"]))
    for pid, entry in saved["state"].items():
        if pid not in params or not isinstance(entry, dict):
            raise _misfit(name, f"the optimiser state names parameter {_shown(pid)}, which this run has not")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[pid].shape:
                raise _misfit(name, f"the optimiser's {_shown(key)} of parameter {pid} is "
                                    f"{list(value.shape)}, the parameter {list(params[pid].shape)}")


def _check_scheduler(saved: dict, scheduler, name: str) -> None:
    want = scheduler.state_dict()
    for k, v in saved.items():
        if k not in want:
            raise _misfit(name, f"the schedule state has {_shown(k)}, which this run's schedule has not")
        same = (type(v) is type(want[k]) or (_is_number(v) and _is_number(want[k]))
                or (v is None or want[k] is None))
        if not same or (isinstance(v, list) and isinstance(want[k], list) and len(v) != len(want[k])):
            raise _misfit(name, f"the schedule's {_shown(k)} is {_shown(v, 40)}")


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
