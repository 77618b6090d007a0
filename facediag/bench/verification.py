"""bench verification: the standard pair sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ... as
.bin, pairs.txt or CSV) under the reference 10-fold protocol, with EdgeFace's published
accuracy beside ours where the set and the variant match.

Each image is embedded once per checkpoint (and its mirror image once, from the same
decode) through the project's one engine, :class:`facediag.embed.Embedder`, keyed by image
content, so the cache serves a second run and every set that shares images. The per-pair
score is the reference's: embedding(img) + embedding(flip(img)), L2-normalised, squared L2
distance; the protocol itself is :func:`facediag.metrics.kfold.reference_kfold`.

Low resolution on the same pairs (the gallery–probe situation: HR vs very low resolution):
at each size the second image of every pair (or both: ``degrade_side``) is degraded exactly as
facediag makes every synthetic probe (:func:`facediag.data.degradation.degrade`, bicubic = area
downsampling or realistic, then the DSR stage back to 112: bicubic, and the ``--dsr`` model when
one is given), each degraded view computed once for all checkpoints and embedded once per
checkpoint under the key of that degradation, size and path. With a DSR
model, DSR and bicubic are compared pair by pair (exact McNemar) on each pair's decision at
its own test fold's threshold.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from facediag.bench.common import checkpoint_labels, environment, load_models, parse_resolutions
from facediag.data.degradation import MODES as DEGRADE_MODES
from facediag.data.degradation import degrade as degrade_image
from facediag.data.degradation import describe as describe_degradation
from facediag.data.degradation import key_token
from facediag.data.images import DecodeError
from facediag.device import resolve_device
from facediag.embed import Item, build_embedder, degraded_key, open_cache, super_resolve
from facediag.errors import FacediagError
from facediag.metrics.kfold import DEFAULT_FAR_TARGET, DEFAULT_FOLDS, reference_kfold
from facediag.metrics.significance import mcnemar_exact
from facediag.metrics.verdict import BETTER, WORSE
from facediag.metrics.verdict import verdict as change_verdict
from facediag.metrics.verification import verification_metrics
from facediag.models.dsr import load_dsr
from facediag.models.loaded import preset_of
from facediag.models.presets import EDGEFACE
from facediag.protocols.pairs import load_pair_set
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

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
DEGRADE_SIDES = ("second", "both")  # which image of each pair a low resolution applies to


def protocol_text(flip: bool, folds_from_file: bool = False, degrade: str | None = None,
                  mode: str = "bicubic") -> str:
    """The protocol, as every report states it (``degrade``: the side, None when every row is HR;
    ``mode``: how the images are degraded, facediag.data.degradation)."""
    folds = ("the set's own folds" if folds_from_file else
             f"{DEFAULT_FOLDS}-fold, consecutive folds (not shuffled)")
    text = (f"{folds}; ± is the std over folds (ddof=0, as the reference); "
            f"flip {'on (embedding of the image + of its mirror image, summed)' if flip else 'off'}; "
            "L2-normalised, squared L2 distance, thresholds 0–4 step 0.01, each fold's the first "
            "with the best accuracy on the other folds; VAL@FAR=1e-3 per fold as the reference")
    if degrade is not None:
        which = "both images" if degrade == "both" else "the second image (HR vs low resolution)"
        how = ("area-downsampled" if mode == "bicubic" else
               f"degraded by the {mode} chain (blur, downsampling, noise, JPEG: settings.degradation)")
        text += (f"; low resolutions: {which} of every pair {how} to each size, then brought "
                 "back to 112 by the upsampling path (bicubic or the DSR model)")
    return text


def resolve_flip(flip: bool | None, presets: Sequence = (EDGEFACE,)) -> bool:
    """None: the models' preset's (whether their published pair figures use flip-sum); one report
    has one protocol, so models whose cards disagree need the flag."""
    if flip is not None:
        return bool(flip)
    chosen = {p.flip for p in presets}
    if len(chosen) > 1:
        raise FacediagError("the checkpoints' model cards disagree on flip: bench them apart, or give --no-flip")
    return chosen.pop() if chosen else EDGEFACE.flip


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


class DegradedImages:
    """Some images of a set at one low resolution through one upsampling path, as facediag makes
    every synthetic probe (Session, bench accuracy): :func:`facediag.data.degradation.degrade`
    (``mode``: bicubic = area, or realistic), then the DSR stage (:func:`facediag.embed.super_resolve`)
    back to 112. Computed on the first pixels asked for, once for every checkpoint: never when the
    cache holds every view."""

    def __init__(self, pset, indices: Sequence[int], size: int, dsr, device, *, batch_size: int,
                 progress: bool, mode: str = "bicubic"):
        self.pset, self.size, self.dsr, self.device, self.mode = pset, size, dsr, device, mode
        self.indices = list(indices)
        # one degraded view per distinct content (a set may hold one image many times over)
        slot: dict[str, int] = {}
        self._row: dict[int, int] = {}
        self._sources: list[int] = []
        for i in self.indices:
            j = slot.setdefault(pset.images[i].key, len(self._sources))
            if j == len(self._sources):
                self._sources.append(i)
            self._row[i] = j
        self.batch_size, self.progress = batch_size, progress
        self._out: tuple[torch.Tensor, dict[int, str]] | None = None
        self._lock = threading.Lock()

    def key(self, i: int) -> str:
        """Image i's cache key: its content digest, the degradation and size, and the path (the DSR's fingerprint)."""
        return degraded_key(self.dsr.fingerprint, key_token(self.mode, self.size),
                            self.pset.images[i].key.partition(":")[2])

    def pixels(self, i: int) -> torch.Tensor:
        with self._lock:
            if self._out is None:
                loaders = [partial(_degraded, self.pset.images[k].load, self.size, self.mode) for k in self._sources]
                self._out = super_resolve(
                    loaders, self.dsr, self.device, batch_size=self.batch_size, progress=self.progress,
                    description=f"degrading {self.pset.name} to {self.size} px ({self.dsr.name})")
        out, failures = self._out
        j = self._row[i]
        if j in failures:
            raise DecodeError(failures[j].removeprefix("unreadable: "))
        return out[j].float()


def _degraded(load, size: int, mode: str) -> torch.Tensor:
    return degrade_image(load(), size, mode)


def _view_items(sources: Sequence[tuple[str, Any]], flip: bool, capacity: int):
    """(key, load) per image -> the engine's Items: the image, and its mirror image when ``flip``."""
    shared = _SharedDecode(capacity)
    items = []
    for i, (key, load) in enumerate(sources):
        items.append(Item(key, _view(shared, i, load, False)))
        if flip:
            items.append(Item("hflip:" + key.partition(":")[2], _view(shared, i, load, True)))
    return items


