"""bench ijb: IJB-B / IJB-C template protocols from the standard release (loose crops, five
landmarks and a detector score per image; templates of media; template pairs; 1:N galleries).

Each loose crop is aligned by its own landmarks (facediag.data.landmarks) and embedded once per
checkpoint through the project's engine (:class:`facediag.embed.Embedder`, cached by content:
file digest + landmarks + warp), with its mirror image when flip is on. Rows are processed in
chunks of whole (template, media) groups and pooled into template features on the spot, so
memory holds the template features, not the image features. Then 1:1 TAR@FAR over the pair
list (protocols.templates.score_pairs) and, where the 1:N files are present, rank-k and
TPIR@FPIR for each gallery (protocols.templates.search).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch

from facediag.bench.common import card_per_checkpoint, checkpoint_labels, environment, load_models
from facediag.bench.verification import pair_embeddings
from facediag.data.ijb import read_ijb
from facediag.data.images import DecodeError, header_size, read_rgb, to_tensor01
from facediag.data.index import file_digest
from facediag.data.landmarks import WARP_ID, AlignmentError, align_to_template
from facediag.device import resolve_device
from facediag.embed import build_embedder, open_cache
from facediag.errors import DataError, FacediagError
from facediag.metrics.verification import verification_metrics
from facediag.models.loaded import run_device
from facediag.protocols.pairs import PairImage
from facediag.protocols.templates import (
    FPIRS, TemplatePooler, image_features, score_pairs, search, switches_text, template_groups,
)
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
ROWS_PER_CHUNK = 8192    # image rows embedded and pooled at a time


def protocol_text(flip: bool, norm_score: bool, detector_score: bool) -> str:
    return ("IJB template protocol as insightface's ijb_11.py / ijb_1n.py: loose crops aligned by their five "
            "landmarks to the ArcFace 112×112 template (similarity transform); "
            + switches_text(flip, norm_score, detector_score)
            + "; media feature = mean of its images, template = sum of its media, L2-normalised; 1:1 cosine "
            "between templates; 1:N per gallery, TPIR = mated probes whose own template ranks first and scores "
            "≥ t, FPIR = non-mated probes whose best score is ≥ t")


def crop_loader(path: Path, landmarks: np.ndarray):
    """The aligned 3×112×112 [0, 1] crop of one loose crop (decoded when the engine asks)."""
    def load() -> torch.Tensor:
        rgb = read_rgb(path)
        head = header_size(path)
        points = np.asarray(landmarks, np.float64)
        if head is not None and (head[0], head[1]) != (rgb.shape[1], rgb.shape[0]):
            # the decoder shrinks large images: the landmarks are in the file's pixels
            points = points * np.array([rgb.shape[1] / head[0], rgb.shape[0] / head[1]])
        inside = ((points[:, 0] >= 0) & (points[:, 0] <= rgb.shape[1])
                  & (points[:, 1] >= 0) & (points[:, 1] <= rgb.shape[0]))
        if not inside.any():  # the crop would be all black (or the landmarks are not this image's)
            raise DecodeError("none of the five landmarks lies inside the image")
        try:
            return to_tensor01(align_to_template(rgb, points))
        except AlignmentError as exc:
            raise DecodeError(str(exc)) from None

    return load


def crop_key(digest: str, landmarks: np.ndarray) -> str:
    """Content key: the file's bytes, its landmarks and the warp (one crop, one key)."""
    lmk = hashlib.sha256(np.ascontiguousarray(landmarks, np.float64).tobytes() + WARP_ID.encode()).hexdigest()[:16]
    return f"ijb112:{digest}+{lmk}"


