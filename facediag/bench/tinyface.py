"""bench tinyface: closed-set identification on the TinyFace test split (native low-resolution
web faces, ~20 px), the protocol of AdaFace's ``validation_lq/validate_tinyface.py`` +
``tinyface_helper.py`` and of the release's own evaluation, with the field's published rows.

Protocol as run (every choice also in the report's ``dataset.protocol``):

* gallery = Gallery_Match + every Gallery_Distractor image (distractors are nobody's mate);
  probes = Probe; identity = the file name up to the first ``_`` (data/tinyface.py: the .mat
  lists and the folders must agree).
* each image embedded once per checkpoint through the project's engine (cached by content),
  with its mirror image: flip fusion ``pre_norm_vector_add``, which for a model whose output is
  the raw embedding is raw(img) + raw(flip(img)), then L2-normalised (``--no-flip``: raw(img));
  inner product.
* closed-set CMC at ranks 1, 5, 10, 20 over the probes whose identity is in the gallery (ties
  count against the probe); mAP as the release's evaluation computes AP (metrics/retrieval.py).
* with ``aligned_dir`` the pre-aligned copy is embedded (what AdaFace's published figures used);
  without it, each original tiny image is brought to the 112×112 input as facediag brings every
  face (longer side to 112 with bicubic, aspect kept, centred on black; area for a larger one).

The matching is streamed over gallery chunks (metrics.retrieval): memory holds the embeddings
and one chunk of scores, never the ~3.7k × 158k score matrix. Per probe the row also carries
the native size, blur, raw embedding norm, rank-1 correctness and genuine score, summarised by
metrics.edc.quality_section under ``by_quality``.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from facediag.bench.native_quality import grey_blur, native_size
from facediag.bench.common import card_per_checkpoint, checkpoint_labels, environment, load_models
from facediag.bench.verification import pair_embeddings
from facediag.data.images import DecodeError, load_face, read_rgb
from facediag.data.index import file_digest
from facediag.data.tinyface import DISTRACTOR_ID, read_tinyface
from facediag.device import resolve_device
from facediag.embed import build_embedder, open_cache
from facediag.errors import DataError, FacediagError
from facediag.metrics.edc import quality_section
from facediag.metrics.retrieval import MATLAB_POSITIONS, RANKS, retrieve
from facediag.models.loaded import preset_of, run_device
from facediag.protocols.pairs import PairImage
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

IMAGES_PER_CHUNK = 8192  # distinct images embedded at a time (a fresh engine each: no run-long memo)

# Published TinyFace rank-1 / rank-5 (%), keyed by the name a model card gives its model
# (``name = "adaface-ir101-webface12m"`` in the card: that row is then the model's own).
_ADAFACE = "AdaFace README (mk-minchul/AdaFace), Low Quality Scenario table, TinyFace columns"
_CVLFACE = "CVLface performance board (mk-minchul/CVLface, cvlface/pretrained_models/README.md)"
PUBLISHED: dict[str, dict[str, Any]] = {
    "adaface-ir101-webface12m": {"model": "AdaFace IR101 WebFace12M", "rank1": 72.29, "rank5": 74.97,
                                 "source": _ADAFACE},
    "adaface-ir101-webface4m": {"model": "AdaFace IR101 WebFace4M", "rank1": 72.02, "rank5": 74.52, "source": _ADAFACE},
    "adaface-ir101-ms1mv2": {"model": "AdaFace IR101 MS1MV2", "rank1": 68.21, "rank5": 71.54, "source": _ADAFACE},
    "curricularface-ir101-ms1mv2": {"model": "CurricularFace IR101 MS1MV2", "rank1": 63.68, "rank5": 67.65,
                                    "source": _ADAFACE},
    "cvlface-adaface-vit-base-kprpe-webface4m": {"model": "CVLface AdaFace ViT KPRPE WebFace4M", "rank1": 75.75,
                                                 "rank5": 78.49, "source": _CVLFACE},
    "cvlface-adaface-vit-base-webface4m": {"model": "CVLface AdaFace ViT WebFace4M", "rank1": 74.79, "rank5": 77.58,
                                           "source": _CVLFACE},
    "cvlface-adaface-ir101-webface12m": {"model": "CVLface AdaFace IR101 WebFace12M", "rank1": 72.42, "rank5": 74.81,
                                         "source": _CVLFACE},
    "cvlface-adaface-ir101-webface4m": {"model": "CVLface AdaFace IR101 WebFace4M", "rank1": 72.13, "rank5": 74.49,
                                        "source": _CVLFACE},
    "cvlface-arcface-ir101-webface4m": {"model": "CVLface ArcFace IR101 WebFace4M", "rank1": 71.03, "rank5": 74.41,
                                        "source": _CVLFACE},
    "cvlface-adaface-ir101-ms1mv3": {"model": "CVLface AdaFace IR101 MS1MV3", "rank1": 67.95, "rank5": 71.03,
                                     "source": _CVLFACE},
    "cvlface-adaface-ir101-ms1mv2": {"model": "CVLface AdaFace IR101 MS1MV2", "rank1": 68.11, "rank5": 71.49,
                                     "source": _CVLFACE},
    "cvlface-adaface-ir50-ms1mv2": {"model": "CVLface AdaFace IR50 MS1MV2", "rank1": 64.99, "rank5": 68.88,
                                    "source": _CVLFACE},
    "cvlface-adaface-ir50-webface4m": {"model": "CVLface AdaFace IR50 WebFace4M", "rank1": 70.20, "rank5": 73.93,
                                       "source": _CVLFACE},
    "cvlface-adaface-ir18-webface4m": {"model": "CVLface AdaFace IR18 WebFace4M", "rank1": 66.07, "rank5": 70.71,
                                       "source": _CVLFACE},
}
# Shown in every report, whichever models ran: the rows the field quotes.
ALWAYS_SHOWN = ("adaface-ir101-webface12m", "adaface-ir101-webface4m", "adaface-ir101-ms1mv2",
                "curricularface-ir101-ms1mv2")


def published_key(name: str) -> str:
    """A card's model name as PUBLISHED files it: lower case, ``_`` and spaces as ``-``."""
    return "-".join(str(name).lower().replace("_", " ").split())