def _view(shared: _SharedDecode, index: int, load, mirrored: bool):
    def view() -> torch.Tensor:
        x = shared.pixels(index, load)
        return torch.flip(x, dims=[-1]) if mirrored else x

    return view


@dataclass(frozen=True, eq=False)
class Embedded:
    """The images of a set as the protocol uses them, one row per distinct image (by content key):
    memory grows with the distinct images, not with the pairs (100,000 pairs of one image are one row)."""

    table: np.ndarray           # float64 [U, D] embedding(img) [+ embedding(flip(img))], before normalising
    norms: np.ndarray           # float64 [U, views] raw norm of each view (NaN: unreadable)
    row: np.ndarray             # int64 [M] table row of each image of the set; -1: not asked for
    failed: dict[int, str]      # {table row: why unreadable}

    def unreadable(self) -> dict[int, str]:
        """{image index: why} of the set's images that could not be read."""
        if not self.failed:
            return {}
        rows = np.fromiter(self.failed, dtype=np.int64)
        return {int(i): self.failed[int(self.row[i])] for i in np.flatnonzero(np.isin(self.row, rows))}

    def expanded(self) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Per image of the set (summed [M, D], norms [M, views], {image: why}); NaN rows where
        not asked for. For a few thousand images at a time (bench ijb's chunks), not for pair sets."""
        summed = np.full((len(self.row), self.table.shape[1]), np.nan)
        norms = np.full((len(self.row), self.norms.shape[1]), np.nan)
        asked = self.row >= 0
        summed[asked], norms[asked] = self.table[self.row[asked]], self.norms[self.row[asked]]
        return summed, norms, self.unreadable()


def pair_embeddings(embedder, pset, flip: bool = True, *, indices: Sequence[int] | None = None,
                    degraded: DegradedImages | None = None) -> Embedded:
    """The images of ``pset`` (``indices``, default all; ``degraded``: at its low resolution, else
    HR) as the protocol uses them, each distinct content embedded once (:class:`Embedded`)."""
    indices = np.arange(len(pset.images)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    views = 2 if flip else 1
    slot: dict[str, int] = {}
    inverse = np.empty(len(indices), dtype=np.int64)
    sources, names = [], []
    for j, i in enumerate(indices.tolist()):
        key = degraded.key(i) if degraded is not None else pset.images[i].key
        u = slot.setdefault(key, len(sources))
        if u == len(sources):
            sources.append((key, partial(degraded.pixels, i) if degraded is not None else pset.images[i].load))
            names.append(pset.images[i].name)
        inverse[j] = u
    items = _view_items(sources, flip, capacity=4 * embedder.batch_size)
    at = f" at {degraded.size} px ({degraded.dsr.name})" if degraded is not None else ""
    raw, failures = embedder.embed(items, f"embedding {pset.name}{at} ({len(sources)} distinct images × {views} views)")
    raw = raw.reshape(len(sources), views, -1).astype(np.float64)
    check_finite(raw, failures, views, names, pset.name)
    row = np.full(len(pset.images), -1, dtype=np.int64)
    row[indices] = inverse
    # embedding(img) + embedding(flip(img)), before normalising
    return Embedded(raw.sum(axis=1), np.linalg.norm(raw, axis=2), row,
                    {j // views: why for j, why in failures.items()})


def check_finite(raw: np.ndarray, failures: dict[int, str], views: int, names: Sequence[str], set_name: str) -> None:
    """The model's fault, said as such: an image that was read but whose embedding holds NaN or Inf
    (weights that overflow, a model card whose std is ~0) refuses the bench in one line, rather
    than leaving its pairs out as if the image were unreadable."""
    read = np.ones(len(raw), dtype=bool)
    read[[j // views for j in failures]] = False
    bad = np.flatnonzero(read & ~np.isfinite(raw).all(axis=(1, 2)))
    if len(bad):
        raise FacediagError(f"{set_name}: the model returned NaN or Inf for {len(bad)} of {int(read.sum())} readable "
                            f"images (first: {names[int(bad[0])][:60]}): a fault of the model (its weights, or its "
                            "card's mean/std), not of the images")


PAIR_CHUNK = 8192  # pairs whose two rows are gathered at a time (two [chunk, D] float64 gathers)


def pair_distances(first: Embedded, second: Embedded, a: np.ndarray, b: np.ndarray, *,
                   chunk: int = PAIR_CHUNK) -> np.ndarray:
    """Squared L2 distance [N] between the unit embeddings of image ``a[k]`` (in ``first``) and
    ``b[k]`` (in ``second``), a chunk of pairs at a time; NaN where either is unreadable or not asked for."""
    u1 = _unit(first.table)
    u2 = u1 if second is first else _unit(second.table)
    ra, rb = first.row[a], second.row[b]
    ok = (ra >= 0) & (rb >= 0)
    dist = np.full(len(ra), np.nan)
    for s in range(0, len(ra), chunk):
        m = ok[s:s + chunk]
        diff = u1[ra[s:s + chunk][m]] - u2[rb[s:s + chunk][m]]
        dist[s:s + chunk][m] = np.sum(diff * diff, axis=1)
    return dist


def _xnorm(parts) -> float | None:
    """XNorm: the mean raw norm over every view of every (image index) asked, each distinct image
    counted as often as the set holds it. ``parts``: (Embedded, image indices)."""
    total, n = 0.0, 0
    for emb, images in parts:
        rows = emb.row[images]
        counts = np.bincount(rows[rows >= 0], minlength=len(emb.table))
        ok = np.isfinite(emb.norms).all(axis=1) & (counts > 0)
        total += float(np.dot(emb.norms[ok].sum(axis=1), counts[ok]))
        n += int(counts[ok].sum()) * emb.norms.shape[1]
    return total / n if n else None


def _unit(summed: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN rows (unreadable) stay NaN
        return summed / np.linalg.norm(summed, axis=1, keepdims=True)


def set_row(pset, first: Embedded, second: Embedded | None = None,
            fars: Sequence[float] = DEFAULT_FARS) -> tuple[dict[str, Any], np.ndarray]:
    """The protocol's numbers for one (set, checkpoint, resolution, path), and each pair's
    decision at its test fold's threshold ([N] float: 1 right, 0 wrong, NaN left out).

    ``first`` and ``second``: :func:`pair_embeddings` results for the first and the second
    image of each pair (``second`` None: the same as ``first``)."""
    second = first if second is None else second
    dist = pair_distances(first, second, pset.first, pset.second)
    keep = np.isfinite(dist)
    if keep.sum() < DEFAULT_FOLDS:
        raise FacediagError(f"{pset.source.name}: only {int(keep.sum())} pairs with readable images")
    issame = pset.issame[keep]
    folds = None if pset.fold_ids is None else pset.fold_ids[keep]
    kf = reference_kfold(dist[keep], issame, fold_ids=folds, far_target=DEFAULT_FAR_TARGET)
    if second is first:  # every image and view of the set
        xnorm = _xnorm([(first, np.arange(len(first.row)))])
    else:
        xnorm = _xnorm([(first, np.unique(pset.first)), (second, np.unique(pset.second))])
    unreadable = {**first.unreadable(), **second.unreadable()}
    row: dict[str, Any] = {
        "set": pset.name, "accuracy": kf.accuracy_mean, "accuracy_std": kf.accuracy_std,
        "fold_accuracies": kf.fold_accuracies.tolist(), "fold_thresholds": kf.fold_thresholds.tolist(),
        "folds": kf.folds, "val_at_far": _finite(kf.val_mean), "val_std": _finite(kf.val_std),
        "val_far_achieved": _finite(kf.far_mean), "val_far_target": kf.far_target,
        "n_pairs": int(keep.sum()), "n_genuine": kf.n_genuine, "n_impostor": kf.n_impostor,
        "xnorm": xnorm,
        "dropped_pairs": int((~keep).sum()),
        "unreadable": [f"{pset.images[i].name}: {why}" for i, why in sorted(unreadable.items())][:20],
        "n_unreadable": len(unreadable),
    }
    if kf.val_unsupported:  # the number is kept (the reference reports it) and flagged
        row["val_unsupported"] = kf.val_unsupported
    cosine = 1.0 - dist[keep] / 2.0  # the same pairs as scores (accept when cosine >= t)
    if issame.any() and (~issame).any():
        ver = verification_metrics(cosine[issame], cosine[~issame], fars=fars)
        row.update(auc=ver.auc, eer=ver.eer,
                   tar_at_far={f"{p.far:g}": p.tar for p in ver.tar_at_far},
                   tar_unsupported={f"{p.far:g}": p.reason for p in ver.tar_at_far if not p.supported})
    correct = np.full(pset.n_pairs, np.nan)
    correct[keep] = kf.pair_correct
    return row, correct


def compare_paths(correct_dsr: np.ndarray, correct_bicubic: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """DSR vs bicubic on the same pairs: pooled accuracy of each pair's fold decision and exact
    McNemar (b01 = bicubic wrong, DSR right), over the pairs both paths could read."""
    both = np.isfinite(correct_dsr) & np.isfinite(correct_bicubic)
    if not both.any():
        raise FacediagError("DSR and bicubic share no readable pair to compare")
    c_dsr, c_bic = correct_dsr[both].astype(bool), correct_bicubic[both].astype(bool)
    mc = mcnemar_exact(c_bic, c_dsr)
    delta = float(c_dsr.mean() - c_bic.mean())
    significant = mc["p_value"] < alpha
    verdict = {BETTER: "DSR helps", WORSE: "DSR hurts"}.get(
        change_verdict(delta, significant, higher_is_better=True), "no significant difference")
    return {"accuracy_dsr": float(c_dsr.mean()), "accuracy_bicubic": float(c_bic.mean()), "delta": delta,
            "mcnemar": mc, "n_pairs": int(both.sum()), "significant": bool(significant), "verdict": verdict}


def _finite(x: float):
    return float(x) if np.isfinite(x) else None


def published_figure(variant: str, name: str) -> float | None:
    """The published accuracy (%) of this variant on this set, or None."""
    return PUBLISHED.get(variant, {}).get(name)


def bench_verification(checkpoints: Sequence, pair_files: Sequence, *, images_root: str | Path | None = None,
                       flip: bool | None = None, resolutions: str | Sequence = ("hr",),
                       degrade_side: str = "second", degrade: str = "bicubic",
                       dsr: str | None = None, dsr_weights: str | Path | None = None, alpha: float = 0.05,
                       labels: Sequence[str] | None = None, arch: str | None = None,
                       cards: Sequence | None = None, device: str = "auto", batch_size: int = 64,
                       cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
                       allow_outside_root: bool = False,
                       fars: Sequence[float] = DEFAULT_FARS, command: str | None = None) -> BenchReport:
    """Sets × resolutions × checkpoints under the reference 10-fold protocol.

    ``checkpoints``: weights paths or loaded models (LoadedModel). ``pair_files``: .bin, pairs.txt
    or .csv paths (``images_root`` for pairs.txt and CSV).
    ``flip``: None takes the model preset's (a model card's, else EdgeFace's); ``cards``: one model
    card per checkpoint (None: the card beside each, if any). ``resolutions``: sizes in pixels and/or "hr"
    ("hr,32,16"); a size degrades the second image of every pair (``degrade_side="both"``: both)
    by ``degrade`` ("bicubic": area downsampling, or "realistic": facediag.data.degradation), brought
    back through bicubic and, with ``dsr`` (as ``bench accuracy --dsr``), through the DSR model too.

    Example::

        report = bench_verification(["edgeface_xxs.pt"], ["lfw.bin", "agedb_30.bin"], resolutions="hr,16")
        report.rows_where(set="lfw", resolution=16)[0]["accuracy"]
    """
    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    if not pair_files:
        raise FacediagError("give at least one pair set (--pairs lfw.bin, pairs.txt or pairs.csv)")
    resolutions = sorted(parse_resolutions(resolutions), key=lambda r: -(r or 113))  # HR first, then down
    low = [r for r in resolutions if r is not None]
    _check_degradation(degrade_side, degrade, dsr, dsr_weights, low)
    names = checkpoint_labels(checkpoints, labels)
    sets = read_pair_sets(pair_files, images_root, allow_outside_root)  # before any model is loaded
    dev = resolve_device(device)
    paths = {"bicubic": load_dsr(None)}  # path -> the DSR stage that brings a low resolution back to 112
    if dsr not in (None, "bicubic"):
        paths["dsr"] = load_dsr(dsr, dsr_weights, device=dev)
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    flip = resolve_flip(flip, [preset_of(m) for m in models.values()])
    cache = open_cache(cache_dir, use_cache)
    embedders = {label: build_embedder(loaded, dev, cache=cache, batch_size=batch_size, progress=progress)
                 for label, loaded in models.items()}
    run = _Run(embedders, {label: m.variant for label, m in models.items()}, paths, flip, degrade_side, fars, alpha,
               dev, batch_size, progress, degrade)
    rows, comparisons = [], []
    for pset in sets:
        set_rows, set_comparisons = run.set_rows(pset, resolutions)
        rows += set_rows
        comparisons += set_comparisons
    notes = _notes(rows)  # in the order measured: set by set
    order = {label: i for i, label in enumerate(names)}  # one checkpoint's rows together
    rows.sort(key=lambda r: order[r["checkpoint"]])
    settings = {"flip": flip, "folds": DEFAULT_FOLDS, "fars": list(fars), "val_far_target": DEFAULT_FAR_TARGET,
                "resolutions": [_res_name(r) for r in resolutions], "degrade_side": degrade_side if low else None,
                "degrade": degrade if low else None, "degradation": describe_degradation(degrade) if low else None,
                "dsr": paths["dsr"].name if "dsr" in paths else None, "alpha": alpha,
                "batch_size": batch_size, "device": str(dev),
                "model_forward_batches": {label: e.forward_calls for label, e in embedders.items()},
                "images_embedded": {label: e.images_embedded for label, e in embedders.items()},
                "published_source": PUBLISHED_SOURCE}
    dataset = {"protocol": protocol_text(flip, any(s.fold_ids is not None for s in sets),
                                         degrade_side if low else None, degrade),
               "sets": [s.describe() for s in sets]}
    return BenchReport(kind="verification", command=command or "facediag.bench.bench_verification(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()},
                       settings=settings, rows=rows, comparisons=comparisons, dataset=dataset, notes=notes,
                       environment=environment(dev))


def _check_degradation(side: str, degrade: str, dsr: str | None, dsr_weights, low: Sequence[int]) -> None:
    if side not in DEGRADE_SIDES:
        raise FacediagError(f"degrade_side {side!r}: give one of {', '.join(DEGRADE_SIDES)}")
    if degrade in DEGRADE_SIDES:
        raise FacediagError(f"degrade={degrade!r} is a side of the pair: that is degrade_side now (--degrade-side); "
                            f"degrade is how images are degraded: {' or '.join(DEGRADE_MODES)}")
    if degrade not in DEGRADE_MODES:
        raise FacediagError(f"degrade {degrade!r}: give one of {', '.join(DEGRADE_MODES)}")
    if dsr_weights is not None and dsr in (None, "bicubic"):
        raise FacediagError("DSR weights given without a DSR model (--dsr module:factory)")
    if dsr not in (None, "bicubic") and not low:
        raise FacediagError("--dsr needs a low resolution to super-resolve (e.g. --resolutions hr,16)")


def read_pair_sets(pair_files: Sequence, images_root, allow_outside_root: bool) -> list:
    """Every pair set read and validated (one line for a bad one); two sets may not share a name."""
    sets = [load_pair_set(p, images_root, allow_outside_root=allow_outside_root) for p in pair_files]
    seen: dict[str, Path] = {}
    for s in sets:
        if s.name in seen:
            raise FacediagError(f"two pair sets are named {s.name!r} ({seen[s.name]}, {s.source}); rename one")
        seen[s.name] = s.source
    return sets


@dataclass
class _Run:
    """What every set is measured with: one Embedder per checkpoint (label -> its variant), the
    upsampling paths (name -> DSR stage), and the protocol's switches."""

    embedders: dict
    variants: dict[str, str]
    paths: dict
    flip: bool
    side: str  # which image of each pair is degraded: "second" or "both"
    fars: Sequence[float]
    alpha: float
    device: torch.device
    batch_size: int
    progress: bool
    mode: str = "bicubic"  # how: facediag.data.degradation

    def set_rows(self, pset, resolutions: Sequence[int | None]) -> tuple[list[dict], list[dict]]:
        """One set's rows at every resolution, and its DSR-vs-bicubic comparisons."""
        hr: dict[str, Embedded] = {}  # checkpoint -> HR embeddings, shared by every resolution

        def hr_of(label: str) -> Embedded:
            if label not in hr:
                hr[label] = pair_embeddings(self.embedders[label], pset, self.flip)
            return hr[label]

        rows, comparisons = [], []
        for res in resolutions:
            if res is None:
                for label in self.embedders:
                    row, _ = set_row(pset, hr_of(label), fars=self.fars)
                    rows.append(_row(label, self.variants[label], res, "hr", "none (HR)", row))
            else:
                low_rows, low_comparisons = self._low_resolution_rows(pset, res, hr_of)
                rows += low_rows
                comparisons += low_comparisons
        return rows, comparisons

    def _low_resolution_rows(self, pset, res: int, hr_of) -> tuple[list[dict], list[dict]]:
        """Each checkpoint through each upsampling path at ``res``, and DSR vs bicubic pair by pair."""
        degraded = range(len(pset.images)) if self.side == "both" else np.unique(pset.second).tolist()
        rows, correct = [], {}  # (path, checkpoint) -> each pair's decision
        for path, stage in self.paths.items():
            # dropped after this path: at most one set's worth held
            view = DegradedImages(pset, degraded, res, stage, self.device, batch_size=self.batch_size,
                                  progress=self.progress, mode=self.mode)
            for label in self.embedders:
                low_emb = pair_embeddings(self.embedders[label], pset, self.flip, indices=degraded, degraded=view)
                first = low_emb if self.side == "both" else hr_of(label)
                row, correct[path, label] = set_row(pset, first, low_emb, fars=self.fars)
                rows.append(_row(label, self.variants[label], res, path, stage.name, row))
        comparisons = [{"set": pset.name, "resolution": res, "checkpoint": label, "dsr": self.paths["dsr"].name,
                        **compare_paths(correct["dsr", label], correct["bicubic", label], self.alpha)}
                       for label in self.embedders if ("dsr", label) in correct]
        return rows, comparisons


def _notes(rows: list[dict]) -> list[str]:
    """Rows that left pairs out, and a word when no published figure applies."""
    notes = [f"{row['set']} [{row['checkpoint']}, {_res_name(row['resolution'])}]: "
             f"{row['dropped_pairs']} pair(s) left out, {row['n_unreadable']} image(s) unreadable "
             "(listed in the JSON); the accuracy is not comparable with a published one"
             for row in rows if row["dropped_pairs"]]
    if not any("published" in r for r in rows):
        notes.append("no published figure applies: EdgeFace's are filed under lfw, calfw, cplfw, cfp_fp and "
                     "agedb_30 (the pair file's name) for edgeface_xxs, xs_gamma_06, s_gamma_05 and base")
    return notes


def _res_name(res) -> str | int:
    return "hr" if res is None else res


def _row(label: str, variant: str, res, path: str, upsampling: str, numbers: dict) -> dict[str, Any]:
    row = {"checkpoint": label, "variant": variant, "resolution": _res_name(res), "path": path,
           "upsampling": upsampling, **numbers}
    paper = published_figure(variant, numbers["set"]) if res is None else None  # published: HR pairs only
    if paper is not None:
        row["published"] = paper / 100.0
        row["published_delta_pp"] = row["accuracy"] * 100.0 - paper
    return row


__all__ = ["DEGRADE_SIDES", "PUBLISHED", "DegradedImages", "Embedded", "bench_verification", "pair_distances",
           "check_finite", "compare_paths", "pair_embeddings", "protocol_text", "published_figure", "read_pair_sets",
           "resolve_flip", "set_row"]
