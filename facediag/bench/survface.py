"""bench survface: QMUL-SurvFace's two test protocols on its native surveillance faces.

Identification is an open-set watch list (the protocol page, qmul-survface.github.io): the
gallery's identities are the watch list; each gallery identity is one template, the mean of its
images' L2-normalised features, renormalised (as the public ports of the evaluation build it);
every mated and unmated probe is searched against the templates by cosine
(:func:`facediag.protocols.matching.match`, chunked). Reported: TPIR at FPIR 0.3, 0.2, 0.1 at
rank 20 (the headline) and rank 1, the area under each TPIR–FPIR curve
(:mod:`facediag.metrics.open_set`) and closed-set rank-k over the mated probes; by face size
and quality (:func:`facediag.metrics.edc.quality_section`) over the mated probes.

Verification: the positive and negative pair lists, cosine of the two images' features; TAR at
FAR 0.3, 0.1, 0.01, 0.001 and AUC over all pairs pooled, and the mean accuracy of the 10-fold
protocol of the verification sets (:func:`facediag.metrics.kfold.reference_kfold`, with fold k =
the k-th tenth of each list, so every fold holds both kinds). Both run through
:func:`facediag.bench.verification.set_row`, as bench verification does.

A feature is embedding(img) + embedding(flip(img)) when flip is on (the model preset's
protocol; EdgeFace's: on), L2-normalised; the public ports average the two, which is the same
after normalising. Channel order and normalisation come from the model's preset or card.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facediag.bench.common import checkpoint_labels, environment, load_models
from facediag.bench.native import (
    FIT_TEXT, ROWS_PER_CHUNK, check_fit, embed_images, feature_text, file_image, native_quality,
)
from facediag.bench.verification import pair_embeddings, resolve_flip, set_row
from facediag.data.survface import (
    IDENTIFICATION_DIR, VERIFICATION_DIR, VerificationPairs, WatchList, read_survface,
)
from facediag.device import resolve_device
from facediag.embed import build_embedder, open_cache
from facediag.errors import DataError, FacediagError
from facediag.metrics.edc import quality_section
from facediag.metrics.identification import build_templates, closed_set_from
from facediag.metrics.open_set import WATCHLIST_FPIRS, WATCHLIST_RANKS, watchlist
from facediag.models.loaded import preset_of, run_device
from facediag.protocols.matching import match
from facediag.protocols.pairs import PairSet
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

VERIFICATION_FARS = (0.3, 0.1, 0.01, 0.001)
CLOSED_RANKS = (1, 5, 10, 20)


def protocol_text(flip: bool, fit: str) -> str:
    return ("QMUL-SurvFace test protocols. Identification: open-set watch list; one template per gallery identity "
            "(mean of its L2-normalised image features, renormalised); every mated and unmated probe searched by "
            "cosine; TPIR_k(t) = mated probes whose identity is among the k best and scores ≥ t (ties against the "
            "probe), FPIR(t) = unmated probes whose best score is ≥ t; TPIR at the lowest threshold whose FPIR does "
            "not exceed the target; area under the TPIR–FPIR curve over every threshold. Verification: cosine of "
            "the two images of each listed pair; TAR@FAR and AUC over all pairs; mean accuracy over 10 folds "
            "(fold k = the k-th tenth of each list; squared L2 thresholds 0–4 step 0.01 chosen on the other nine). "
            f"Features: {feature_text(flip)}. Images: {FIT_TEXT[fit]}")


def _images(folder, names: Sequence[str], fit: str) -> list:
    return [file_image(folder / n, n, fit) for n in names]


def identification_row(embedder_for, wl: WatchList, *, flip: bool, fit: str, device, threshold: float,
                       sizes: np.ndarray | None = None, blur: np.ndarray | None = None,
                       rows_per_chunk: int = ROWS_PER_CHUNK) -> tuple[dict[str, Any], int]:
    """One checkpoint's watch-list row (and the model batches it ran). ``sizes``/``blur``: the
    mated probes' native qualities (computed once for every checkpoint)."""
    embed = partial(embed_images, embedder_for, flip=flip, rows_per_chunk=rows_per_chunk)
    gal = embed(_images(wl.folder / "gallery", wl.gallery, fit), name="SurvFace gallery")
    mat = embed(_images(wl.folder / "mated_probe", wl.mated, fit), name="SurvFace mated probes")
    unm = embed(_images(wl.folder / "unmated_probe", wl.unmated, fit), name="SurvFace unmated probes")
    ok = gal.readable
    if not ok.any():
        raise DataError(f"{wl.folder / 'gallery'}: none of the {len(wl.gallery)} gallery images could be read")
    subjects, templates = build_templates(gal.unit[ok].astype(np.float64), wl.gallery_ids[ok])
    column = {s: i for i, s in enumerate(subjects)}
    mated_ids = wl.mated_ids.astype(str)
    enrolled = np.array([s in column for s in mated_ids], dtype=bool)
    keep_m = mat.readable & enrolled
    keep_u = unm.readable
    if not keep_m.any():
        raise DataError(f"{wl.folder}: no mated probe could be searched ({len(mat.unreadable)} unreadable, "
                        f"{int((~enrolled).sum())} whose identity has no readable gallery image)")
    probes = np.concatenate([mat.unit[keep_m], unm.unit[keep_u]])
    own = np.r_[[column[s] for s in mated_ids[keep_m]], np.full(int(keep_u.sum()), -1)].astype(np.int64)
    probe_ids = np.r_[np.flatnonzero(keep_m), len(wl.mated) + np.flatnonzero(keep_u)]
    m = match(probes, templates.astype(np.float32), own, probe_ids, device=device).summary()
    figures = watchlist(m, ranks=WATCHLIST_RANKS, fpirs=WATCHLIST_FPIRS)
    closed = closed_set_from(m, np.r_[mated_ids[keep_m], np.full(int(keep_u.sum()), "")],
                             ranks=CLOSED_RANKS)
    row: dict[str, Any] = {
        "task": "identification", "n_gallery_images": int(ok.sum()), "n_gallery": len(subjects),
        "n_mated": figures["n_mated"], "n_unmated": figures["n_nonmated"],
        "dropped_gallery": int((~ok).sum()), "dropped_mated": int((~keep_m).sum()),
        "dropped_unmated": int((~keep_u).sum()),
        **{f"rank{k}": v for k, v in closed.rank_accuracy.items()},
        "watchlist": {f"rank{k}": figures[f"rank{k}"] for k in WATCHLIST_RANKS},
        "unreadable": _unreadable(wl, gal.unreadable, mat.unreadable, unm.unreadable),
    }
    qualities = {"sizes": sizes[keep_m] if sizes is not None else None,
                 "blur": blur[keep_m] if blur is not None else None, "norms": mat.norms[keep_m]}
    row["by_quality"] = _by_quality(qualities, m.ranks == 1, m.genuine, threshold)
    return row, gal.forward_batches + mat.forward_batches + unm.forward_batches


