"""bench verification: the standard pair sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ... as
.bin, pairs.txt or CSV) under the reference 10-fold protocol, with EdgeFace's published
accuracy beside ours where the set and the variant match.

Each image is embedded once per checkpoint (and its mirror image once, from the same
decode) through the project's one engine, :class:`facediag.embed.Embedder`, keyed by image
content, so the cache serves a second run and every set that shares images. The per-pair
score is the reference's: embedding(img) + embedding(flip(img)), L2-normalised, squared L2
distance; the protocol itself is :func:`facediag.metrics.kfold.reference_kfold`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from facediag.errors import FacediagError
from facediag.metrics.kfold import DEFAULT_FAR_TARGET, DEFAULT_FOLDS, reference_kfold
from facediag.metrics.verification import verification_metrics
from facediag.results import BenchReport

# EdgeFace's published 10-fold accuracies (%), from the EdgeFace README's table; the paper's
# own tables differ from it by up to ~0.4 pp on some sets. No figures are published for _q.
PUBLISHED = {
    "edgeface_base": {"lfw": 99.83, "calfw": 96.07, "cplfw": 93.75, "cfp_fp": 97.01, "agedb_30": 97.60},
    "edgeface_s_gamma_05": {"lfw": 99.78, "calfw": 95.55, "cplfw": 92.48, "cfp_fp": 95.74, "agedb_30": 97.03},
    "edgeface_xs_gamma_06": {"lfw": 99.73, "calfw": 95.28, "cplfw": 91.58, "cfp_fp": 94.71, "agedb_30": 96.08},
    "edgeface_xxs": {"lfw": 99.57, "calfw": 94.83, "cplfw": 90.27, "cfp_fp": 93.63, "agedb_30": 94.92},
}
PUBLISHED_SOURCE = "EdgeFace README (otroshi/edgeface), 10-fold accuracy in %"
DEFAULT_FARS = (1e-1, 1e-2, 1e-3, 1e-4)


def protocol_text(flip: bool, folds_from_file: bool = False) -> str:
    """The protocol, as every report states it."""
    folds = ("the set's own folds" if folds_from_file else
             f"{DEFAULT_FOLDS}-fold, consecutive folds (not shuffled)")
    return (f"{folds}; ± is the std over folds (ddof=0, as the reference); "
            f"flip {'on (embedding of the image + of its mirror image, summed)' if flip else 'off'}; "
            "L2-normalised, squared L2 distance, thresholds 0–4 step 0.01, each fold's the first "
            "with the best accuracy on the other folds; VAL@FAR=1e-3 per fold as the reference")


class _SharedDecode:
    """The image and its mirror are two views of one decode: the first view decoded keeps the
    pixels for the second. Bounded (views of one image are neighbours in the engine's order),
    so a view served from the cache never leaves pixels behind for long."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._kept: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def pixels(self, index: int, load) -> torch.Tensor:
        with self._lock:
            kept = self._kept.pop(index, None)
        if kept is not None:
            return kept
        x = load()
        with self._lock:
            self._kept[index] = x
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return x


def _view_items(pset, flip: bool, capacity: int):
    from facediag.embed import Item

    shared = _SharedDecode(capacity)
    items = []
    for i, image in enumerate(pset.images):
        items.append(Item(image.key, _view(shared, i, image.load, False)))
        if flip:
            items.append(Item("hflip:" + image.key.partition(":")[2], _view(shared, i, image.load, True)))
    return items


def _view(shared: _SharedDecode, index: int, load, mirrored: bool):
    def view() -> torch.Tensor:
        x = shared.pixels(index, load)
        return torch.flip(x, dims=[-1]) if mirrored else x

    return view


def pair_embeddings(embedder, pset, flip: bool = True):
    """(per-image embedding as the protocol uses it [M, D] (NaN rows: unreadable), the raw
    norms of every view embedded [M·views], {image index: why unreadable})."""
    views = 2 if flip else 1
    items = _view_items(pset, flip, capacity=4 * embedder.batch_size)
    raw, failures = embedder.embed(items, f"embedding {pset.name} ({len(pset.images)} images × {views} views)")
    raw = raw.reshape(len(pset.images), views, -1).astype(np.float64)
    summed = raw.sum(axis=1)  # embedding(img) + embedding(flip(img)), before normalising
    norms = np.linalg.norm(raw, axis=2).ravel()
    unreadable = {j // views: why for j, why in failures.items()}
    return summed, norms[np.isfinite(norms)], unreadable


def set_row(pset, summed: np.ndarray, norms: np.ndarray, unreadable: dict, fars: Sequence[float]) -> dict[str, Any]:
    """The protocol's numbers for one (set, checkpoint)."""
    unit = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    diff = unit[pset.first] - unit[pset.second]
    dist = np.sum(diff * diff, axis=1)
    keep = np.isfinite(dist)
    if keep.sum() < DEFAULT_FOLDS:
        raise FacediagError(f"{pset.source.name}: only {int(keep.sum())} pairs with readable images")
    issame = pset.issame[keep]
    folds = None if pset.fold_ids is None else pset.fold_ids[keep]
    kf = reference_kfold(dist[keep], issame, fold_ids=folds, far_target=DEFAULT_FAR_TARGET)
    row: dict[str, Any] = {
        "set": pset.name, "accuracy": kf.accuracy_mean, "accuracy_std": kf.accuracy_std,
        "fold_accuracies": kf.fold_accuracies.tolist(), "fold_thresholds": kf.fold_thresholds.tolist(),
        "folds": kf.folds, "val_at_far": _finite(kf.val_mean), "val_std": _finite(kf.val_std),
        "val_far_achieved": _finite(kf.far_mean), "val_far_target": kf.far_target,
        "n_pairs": int(keep.sum()), "n_genuine": kf.n_genuine, "n_impostor": kf.n_impostor,
        "xnorm": float(norms.mean()) if norms.size else None,
        "dropped_pairs": int((~keep).sum()),
        "unreadable": [f"{pset.images[i].name}: {why}" for i, why in sorted(unreadable.items())][:20],
        "n_unreadable": len(unreadable),
    }
    cosine = 1.0 - dist[keep] / 2.0  # the same pairs as scores (accept when cosine >= t)
    if issame.any() and (~issame).any():
        ver = verification_metrics(cosine[issame], cosine[~issame], fars=fars)
        row.update(auc=ver.auc, eer=ver.eer,
                   tar_at_far={f"{p.far:g}": p.tar for p in ver.tar_at_far},
                   tar_unsupported={f"{p.far:g}": p.reason for p in ver.tar_at_far if not p.supported})
    return row


def _finite(x: float):
    return float(x) if np.isfinite(x) else None


def published_figure(variant: str, name: str) -> float | None:
    """The published accuracy (%) of this variant on this set, or None."""
    return PUBLISHED.get(variant, {}).get(name)


def bench_verification(checkpoints: Sequence, pair_files: Sequence, *, images_root: str | Path | None = None,
                       flip: bool = True, labels: Sequence[str] | None = None, arch: str | None = None,
                       device: str = "auto", batch_size: int = 64, cache_dir: str | Path | None = None,
                       use_cache: bool = True, progress: bool = True, allow_outside_root: bool = False,
                       fars: Sequence[float] = DEFAULT_FARS, command: str | None = None) -> BenchReport:
    """Sets × checkpoints under the reference 10-fold protocol.

    ``pair_files``: .bin, pairs.txt or .csv paths (``images_root`` for pairs.txt and CSV).

    Example::

        report = bench_verification(["edgeface_xxs.pt"], ["lfw.bin", "agedb_30.bin"])
        report.rows_where(set="lfw")[0]["accuracy"]
    """
    from facediag.bench.accuracy import _environment, _labels, _load
    from facediag.cache import EmbeddingCache, default_cache_dir
    from facediag.device import resolve_device
    from facediag.embed import Embedder
    from facediag.protocols.pairs import load_pair_set
    from facediag.runner import checkpoint_info

    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    if not pair_files:
        raise FacediagError("give at least one pair set (--pairs lfw.bin, pairs.txt or pairs.csv)")
    names = _labels(checkpoints, labels)
    # Every set is read and validated before any model is loaded or any image embedded.
    sets = [load_pair_set(p, images_root, allow_outside_root=allow_outside_root) for p in pair_files]
    seen: dict[str, Path] = {}
    for s in sets:
        if s.name in seen:
            raise FacediagError(f"two pair sets are named {s.name!r} ({seen[s.name]}, {s.source}); rename one")
        seen[s.name] = s.source
    models = dict(zip(names, _load(checkpoints, arch)))
    dev = resolve_device(device)
    cache = EmbeddingCache(cache_dir or default_cache_dir()) if use_cache else None

    rows, notes = [], []
    calls = {}
    for label, loaded in models.items():
        run_on = torch.device("cpu") if str(loaded.variant).endswith("_q") else dev  # int8 kernels: CPU only
        embedder = Embedder(loaded.model.to(run_on).eval(), run_on, fingerprint=loaded.sha256, cache=cache,
                            batch_size=batch_size, progress=progress)
        for pset in sets:
            summed, norms, unreadable = pair_embeddings(embedder, pset, flip)
            row = {"checkpoint": label, "variant": loaded.variant,
                   **set_row(pset, summed, norms, unreadable, fars)}
            paper = published_figure(loaded.variant, pset.name)
            if paper is not None:
                row["published"] = paper / 100.0
                row["published_delta_pp"] = row["accuracy"] * 100.0 - paper
            rows.append(row)
            if row["dropped_pairs"]:
                notes.append(f"{pset.source.name} [{label}]: {row['dropped_pairs']} pair(s) left out, "
                             f"{row['n_unreadable']} image(s) unreadable (listed in the JSON); the accuracy "
                             "is not comparable with a published one")
        calls[label] = embedder.forward_calls
    matched = {(r["variant"], r["set"]) for r in rows if "published" in r}
    if not matched:
        notes.append("no published figure applies: EdgeFace's are filed under lfw, calfw, cplfw, cfp_fp and "
                     "agedb_30 (the pair file's name) for edgeface_xxs, xs_gamma_06, s_gamma_05 and base")
    settings = {"flip": flip, "folds": DEFAULT_FOLDS, "fars": list(fars), "val_far_target": DEFAULT_FAR_TARGET,
                "batch_size": batch_size, "device": str(dev), "model_forward_batches": calls,
                "published_source": PUBLISHED_SOURCE}
    dataset = {"protocol": protocol_text(flip, any(s.fold_ids is not None for s in sets)),
               "sets": [s.describe() for s in sets]}
    return BenchReport(kind="verification", command=command or "facediag.bench.bench_verification(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()},
                       settings=settings, rows=rows, dataset=dataset, notes=notes, environment=_environment(dev))


__all__ = ["PUBLISHED", "bench_verification", "pair_embeddings", "protocol_text", "published_figure", "set_row"]