def template_features(embedder_for, meta, *, flip: bool = True, norm_score: bool = True,
                      detector_score: bool = True, rows_per_chunk: int = ROWS_PER_CHUNK):
    """(template ids [T], L2-normalised template features [T, D] (NaN: no readable image),
    {row: why unreadable}, model batches run). ``embedder_for()`` gives a fresh Embedder per
    chunk (sharing one cache), so no run-long memo of image embeddings builds up."""
    groups = template_groups(meta.templates, meta.medias)
    pooler, unreadable, calls = None, {}, 0
    for rows, local, group_template in groups.chunks(rows_per_chunk):
        images = []
        for r in rows.tolist():
            path = meta.crops / meta.names[r]
            images.append(PairImage(crop_key(file_digest(path), meta.landmarks[r]), meta.names[r],
                                    crop_loader(path, meta.landmarks[r])))
        embedder = embedder_for()
        chunk = SimpleNamespace(name=f"{meta.target} rows", images=images)
        summed, _, bad = pair_embeddings(embedder, chunk, flip).expanded()
        calls += embedder.forward_calls
        unreadable.update({int(rows[i]): why for i, why in bad.items()})
        feats = image_features(summed, meta.scores[rows], norm_score=norm_score, detector_score=detector_score)
        if pooler is None:
            pooler = TemplatePooler(len(groups.templates), feats.shape[1])
        pooler.add(feats, local, group_template)
    return groups.templates, pooler.result(), unreadable, calls


def one_to_one_row(features, templates, meta, fars) -> dict[str, Any]:
    pairs = score_pairs(features, templates, meta.pair_t1, meta.pair_t2, meta.pair_label)
    row: dict[str, Any] = {"protocol": "1:1", "n_pairs": int(len(pairs.genuine) + pairs.impostors.n),
                           "n_genuine": int(len(pairs.genuine)), "n_impostor": int(pairs.impostors.n),
                           "dropped_pairs": pairs.n_dropped, "score_resolution": pairs.impostors.resolution}
    if len(pairs.genuine) and pairs.impostors.n:
        ver = verification_metrics(pairs.genuine, pairs.impostors, fars=fars)
        row.update(auc=ver.auc, eer=ver.eer,
                   tar_at_far={f"{p.far:g}": p.tar for p in ver.tar_at_far},
                   tar_thresholds={f"{p.far:g}": p.threshold for p in ver.tar_at_far if p.supported},
                   tar_unsupported={f"{p.far:g}": p.reason for p in ver.tar_at_far if not p.supported})
    return row


def check_detector_scores(meta) -> None:
    """Detector-score weighting (D1) multiplies each image feature by its score: a zero score
    removes the image, a negative one turns it round, and the templates mean nothing. Refused in
    one line (DataError) before any model loads; --no-detector-score (D0) runs on such files."""
    bad = np.flatnonzero(~(meta.scores > 0))
    if len(bad):
        r = int(bad[0])
        source = Path(meta.sources.get("name_5pts_score", "_name_5pts_score.txt")).name
        raise DataError(f"{source}: {len(bad)} of {len(meta.scores)} detector scores are zero or negative (first: "
                        f"{meta.names[r][:60]} in row {r + 1}, score {meta.scores[r]:g}); weighting by the detector "
                        "score needs positive scores: give --no-detector-score (the reference's D0), or fix the scores")


def crop_reason(meta, row: int, why: str) -> str:
    """Why a crop was dropped, without file paths: crops of one content (bytes and landmarks) are
    decoded once, so a decoder's message may name another crop of the same content."""
    why = why.replace(str(meta.crops / meta.names[row]), "<crop>")
    return re.sub(re.escape(str(meta.crops)) + r"""[/\\][^'"]*""", "<crop>", why)


def dropped_reasons(meta, unreadable: dict[int, str], most: int = 3) -> str:
    """"N × why" for the commonest reasons crops were dropped (the crop's own path left out)."""
    counts = Counter(crop_reason(meta, r, why).removeprefix("unreadable: ") for r, why in unreadable.items())
    text = "; ".join(f"{n} × {why[:100]}" for why, n in counts.most_common(most))
    return text + (f"; {len(counts) - most} other reason(s)" if len(counts) > most else "")


def nothing_scored(meta, unreadable: dict[int, str]) -> str:
    """The one line for a run where no template pair has a readable crop on both sides."""
    n = len(meta.names)
    dropped = (f"{len(unreadable)} of {n} crops dropped ({dropped_reasons(meta, unreadable)})" if unreadable
               else f"none of the {n} crops was dropped")
    return (f"{meta.root}: no template pair can be scored: {dropped}, so none of the "
            f"{len(meta.pair_label)} pairs has a readable crop in both templates (check loose_crop/ and the "
            "landmarks of _name_5pts_score.txt)")


