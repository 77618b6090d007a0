"""subject-overlap: who is in the gallery, who is probed, who was trained on, and leaked images."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from facediag.checks._faces import strip, tile
from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity
from facediag.checks.registry import register
from facediag.data.protocol import is_distractor
from facediag.data.images import DecodeError
from facediag.data.near_duplicates import CANDIDATE_CORRELATION, MAX_CANDIDATES, identical_pairs, nearest_candidates
from facediag.data.pixels import THUMB_MARGIN, Fingerprints


def _canonical(subject: str) -> str:
    """'007' ~ '7', 'Bob' ~ 'bob': ids that differ only like this are probably one person."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), subject.strip().lower())


def id_clashes(subjects) -> list[list[str]]:
    groups = defaultdict(set)
    for s in subjects:
        groups[_canonical(s)].add(s)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def shift_correlation(a: np.ndarray, b: np.ndarray, shift: int = 2, margin: int = THUMB_MARGIN) -> float:
    """Best correlation of the central crops of two 112×112 grey images over ±``shift`` px.

    The crop keeps padding edges out; the shift search finds a re-cropped or shifted copy.
    Measured on ORL: a 1-px shifted JPEG of an image scores 0.999, two different photos of
    the same person at most 0.981."""
    return _correlate(_centred_crop(a, margin), _shifted_windows(b, shift, margin))


def _centred_crop(a: np.ndarray, margin: int = THUMB_MARGIN) -> tuple[np.ndarray, float]:
    """One side of the test: the central crop, centred, and its sum of squares."""
    n = a.shape[0]
    aa = a[margin:n - margin, margin:n - margin].astype(np.float64)
    aa = aa - aa.mean()
    return aa, float((aa * aa).sum())


