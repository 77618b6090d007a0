"""bench scface: SCface's surveillance shots against its mugshots, per distance (1 = 4.20 m,
2 = 2.60 m, 3 = 1.00 m), per camera on request, and the gap between native and synthetic low
resolution.

Gallery: one template per person, the L2-normalised feature of the frontal mugshot. Probes: the
camera shots (:mod:`facediag.data.scface`), each searched against every mugshot by cosine:
closed-set rank-k, and verification over (probe, mugshot) pairs (genuine: the own mugshot;
impostor: every other) as TAR@FAR, AUC and EER, for each distance and all together. The median
native face size (the shorter side of the probe files) is given per distance.

The gap (issue 29, part 4): at each distance, the mugshots of the people shot there are degraded
synthetically to that distance's median native face size — ``bicubic`` (area downsampling, the
classic synthetic probe) and ``realistic`` (blur, downsampling, noise, JPEG:
:func:`facediag.data.degradation.degrade`) — brought back to 112 by bicubic interpolation and
searched against the same mugshot gallery; their rank-1 stands beside the native probes'. The
synthetic probe is a degraded copy of the gallery image itself, so the gap holds both what the
degradation leaves out and the change of photograph (pose, light, camera) of a real probe: the
number a validation on synthetically degraded copies would report, beside the real one.

Features as bench verification: embedding(img) [+ embedding(flip(img))] (flip from the model
preset; EdgeFace's: on), L2-normalised; channel order and normalisation from the preset or card.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facediag.bench.common import checkpoint_labels, environment, load_models
from facediag.bench.native import (
    FIT_TEXT, check_fit, embed_images, feature_text, file_image, load_stretched, native_quality,
)
from facediag.bench.verification import resolve_flip
from facediag.data.degradation import MODES, degrade, describe, key_token
from facediag.data.images import SIZE, load_face
from facediag.data.index import file_digest
from facediag.data.scface import CAMERAS, DISTANCES_M, SCface, find_scface, median_sizes
from facediag.device import resolve_device
from facediag.embed import build_embedder, degraded_key, open_cache
from facediag.errors import DataError, FacediagError
from facediag.metrics.edc import quality_section
from facediag.metrics.identification import closed_set_from, summarize
from facediag.metrics.verification import verification_metrics
from facediag.models.dsr import BicubicDSR
from facediag.models.loaded import preset_of
from facediag.protocols.pairs import PairImage
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

FARS = (1e-1, 1e-2, 1e-3, 1e-4)
RANKS = (1, 5, 10)
MIN_SYNTHETIC = 4     # the smallest size a mugshot is degraded to (a median below it is raised to it)
_BICUBIC = BicubicDSR()


def protocol_text(flip: bool, fit: str) -> str:
    return ("SCface: gallery = one frontal mugshot per person; probes = the five visible-light cameras' shots at "
            "distance 1 (4.20 m), 2 (2.60 m) and 3 (1.00 m); cosine; closed-set rank-k (the own mugshot strictly "
            "highest for rank 1: ties against the probe); TAR@FAR over (probe, mugshot) pairs, genuine = the own "
            f"mugshot, impostor = every other. Features: {feature_text(flip)}. Images: {FIT_TEXT[fit]}. Gap: each "
            "distance's mugshots degraded to its median native face size (bicubic = area downsampling; realistic "
            "= blur, downsampling, noise, JPEG), brought back to 112 by bicubic, searched against the same gallery")


def identification_figures(scores: np.ndarray, probe_subjects: np.ndarray, template_subjects: np.ndarray,
                           fars: Sequence[float] = FARS) -> tuple[dict[str, Any], Any]:
    """Closed-set rank-k and verification over (probe, template) pairs of one probe set: the row's
    numbers and the MatchSummary (per-probe rank and genuine score)."""
    m = summarize(scores, probe_subjects, template_subjects)
    closed = closed_set_from(m, probe_subjects, ranks=RANKS)
    impostor = scores[np.asarray(probe_subjects)[:, None] != np.asarray(template_subjects)[None, :]]
    row: dict[str, Any] = {**{f"rank{k}": v for k, v in closed.rank_accuracy.items()},
                           "n_probes": int(len(probe_subjects)), "n_gallery": int(len(template_subjects)),
                           "genuine_mean": float(np.mean(m.genuine)),
                           "impostor_mean": float(np.mean(impostor)) if impostor.size else None}
    if impostor.size:
        ver = verification_metrics(m.genuine, impostor, fars=fars)
        row.update(auc=ver.auc, eer=ver.eer, tar_at_far={f"{p.far:g}": p.tar for p in ver.tar_at_far},
                   tar_unsupported={f"{p.far:g}": p.reason for p in ver.tar_at_far if not p.supported})
    return row, m


def synthetic_image(path: Path, size: int, mode: str, fit: str) -> PairImage:
    """A mugshot degraded to ``size`` px (``mode``) and brought back to 112 by bicubic, keyed by the
    file's content, the fit, the degradation and the upsampling path."""
    digest = file_digest(path) + ("" if fit == "pad" else "+stretch112")
    hr = partial(load_face, path) if fit == "pad" else partial(load_stretched, path)

    def load():
        return _BICUBIC(degrade(hr(), size, mode)[None])[0]

    return PairImage(degraded_key(_BICUBIC.fingerprint, key_token(mode, size), digest), path.name, load)