def _by_quality(qualities: dict, correct: np.ndarray, genuine: np.ndarray, threshold: float) -> dict | None:
    """quality_section over the probes whose every given quality is known (an unreadable original
    has no size or sharpness); None when none is."""
    known = np.ones(len(correct), dtype=bool)
    for q in qualities.values():
        if q is not None:
            known &= np.isfinite(q)
    if not known.any():
        return None
    given = {k: (q[known] if q is not None else None) for k, q in qualities.items()}
    section = quality_section(**given, correct=correct[known], genuine=genuine[known], threshold=threshold)
    left = int((~known).sum())
    section["probes"] = (f"{int(known.sum())} mated probes (native surveillance files)"
                         + (f"; {left} whose original could not be measured left out" if left else ""))
    return section


def _unreadable(wl: WatchList, *parts: dict[int, str]) -> list[str]:
    folders = zip(("gallery", "mated_probe", "unmated_probe"), (wl.gallery, wl.mated, wl.unmated), parts)
    out = [f"{folder}/{names[i]}: {why}" for folder, names, part in folders for i, why in sorted(part.items())]
    return out[:20]


def verification_pair_set(ver: VerificationPairs, fit: str) -> PairSet:
    """The pair lists as a PairSet (what bench verification's protocol code reads)."""
    images = _images(ver.folder, ver.names, fit)
    return PairSet("survface_verification", Path(ver.sources["positive_pairs_names"]), "mat", images,
                   ver.first, ver.second, ver.issame, ver.fold_ids, ver.folder)


def verification_row(embedder, pset: PairSet, flip: bool) -> dict[str, Any]:
    row, _ = set_row(pset, pair_embeddings(embedder, pset, flip), fars=VERIFICATION_FARS)
    return {"task": "verification", **row}