def _shifted_windows(b: np.ndarray, shift: int = 2, margin: int = THUMB_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The other side: every shifted crop, as windows of one view [2s+1, 2s+1, size, size], and
    each window's centred sum of squares. Computed once per image, however many pairs it is in."""
    n = b.shape[0]
    size = n - 2 * margin
    region = b[margin - shift:n - margin + shift, margin - shift:n - margin + shift].astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(region, (size, size))
    sums = windows.sum(axis=(2, 3))
    sq = np.einsum("ijkl,ijkl->ij", windows, windows) - sums * sums / (size * size)
    return windows, np.clip(sq, 0, None)


def _correlate(crop: tuple[np.ndarray, float], shifted: tuple[np.ndarray, np.ndarray]) -> float:
    return float(_correlate_many([crop], shifted)[0])


def _correlate_many(crops: list[tuple[np.ndarray, float]], shifted: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The shift-tolerant correlation of several crops against one image's shifted windows, in one
    contraction (one image's candidates are tested together)."""
    windows, sq = shifted
    stack = np.stack([c for c, _ in crops])
    cross = np.einsum("ijkl,nkl->nij", windows, stack)  # the crops are centred: no mean term
    denom = np.sqrt(sq[None] * np.array([c_sq for _, c_sq in crops])[:, None, None])
    ok = denom > 0
    corr = np.where(ok, cross / np.where(ok, denom, 1.0), -np.inf).reshape(len(crops), -1).max(axis=1)
    return np.where(np.isfinite(corr), corr, -1.0)


class Leaks(list):
    """The leaked pairs found, and how many images of the second set had more near-identical
    candidates than the exact test looks at (their farther candidates were not tested)."""
    capped: int = 0


def find_leaks(a: Fingerprints, b: Fingerprints, min_corr: float, canvas: Callable[[Any], np.ndarray],
               candidate_corr: float = CANDIDATE_CORRELATION, names: tuple[str, str] = ("gallery", "probe"),
               max_candidates: int = MAX_CANDIDATES) -> Leaks:
    """Image pairs of ``a`` × ``b`` that are the same file or the same picture at pixel level.

    ``a``/``b``: compact fingerprints (Session.pixel_fingerprints); ``canvas(record)``: the grey
    112×112 canvas of one image, decoded again only for candidates. Embedding similarity cannot
    tell a 1-px shift from another photo of the person; pixels can. Thumbnail correlation picks
    candidates without any A × B matrix, at most ``max_candidates`` per image of ``b`` (nearest
    first; ``Leaks.capped`` counts the images that had more); the shift-tolerant full-resolution
    test decides, for all of one image's candidates at once."""
    leaks = Leaks()
    identical = set()
    for i, j in zip(*identical_pairs(a.digests, b.digests)):
        identical.add((int(i), int(j)))
        leaks.append({"kind": "identical", names[0]: str(a.records[i].path), names[1]: str(b.records[j].path)})
    rows_a, rows_b, _, capped = nearest_candidates(a.thumbs, b.thumbs, candidate_corr, max_candidates)
    leaks.capped = len(capped)

    # An a image's side of the test is prepared once and kept for its other pairs (the last 1,024,
    # about 55 KB each): the candidates of one person's frames are mostly the same a images.
    @lru_cache(maxsize=1024)
    def crop_of(row: int):
        try:
            return _centred_crop(canvas(a.records[row]))
        except (DecodeError, OSError):
            return None  # read once, unreadable now: not evidence of a leak

    near = []
    starts = np.flatnonzero(np.r_[True, rows_b[1:] != rows_b[:-1]]) if len(rows_b) else []
    for lo, hi in zip(starts, list(starts[1:]) + [len(rows_b)]):
        j = int(rows_b[lo])
        todo = [int(i) for i in rows_a[lo:hi] if (int(i), j) not in identical]
        crops = [(i, crop_of(i)) for i in todo]
        crops = [(i, c) for i, c in crops if c is not None]
        if not crops:
            continue
        try:
            shifted = _shifted_windows(canvas(b.records[j]))
        except (DecodeError, OSError):
            continue
        for (i, _), c in zip(crops, _correlate_many([c for _, c in crops], shifted)):
            if c >= min_corr:
                near.append((i, j, {"kind": "near-duplicate", names[0]: str(a.records[i].path),
                                    names[1]: str(b.records[j].path), "correlation": round(float(c), 4)}))
    leaks.extend(leak for _, _, leak in sorted(near, key=lambda x: (x[0], x[1])))
    return leaks


def _capped_text(capped: int) -> str:
    return (f"{capped} image(s) had more than {MAX_CANDIDATES} near-identical candidates (frames of one video, "
            "bursts of one camera): the exact leakage test looked at the nearest of them only, so a copy "
            "among the farther ones was not tested")


@register
class SubjectOverlap(Check):
    name = "subject-overlap"
    title = "Gallery vs probe vs training subjects, id sanity, and leaked images"
    params = {"near_duplicate_correlation": 0.995, "max_open_set_share": 0.5}
    conditions = (
        Condition("leaked", Severity.FAILURE,
                  "{leaked_identical} identical and {leaked_near_duplicate} near-duplicate image(s) appear in both "
                  "gallery and probes: scores on them are inflated",
                  [("leaked_identical", ">", 0), ("leaked_near_duplicate", ">", 0)], match="any"),
        Condition("no-shared-subjects", Severity.FAILURE,
                  "no probe subject is enrolled in the gallery: closed-set identification is impossible",
                  [("shared_subjects", "<", 1)]),
        Condition("open-set-share", Severity.WARNING,
                  "{open_set_share:.0%} of probes have no gallery subject (open set): check that subject ids match "
                  "between the roots", [("open_set_share", ">", "max_open_set_share")], unless=("no-shared-subjects",)),
        Condition("id-clashes", Severity.WARNING,
                  "{id_clashes} group(s) of subject ids differ only by zero padding or case", [("id_clashes", ">", 0)]),
        # Judged as leaked gallery × probe images are: the model was fit to the very pictures it is
        # scored on, so every score on them is inflated, whoever the subjects are.
        Condition("trained-on-evaluation-images", Severity.FAILURE,
                  "{train_eval_identical} identical and {train_eval_near_duplicate} near-duplicate training image(s) "
                  "are also evaluation images: scores on them are inflated",
                  [("train_eval_identical", ">", 0), ("train_eval_near_duplicate", ">", 0)], match="any"),
        Condition("trained-on-evaluation", Severity.WARNING,
                  "{train_eval_shared_subjects} evaluation subject(s) were also trained on: the score says little "
                  "about unseen people", [("train_eval_shared_subjects", ">", 0)]),
    )

    def run(self, ctx, params):
        proto = ctx.protocol
        gallery_subj = set(proto.gallery_subjects)
        probe_subj = {s for s in proto.probe_subjects if not is_distractor(s)}
        distractors = sum(map(is_distractor, proto.probe_subjects))  # unenrolled on purpose (--distractors)
        open_probes = sum(s not in gallery_subj and not is_distractor(s) for s in proto.probe_subjects)
        share_open = open_probes / max(len(proto.probes) - distractors, 1)
        all_subj = gallery_subj | probe_subj
        clashes = id_clashes(all_subj)
        per_subject = Counter(r.subject for r in ctx.index.hr)
        single = sorted(s for s, c in per_subject.items() if c == 1)
        leaks = find_leaks(ctx.pixel_fingerprints("gallery"), ctx.pixel_fingerprints("probe_hr"),
                           params["near_duplicate_correlation"], ctx.grey_canvas)
        exact = [x for x in leaks if x["kind"] == "identical"]
        near = [x for x in leaks if x["kind"] == "near-duplicate"]
        metrics = {
            "gallery_subjects": len(gallery_subj), "probe_subjects": len(probe_subj),
            "shared_subjects": len(gallery_subj & probe_subj), "open_set_probes": open_probes,
            "open_set_share": r(share_open), "id_clashes": len(clashes), "single_image_subjects": len(single),
            "leaked_identical": len(exact), "leaked_near_duplicate": len(near),
        }
        if distractors:
            metrics["distractor_probes"] = distractors
        capped = leaks.capped
        findings = []
        if leaks:
            findings.append(Finding(Severity.INFO, "leaked pairs", {"examples": leaks[:5]}))
        if not gallery_subj & probe_subj:
            findings.append(Finding(Severity.INFO, "subject ids on each side", {
                "gallery_examples": sorted(gallery_subj)[:5], "probe_examples": sorted(probe_subj)[:5]}))
        elif open_probes and share_open <= params["max_open_set_share"]:
            findings.append(Finding(Severity.INFO, f"{open_probes} probe(s) have no gallery subject: "
                                    f"they are scored as open-set (must be rejected)"))
        if clashes:
            findings.append(Finding(Severity.INFO, "subject ids that clash", {"examples": clashes[:5]}))
        if single:
            findings.append(Finding(Severity.INFO, f"{len(single)} subject(s) have a single HR image",
                                    {"subjects": single[:10]}))
        if ctx.train_index is not None:
            train_subj = set(ctx.train_index.subjects)
            shared = sorted((gallery_subj | probe_subj) & train_subj)
            metrics["train_subjects"] = len(train_subj)
            metrics["train_eval_shared_subjects"] = len(shared)
            if shared:
                findings.append(Finding(Severity.INFO, "subjects trained on and evaluated", {"examples": shared[:10]}))
            train = ctx.train_fingerprints()
            searches = [find_leaks(train, ctx.pixel_fingerprints(view), params["near_duplicate_correlation"],
                                   ctx.grey_canvas, names=("train", side))
                        for view, side in (("gallery", "gallery"), ("probe_hr", "probe"))]
            train_leaks = [leak for found in searches for leak in found]
            capped += sum(found.capped for found in searches)
            metrics["train_eval_identical"] = sum(x["kind"] == "identical" for x in train_leaks)
            metrics["train_eval_near_duplicate"] = len(train_leaks) - metrics["train_eval_identical"]
            if train_leaks:
                findings.append(Finding(Severity.INFO, "training images that are evaluation images",
                                        {"examples": train_leaks[:5]}))
        summary = f"{len(gallery_subj & probe_subj)} of {len(probe_subj)} probe subjects enrolled; no leaked images"
        if capped:  # never a silent "no leak": say which images were not searched to the end
            metrics["leak_search_capped"] = capped
            summary += f" among the {MAX_CANDIDATES} nearest candidates of each image"
            findings.append(Finding(Severity.INFO, _capped_text(capped)))
        if ctx.train_index is not None:
            summary += " (training images included)"
        data = {"headline": ["shared_subjects", "open_set_share", "leaked_identical", "leaked_near_duplicate"]}
        if leaks:
            data["faces"] = [strip("Leaked pairs", "the same picture in the gallery and among the probes", [
                (leak["kind"], [tile(ctx.thumbnail_file(leak["gallery"]), "gallery"),
                                tile(ctx.thumbnail_file(leak["probe"]), "probe")]) for leak in leaks[:6]])]
        if ctx.train_index is not None and train_leaks:
            rows = []
            for leak in train_leaks[:6]:
                side = "gallery" if "gallery" in leak else "probe"
                rows.append((leak["kind"], [tile(ctx.thumbnail_file(leak["train"]), "train"),
                                            tile(ctx.thumbnail_file(leak[side]), side)]))
            data.setdefault("faces", []).append(
                strip("Training images among the evaluation images", "the same picture in training and evaluation",
                      rows))
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data)