def synthetic_size(median: float) -> int:
    """The size a mugshot is degraded to for a distance: its median native face size, rounded,
    within [MIN_SYNTHETIC, 112]."""
    return int(min(max(round(median), MIN_SYNTHETIC), SIZE))


class _Run:
    """One checkpoint over the SCface probes: native rows, per-camera rows, the gap."""

    def __init__(self, meta: SCface, embedder_for, *, flip: bool, fit: str, fars: Sequence[float]):
        self.meta, self.embedder_for, self.flip, self.fit, self.fars = meta, embedder_for, flip, fit, fars
        self.calls = 0
        subjects = np.array(list(meta.mugshots))
        gal = self._embed([file_image(p, p.name, fit) for p in meta.mugshots.values()], "SCface mugshots")
        if not gal.readable.any():
            raise DataError(f"{meta.root}: none of the {len(subjects)} mugshots could be read")
        self.subjects, self.templates = subjects[gal.readable], gal.unit[gal.readable].astype(np.float64)
        self.gallery_unreadable = [f"{list(meta.mugshots.values())[i].name}: {w}" for i, w in gal.unreadable.items()]
        probes = self._embed([file_image(p.path, p.path.name, fit) for p in meta.probes], "SCface camera shots")
        self.probe_subjects = np.array([p.subject for p in meta.probes])
        self.kept = probes.readable & np.isin(self.probe_subjects, self.subjects)
        self.probes = probes
        self.distance = np.array([p.distance for p in meta.probes])
        self.camera = np.array([p.camera for p in meta.probes])

    def _embed(self, images, name):
        out = embed_images(self.embedder_for, images, self.flip, name)
        self.calls += out.forward_batches
        return out

    def native(self, sel: np.ndarray) -> tuple[dict[str, Any], Any] | None:
        sel = sel & self.kept
        if not sel.any():
            return None
        scores = self.probes.unit[sel].astype(np.float64) @ self.templates.T
        return identification_figures(scores, self.probe_subjects[sel], self.subjects, self.fars)

    def synthetic(self, distance: int, size: int, mode: str) -> dict[str, Any] | None:
        """The mugshots of the people shot at ``distance`` (native probes kept), degraded to ``size``."""
        people = [s for s in self.subjects if (self.kept & (self.distance == distance)
                                              & (self.probe_subjects == s)).any()]
        if not people:
            return None
        images = [synthetic_image(self.meta.mugshots[s], size, mode, self.fit) for s in people]
        feats = self._embed(images, f"SCface mugshots at {size} px ({mode})")
        ok = feats.readable
        scores = feats.unit[ok].astype(np.float64) @ self.templates.T
        row, _ = identification_figures(scores, np.array(people)[ok], self.subjects, self.fars)
        return row

    def native_rows(self, head: dict, sizes: np.ndarray, blur: np.ndarray, medians: dict,
                    threshold: float) -> tuple[list[dict], dict]:
        """A row per distance and one of all distances (with by_quality); each distance's rank-1."""
        rows, rank1 = [], {}
        for d in [*DISTANCES_M, "all"]:
            got = self.native(np.ones(len(self.distance), bool) if d == "all" else self.distance == d)
            if got is None:
                continue
            row, m = got
            median = medians.get(d) if d != "all" else _median(sizes, np.ones(len(sizes), bool))
            full = {**head, "probes": "native", "degrade": None, **_where(d, "all"), "median_size": median, **row}
            if d == "all":
                full["by_quality"] = _quality(self, m, sizes, blur, threshold)
            else:
                rank1[d] = row["rank1"]
            rows.append(full)
        return rows, rank1

    def camera_rows(self, head: dict, sizes: np.ndarray) -> list[dict]:
        """A row per (camera, distance)."""
        rows = []
        for c in CAMERAS:
            for d in DISTANCES_M:
                sel = (self.distance == d) & (self.camera == c)
                got = self.native(sel)
                if got is not None:
                    rows.append({**head, "probes": "native", "degrade": None, **_where(d, c),
                                 "median_size": _median(sizes, sel), **got[0]})
        return rows

    def gap_rows(self, head: dict, medians: dict, native_rank1: dict) -> tuple[list[dict], list[dict]]:
        """The synthetic rows (each mode at each distance's median size) and the gap per distance."""
        rows, gaps = [], []
        for d, median in medians.items():
            if d not in native_rank1:
                continue
            size = synthetic_size(median)
            entry = {**head, **_where(d, "all"), "median_size": median, "size": size, "native_rank1": native_rank1[d]}
            for mode in MODES:
                row = self.synthetic(d, size, mode)
                if row is None:
                    continue
                rows.append({**head, "probes": "synthetic", "degrade": mode, **_where(d, "all"), "size": size,
                             "median_size": median, **row})
                entry[f"{mode}_rank1"] = row["rank1"]
                entry[f"gap_{mode}"] = row["rank1"] - native_rank1[d]
            gaps.append(entry)
        return rows, gaps