def bench_survface(checkpoints: Sequence, root: str | Path, *, tasks: tuple[str, ...] | None = None,
                   flip: bool | None = None, fit: str = "pad", labels: Sequence[str] | None = None,
                   arch: str | None = None, cards: Sequence | None = None, device: str = "auto", batch_size: int = 64,
                   cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
                   rows_per_chunk: int = ROWS_PER_CHUNK, command: str | None = None) -> BenchReport:
    """QMUL-SurvFace identification (open-set watch list) and verification for each checkpoint.

    Parameters
    ----------
    checkpoints : sequence
        Checkpoint paths (or loaded models).
    root : str or Path
        The release folder (see :mod:`facediag.data.survface`).
    tasks : tuple of str, optional
        ``identification`` and/or ``verification`` (default: whichever the release holds).
    flip : bool, optional
        Add the mirror image's embedding (None: the model presets' protocol).
    fit : str
        ``pad`` (facediag's canvas) or ``stretch`` (resized to 112×112 as the public ports do).

    Returns
    -------
    BenchReport
        Kind ``survface``: per checkpoint an identification row and a verification row.

    Example::

        report = bench_survface(["edgeface_xxs.pt"], "/data/QMUL-SurvFace")
        report.rows_where(task="identification")[0]["watchlist"]["rank20"]["tpir_at_fpir"]["0.1"]
    """
    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    check_fit(fit)
    names = checkpoint_labels(checkpoints, labels)
    meta = read_survface(root, tasks)  # every list validated before any model is loaded
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    flip = resolve_flip(flip, [preset_of(m) for m in models.values()])
    dev = resolve_device(device)
    cache = open_cache(cache_dir, use_cache)
    wl, ver = meta.identification, meta.verification
    sizes = blur = None
    if wl is not None:  # the mated probes' native size and sharpness: once, for every checkpoint
        sizes, blur = native_quality([wl.folder / "mated_probe" / n for n in wl.mated])
    pset = verification_pair_set(ver, fit) if ver is not None else None

    rows, calls, notes = [], {}, []
    for label, loaded in models.items():
        embedder_for = partial(build_embedder, loaded, dev, cache=cache, batch_size=batch_size, progress=progress)
        head = {"checkpoint": label, "variant": loaded.variant}
        calls[label] = 0
        if wl is not None:
            row, n = identification_row(embedder_for, wl, flip=flip, fit=fit,
                                        device=run_device(loaded.variant, dev), threshold=preset_of(loaded).threshold,
                                        sizes=sizes, blur=blur, rows_per_chunk=rows_per_chunk)
            rows.append({**head, **row})
            calls[label] += n
            dropped = row["dropped_gallery"] + row["dropped_mated"] + row["dropped_unmated"]
            if dropped:
                notes.append(f"[{label}] identification: {dropped} image(s) left out (unreadable, or a mated probe "
                             "whose identity has no readable gallery image): not comparable with a published figure")
        if pset is not None:
            embedder = embedder_for()
            row = verification_row(embedder, pset, flip)
            calls[label] += embedder.forward_calls
            rows.append({**head, **row})
            if row["dropped_pairs"]:
                notes.append(f"[{label}] verification: {row['dropped_pairs']} pair(s) left out (an unreadable image)")
    absent = (("identification", IDENTIFICATION_DIR, wl), ("verification", VERIFICATION_DIR, ver))
    notes += [f"{task} not run: no {folder}/ in {meta.root}" for task, folder, part in absent if part is None]
    settings = {"tasks": meta.describe()["tasks"], "flip": flip, "fit": fit, "fpirs": list(WATCHLIST_FPIRS),
                "ranks": list(WATCHLIST_RANKS), "closed_ranks": list(CLOSED_RANKS), "fars": list(VERIFICATION_FARS),
                "folds": 10, "batch_size": batch_size, "device": str(dev), "rows_per_chunk": rows_per_chunk,
                "quality_threshold": {label: preset_of(m).threshold for label, m in models.items()},
                "model_forward_batches": calls}
    described = meta.describe()
    counts = {"gallery_images": described.get("identification", {}).get("gallery_images", 0),
              "probes": sum(described.get("identification", {}).get(k, 0) for k in ("mated_probes", "unmated_probes")),
              "gallery_subjects": described.get("identification", {}).get("gallery_identities", 0)}
    dataset = {"protocol": protocol_text(flip, fit), **described, "counts": counts}
    return BenchReport(kind="survface", command=command or "facediag.bench.bench_survface(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()},
                       settings=settings, rows=rows, dataset=dataset, notes=notes, environment=environment(dev))


__all__ = ["CLOSED_RANKS", "VERIFICATION_FARS", "bench_survface", "identification_row", "protocol_text",
           "verification_pair_set", "verification_row"]