def bench_ijb(checkpoints: Sequence, root: str | Path, target: str = "IJBC", *, flip: bool = True,
              norm_score: bool = True, detector_score: bool = True, labels: Sequence[str] | None = None,
              arch: str | None = None, cards: Sequence | None = None, device: str = "auto", batch_size: int = 64,
              cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
              fars: Sequence[float] = DEFAULT_FARS, rows_per_chunk: int = ROWS_PER_CHUNK,
              command: str | None = None) -> BenchReport:
    """IJB-B/C 1:1 (and 1:N where its files are present) for each checkpoint. ``cards``: a model
    card per checkpoint (None: the card beside each, if any).

    Example::

        report = bench_ijb(["edgeface_xxs.pt"], "/data/IJB_release", "IJBC")
        report.rows_where(protocol="1:1")[0]["tar_at_far"]["0.0001"]
    """
    if not checkpoints:
        raise FacediagError("give at least one checkpoint (--weights)")
    _require_skimage()
    names = checkpoint_labels(checkpoints, labels)
    cards = card_per_checkpoint(checkpoints, cards)
    meta = read_ijb(root, target)  # every metadata file validated before any model is loaded
    if detector_score:
        check_detector_scores(meta)
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    dev = resolve_device(device)
    cache = open_cache(cache_dir, use_cache)

    rows, notes, calls = [], [], {}
    for label, loaded in models.items():
        # a fresh Embedder per chunk (template_features), all sharing one cache
        embedder_for = partial(build_embedder, loaded, dev, cache=cache, batch_size=batch_size, progress=progress)
        templates, feats, unreadable, calls[label] = template_features(
            embedder_for, meta, flip=flip, norm_score=norm_score, detector_score=detector_score,
            rows_per_chunk=rows_per_chunk)
        one = _one_to_one(label, loaded.variant, feats, templates, meta, fars, unreadable)
        rows.append(one)
        if unreadable or one["dropped_pairs"]:
            notes.append(f"[{label}] {len(unreadable)} image(s) unreadable (left out of their media; listed in the "
                         f"JSON), {one['dropped_pairs']} pair(s) left out (a template without a readable image): "
                         "not comparable with a published figure")
        for gallery in meta.galleries:  # searched where the model ran
            rows.append({"checkpoint": label, "variant": loaded.variant, "protocol": "1:N",
                         **search(feats, templates, gallery, meta.probes, device=run_device(loaded.variant, dev),
                                  fpirs=FPIRS)})
    if not meta.galleries:
        notes.append(f"1:N not run: no {meta.target.lower()}_1N_gallery_*.csv / _1N_probe_mixed.csv in meta/")
    settings = {"target": meta.target, "flip": flip, "norm_score": norm_score, "detector_score": detector_score,
                "switches": switches_text(flip, norm_score, detector_score), "fars": list(fars),
                "fpirs": list(FPIRS), "batch_size": batch_size, "device": str(dev), "rows_per_chunk": rows_per_chunk,
                "model_forward_batches": calls}
    dataset = {"protocol": protocol_text(flip, norm_score, detector_score), **meta.describe()}
    return BenchReport(kind="ijb", command=command or "facediag.bench.bench_ijb(...)",
                       checkpoints={label: checkpoint_info(m) for label, m in models.items()},
                       settings=settings, rows=rows, dataset=dataset, notes=notes, environment=environment(dev))


def _one_to_one(label: str, variant: str, feats, templates, meta, fars, unreadable: dict[int, str]) -> dict[str, Any]:
    """A checkpoint's 1:1 row, with the crops it could not read; DataError when no pair could be scored."""
    one = {"checkpoint": label, "variant": variant, **one_to_one_row(feats, templates, meta, fars)}
    one["n_unreadable"] = len(unreadable)
    if not one["n_pairs"]:
        raise DataError(nothing_scored(meta, unreadable))
    one["unreadable"] = [f"{meta.names[r]}: {crop_reason(meta, r, why)}" for r, why in sorted(unreadable.items())][:20]
    return one


def _require_skimage() -> None:
    try:  # scikit-image is an optional extra: asked for here, used by the landmark warp
        import skimage.transform  # noqa: F401
    except ImportError:
        raise FacediagError("bench ijb aligns crops with scikit-image: pip install 'facediag[ijb]' "
                            "(or pip install scikit-image)") from None


__all__ = ["DEFAULT_FARS", "bench_ijb", "check_detector_scores", "crop_key", "crop_loader", "dropped_reasons",
           "nothing_scored", "protocol_text", "template_features"]