def protocol_text(flip: bool, aligned: str | None) -> str:
    """The protocol as every report states it."""
    inputs = (f"the pre-aligned copy {aligned}/ embedded (as AdaFace's evaluation)" if aligned else
              "the original tiny images embedded, each brought to 112×112 as facediag brings every face: longer side "
              "to 112 by bicubic interpolation (area when larger), aspect kept, centred on black — not the published "
              "figures' input (they used AdaFace's aligned copy)")
    fusion = ("flip test fused pre_norm_vector_add: raw(img) + raw(flip(img)), then L2-normalised" if flip else
              "no flip test: raw(img), L2-normalised")
    return ("TinyFace test split as AdaFace's validate_tinyface.py / tinyface_helper.py and the release's evaluation: "
            "gallery = Gallery_Match + every Gallery_Distractor image (distractors are nobody's mate), probes = Probe, "
            f"identity = file name up to the first '_'; {inputs}; {fusion}; inner product; closed-set CMC at ranks "
            f"{', '.join(map(str, RANKS))} over the probes whose identity is in the gallery, ties counted against the "
            "probe; mAP = mean over those probes of the release's compute_AP (trapezoid over recall, precision 1 "
            f"before the first position; the release's MATLAB version counts mates within the first {MATLAB_POSITIONS} "
            "positions only: map_first_1000)")