def _quality(run: _Run, m, sizes: np.ndarray, blur: np.ndarray, threshold: float) -> dict | None:
    """by_quality of the combined native row: probes whose original could be measured."""
    kept = run.kept
    s, b, n = sizes[kept], blur[kept], run.probes.norms[kept]
    known = np.isfinite(s) & np.isfinite(b) & np.isfinite(n)
    if not known.any():
        return None
    section = quality_section(sizes=s[known], blur=b[known], norms=n[known], correct=(m.ranks == 1)[known],
                              genuine=m.genuine[known], threshold=threshold)
    left = int((~known).sum())
    section["probes"] = (f"{int(known.sum())} camera shots of every distance (native files)"
                         + (f"; {left} whose original could not be measured left out" if left else ""))
    return section


def _where(distance, camera) -> dict[str, Any]:
    return {"distance": distance, "distance_m": DISTANCES_M.get(distance) if distance != "all" else None,
            "camera": camera}


def bench_scface(checkpoints: Sequence, root: str | Path, *, mugshots: str | Path | None = None,
                 surveillance: str | Path | None = None, per_camera: bool = False, gap: bool = True,
                 flip: bool | None = None, fit: str = "pad", fars: Sequence[float] = FARS,
                 labels: Sequence[str] | None = None, arch: str | None = None, cards: Sequence | None = None,
                 device: str = "auto", batch_size: int = 64, cache_dir: str | Path | None = None,
                 use_cache: bool = True, progress: bool = True, command: str | None = None) -> BenchReport:
    """SCface per distance (and camera), with the native-versus-synthetic gap, for each checkpoint.

    Parameters
    ----------
    checkpoints : sequence
        Checkpoint paths (or loaded models).
    root : str or Path
        The SCface folder (see :mod:`facediag.data.scface`).
    mugshots, surveillance : str or Path, optional
        Folders to read the mugshots / the camera shots from instead of anywhere under ``root``.
    per_camera : bool
        Also a row per (camera, distance).
    gap : bool
        Also the synthetic rows (bicubic and realistic degradation of the mugshots) and the gap.
    flip : bool, optional
        Add the mirror image's embedding (None: the model presets' protocol).
    fit : str
        ``pad`` (facediag's canvas) or ``stretch`` (resized to 112×112).

    Returns
    -------
    BenchReport
        Kind ``scface``; rows with ``probes`` "native" or "synthetic"; ``comparisons``: the gap per
        (checkpoint, distance).

    Example::

        report = bench_scface(["edgeface_xxs.pt"], "/data/SCface", per_camera=True)
        report.rows_where(probes="native", distance=1, camera="all")[0]["rank1"]
    """
    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    check_fit(fit)
    names = checkpoint_labels(checkpoints, labels)
    meta = find_scface(root, mugshots=mugshots, surveillance=surveillance)  # before any model loads
    sizes, blur = native_quality([p.path for p in meta.probes])
    distances = np.array([p.distance for p in meta.probes])
    measured = np.isfinite(sizes)
    medians = median_sizes(sizes[measured], distances[measured])
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    flip = resolve_flip(flip, [preset_of(m) for m in models.values()])
    dev = resolve_device(device)
    cache = open_cache(cache_dir, use_cache)

    rows, comparisons, notes, calls = [], [], [], {}
    for label, loaded in models.items():
        embedder_for = partial(build_embedder, loaded, dev, cache=cache, batch_size=batch_size, progress=progress)
        run = _Run(meta, embedder_for, flip=flip, fit=fit, fars=fars)
        head = {"checkpoint": label, "variant": loaded.variant}
        native, native_rank1 = run.native_rows(head, sizes, blur, medians, preset_of(loaded).threshold)
        rows += native
        if per_camera:
            rows += run.camera_rows(head, sizes)
        if gap:
            synthetic, gaps = run.gap_rows(head, medians, native_rank1)
            rows += synthetic
            comparisons += gaps
        calls[label] = run.calls
        dropped = int((~run.kept).sum())
        if dropped or run.gallery_unreadable:
            notes.append(f"[{label}] {len(run.gallery_unreadable)} mugshot(s) unreadable, {dropped} camera shot(s) "
                         "left out (unreadable, or their person's mugshot is)")
    if meta.left_out:
        notes.append(f"{len(meta.left_out)} camera shot(s) of {len({p.subject for p in meta.left_out})} person(s) "
                     "without a mugshot left out")
    if meta.merged_copies:
        notes.append(f"{meta.merged_copies} identical copies of files found in more than one folder counted once")
    settings = {"flip": flip, "fit": fit, "per_camera": per_camera, "gap": gap, "fars": list(fars),
                "ranks": list(RANKS), "distances_m": {str(k): v for k, v in DISTANCES_M.items()},
                "degradation": {mode: describe(mode) for mode in MODES} if gap else None,
                "quality_threshold": {label: preset_of(m).threshold for label, m in models.items()},
                "batch_size": batch_size, "device": str(dev), "model_forward_batches": calls}
    described = meta.describe()
    for d, median in medians.items():
        described["per_distance"][str(d)]["median_size"] = median
    dataset = {"protocol": protocol_text(flip, fit), **described,
               "counts": {"gallery_images": len(meta.mugshots), "probes": len(meta.probes),
                          "gallery_subjects": len(meta.mugshots)}}
    return BenchReport(kind="scface", command=command or "facediag.bench.bench_scface(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()}, settings=settings,
                       rows=rows, comparisons=comparisons, dataset=dataset, notes=notes, environment=environment(dev))


def _median(sizes: np.ndarray, sel: np.ndarray) -> float | None:
    s = sizes[sel]
    s = s[np.isfinite(s)]
    return float(np.median(s)) if s.size else None


__all__ = ["FARS", "bench_scface", "identification_figures", "protocol_text", "synthetic_image", "synthetic_size"]
