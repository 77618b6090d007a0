"""The run's record: one history row per epoch (epoch 0 = the starting model; its validation
numbers, diagnoses and flags are the Monitor's, train.validate), and the files that report them:
``<stem>.history.json``, the ``<out>.json`` sidecar and ``<stem>.curves.png``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from facediag.version import __version__
from facediag.io import atomic_save, atomic_write_text

SCHEMA_VERSION = 1  # of the sidecar


def severe(row: dict) -> bool:
    """The validation Monitor said stop at this epoch (a diagnosis or trend of its stop policy)."""
    return bool(row.get("should_stop"))


def best_row(history: list[dict], best_epoch: int | None) -> dict | None:
    return next((r for r in history if r["epoch"] == best_epoch), None)


def fmt(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


# ------------------------------------------------------------------ files
def build_sidecar(*, cfg, out_path: Path, best_sha256: str | None, variant: str,
            weights_sha256: str | None, data: dict, environment: dict, history: list[dict],
            best_epoch: int | None, stopped: bool, notes: list[str]) -> dict:
    """``<out>.json``: what the kept checkpoint is, how it was made and chosen."""
    return {
        "schema_version": SCHEMA_VERSION, "tool": "facediag", "version": __version__,
        "kind": "train-contrastive",
        "output": {"path": str(out_path), "sha256": best_sha256, "variant": variant,
                   "format": "state_dict (official EdgeFace keys, model.*)"},
        "input_weights": ({"path": str(cfg.weights), "sha256": weights_sha256}
                          if cfg.weights else None),
        "config": cfg.to_dict(),
        "data": data,
        "selection": "best validation gallery rank-1 (never paired similarity)",
        "best_epoch": best_epoch,
        "best_metrics": best_row(history, best_epoch),
        "baseline": history[0] if history else None,
        "stopped_early": stopped,
        "history": history,
        "environment": environment,
        "notes": notes,
    }


def write_report_files(paths: dict[str, Path], history: list[dict], best_epoch: int | None,
                       sidecar: dict, threshold: float) -> None:
    """History, sidecar (once a checkpoint is kept) and curves, each file atomic."""
    atomic_write_text(paths["history"], _json(history))
    if best_epoch is not None:
        atomic_write_text(paths["sidecar"], _json(sidecar))
    write_curves(history, paths["plot"], best_epoch, threshold)


def _json(x) -> str:
    return json.dumps(_jsonable(x), indent=2)


def _jsonable(x):
    # numpy scalars to Python numbers; NaN/inf (a metric with nothing to average) to null.
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_curves(history: list[dict], path: Path, best_epoch: int | None, threshold: float) -> Path:
    """Training curves (matplotlib Agg) written atomically: identification, similarities, loss."""
    # matplotlib: heavy, and only the curves need it
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