def probe_qualities(split) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's native size (the shorter side of its original file, px) and blur (variance of
    the Laplacian of the original's 8-bit grey, BT.601 weights as PIL's "L"); NaN where the
    original cannot be read. Once per run: they do not depend on the model."""
    paths = split.probe_originals
    sizes = np.full(len(paths), np.nan)
    blur = np.full(len(paths), np.nan)
    for i, path in enumerate(paths):
        try:
            sizes[i] = native_size(path)
            rgb = read_rgb(path)
        except (DataError, DecodeError):
            continue
        if min(rgb.shape[:2]) >= 2:
            blur[i] = grey_blur(rgb)
    return sizes, blur


class _Images:
    """The protocol's files as distinct contents: each embedded once per checkpoint, however often
    the split holds it (a probe and a gallery image of the same bytes share a row)."""

    def __init__(self, split):
        files = [*split.probe_inputs, *split.gallery_inputs]
        slot: dict[str, int] = {}
        rows = np.empty(len(files), np.int64)
        self.keys, self.files = [], []
        for j, path in enumerate(files):
            key = f"hr:{file_digest(path)}"  # the house key of a file's face: load_face of its bytes
            u = slot.setdefault(key, len(self.keys))
            if u == len(self.keys):
                self.keys.append(key)
                self.files.append(path)
            rows[j] = u
        n_probes = len(split.probe_inputs)
        self.probe_rows, self.gallery_rows = rows[:n_probes], rows[n_probes:]
        self.root = split.root

    def name(self, u: int) -> str:
        path = self.files[u]
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def embed(self, embedder_for, flip: bool, chunk: int = IMAGES_PER_CHUNK):
        """(unit embeddings float32 [U, D], raw norm of the image itself [U], {row: why unreadable},
        model batches run). ``embedder_for()``: a fresh Embedder per chunk, one shared cache."""
        n = len(self.keys)
        unit = norms = None
        unreadable, calls = {}, 0
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            images = [PairImage(self.keys[u], self.name(u), partial(load_face, self.files[u])) for u in range(a, b)]
            embedder = embedder_for()
            emb = pair_embeddings(embedder, SimpleNamespace(name=f"TinyFace {a + 1}–{b} of {n}", images=images), flip)
            calls += embedder.forward_calls
            summed = emb.table[emb.row]
            if unit is None:
                unit = np.full((n, summed.shape[1]), np.nan, np.float32)
                norms = np.full(n, np.nan, np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):  # unreadable rows stay NaN
                unit[a:b] = summed / np.linalg.norm(summed, axis=1, keepdims=True)
            norms[a:b] = emb.norms[emb.row, 0]
            unreadable.update({a + i: why for i, why in emb.unreadable().items()})
        return unit, norms, unreadable, calls


def _published_rows(models: dict) -> list[dict]:
    keys = list(ALWAYS_SHOWN) + [published_key(preset_of(m).name) for m in models.values()]
    return [{"key": k, **PUBLISHED[k]} for k in dict.fromkeys(keys) if k in PUBLISHED]


def _row(label: str, loaded, split, images: _Images, unit, norms, unreadable: dict[int, str], qualities,
         device) -> dict[str, Any]:
    """One checkpoint's row: the protocol's numbers, the published figure it should match, and
    the per-probe quality section."""
    bad = np.zeros(len(images.keys), bool)
    bad[list(unreadable)] = True
    probe_ok = ~bad[images.probe_rows]
    gallery_ok = ~bad[images.gallery_rows]
    if not probe_ok.any():
        raise DataError(f"{split.root}: none of the {len(probe_ok)} probe images could be read "
                        f"(first: {next(iter(unreadable.values()))})")
    probe_ids = split.probe_ids[probe_ok]
    r = retrieve(unit, images.probe_rows[probe_ok], probe_ids, images.gallery_rows[gallery_ok],
                 split.gallery_ids[gallery_ok], device=run_device(loaded.variant, device))
    cmc = r.cmc(RANKS)
    mated = r.mated
    preset = preset_of(loaded)
    row: dict[str, Any] = {
        "checkpoint": label, "variant": loaded.variant, "model": preset.name,
        "channel_order": preset.channel_order,
        **{f"rank{k}": v for k, v in cmc.items()}, "cmc": {str(k): v for k, v in cmc.items()},
        "map": r.mean_ap(), "map_first_1000": r.mean_ap(MATLAB_POSITIONS),
        "n_probes": int(len(probe_ids)), "n_mated": int(mated.sum()), "n_unmated": int((~mated).sum()),
        "n_gallery": int(gallery_ok.sum()), "n_match": int((split.gallery_ids[gallery_ok] != DISTRACTOR_ID).sum()),
        "n_distractors": int((split.gallery_ids[gallery_ok] == DISTRACTOR_ID).sum()),
        "genuine_mean": float(np.mean(r.genuine[mated])) if mated.any() else None,
        "n_unreadable": len(unreadable),
        "unreadable": [f"{images.name(u)}: {why}" for u, why in sorted(unreadable.items())][:20],
    }
    paper = PUBLISHED.get(published_key(preset.name))
    if paper is not None:
        row["published"] = {"key": published_key(preset.name), **paper}
        row["published_delta_pp"] = {k: None if row[k] is None else row[k] * 100.0 - paper[k]
                                     for k in ("rank1", "rank5")}
    sizes, blur = (q[probe_ok] for q in qualities)
    keep = mated & np.isfinite(sizes) & np.isfinite(blur)  # the closed set, with a readable original
    if keep.any():
        row["by_quality"] = quality_section(
            sizes=sizes[keep], blur=blur[keep], norms=norms[images.probe_rows[probe_ok]][keep].astype(np.float64),
            correct=r.ranks[keep] == 1, genuine=r.genuine[keep], threshold=preset.threshold)
        row["by_quality"]["probes_left_out"] = int(mated.sum() - keep.sum())
    return row


def _notes(rows: list[dict], split, flip: bool) -> list[str]:
    notes = []
    if split.aligned is None:
        notes.append("the original tiny images were embedded (no --aligned-dir): the published figures were measured "
                     "on AdaFace's aligned copy (aligned_pad_0.1_pad_high), so they are not comparable (AdaFace issue "
                     "#172: 46.0 against 72.0 rank-1, traced to alignment)")
    if not flip:
        notes.append("--no-flip: the published figures use the flip test (pre_norm_vector_add)")
    for r in rows:
        if r["n_unreadable"]:
            notes.append(f"[{r['checkpoint']}] {r['n_unreadable']} image(s) unreadable, left out of the probes or the "
                         "gallery (listed in the JSON): not comparable with a published figure")
        if r["n_unmated"]:
            notes.append(f"[{r['checkpoint']}] {r['n_unmated']} probe(s) have no image of their identity in the "
                         "gallery: left out of the CMC and mAP (closed set)")
        if r.get("channel_order") == "BGR":
            notes.append(f"[{r['checkpoint']}] fed BGR as its card says (AdaFace's models: the reference reads the "
                         "images with cv2, BGR)")
        left = (r.get("by_quality") or {}).get("probes_left_out")
        if left:
            notes.append(f"[{r['checkpoint']}] {left} probe(s) left out of the quality section: their original "
                         "file could not be read for its size or blur")
    return notes


def bench_tinyface(checkpoints: Sequence, root: str | Path, *, aligned_dir: str | None = None, flip: bool = True,
                   labels: Sequence[str] | None = None, arch: str | None = None, cards: Sequence | None = None,
                   device: str = "auto", batch_size: int = 64, cache_dir: str | Path | None = None,
                   use_cache: bool = True, progress: bool = True, images_per_chunk: int = IMAGES_PER_CHUNK,
                   command: str | None = None) -> BenchReport:
    """TinyFace closed-set identification (rank-1/5/10/20, mAP) for each checkpoint, with the
    published rows beside the measured ones. ``cards``: a model card per checkpoint (None: the
    card beside each); a card whose ``name`` is a key of PUBLISHED names the row its model
    should match, and the difference is in the row.

    Example::

        report = bench_tinyface(["edgeface_xxs.pt"], "/data/tinyface_root", aligned_dir="aligned_pad_0.1_pad_high")
        report.rows[0]["rank1"], report.rows[0]["map"]
    """
    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    if images_per_chunk < 1:
        raise FacediagError("images_per_chunk must be at least 1")
    names = checkpoint_labels(checkpoints, labels)
    cards = card_per_checkpoint(checkpoints, cards)
    split = read_tinyface(root, aligned_dir)  # every list checked before any model is loaded
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    dev = resolve_device(device)
    cache = open_cache(cache_dir, use_cache)
    images = _Images(split)
    qualities = probe_qualities(split)
    rows, calls = [], {}
    for label, loaded in models.items():
        # a fresh Embedder per chunk (_Images.embed), all sharing one cache
        embedder_for = partial(build_embedder, loaded, dev, cache=cache, batch_size=batch_size, progress=progress)
        unit, norms, unreadable, calls[label] = images.embed(embedder_for, flip, images_per_chunk)
        rows.append(_row(label, loaded, split, images, unit, norms, unreadable, qualities, dev))
        del unit  # one checkpoint's embeddings at a time
    settings = {"flip": flip, "fusion": "pre_norm_vector_add" if flip else None, "aligned_dir": aligned_dir,
                "ranks": list(RANKS), "batch_size": batch_size, "device": str(dev),
                "images_per_chunk": images_per_chunk, "distinct_images": len(images.keys),
                "model_forward_batches": calls, "published": _published_rows(models),
                "published_sources": sorted({_ADAFACE, _CVLFACE})}
    dataset = {"protocol": protocol_text(flip, aligned_dir), **split.describe()}
    return BenchReport(kind="tinyface", command=command or "facediag.bench.bench_tinyface(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()},
                       settings=settings, rows=rows, dataset=dataset, notes=_notes(rows, split, flip),
                       environment=environment(dev))


__all__ = ["ALWAYS_SHOWN", "IMAGES_PER_CHUNK", "PUBLISHED", "bench_tinyface", "probe_qualities", "protocol_text",
           "published_key"]
