"""Label noise: enrolled images that look like another person, probes that look like someone else.

Gallery (``gallery_label_scores``): each enrolled image against its own person's template built
without it — leave-one-out: the mean of the person's *other* L2-normalised embeddings,
renormalised, as protocols.gallery builds templates — and against every other person's full
template. An image whose best other template beats its own leave-one-out template by more than a
margin is a suspect: a swapped file, a wrong folder. The own score is a dot product per image
(the person's sum minus the image, no template rebuilt); the best other template comes from
chunked float32 matrix products on the run's device (CHUNK_CELLS scores a block, the image's own
column masked), so no image × template matrix is held and a 100k-image gallery costs what the
probe matching pass costs for as many probes. A person with one image has no leave-one-out
template: that image is not scored (NaN).

``rank1_without``: the rank-1 the probes would reach with some gallery images left out of their
templates (the suspects dropped): exact, from the matching pass's genuine and best-rival scores,
scoring again only the templates that change and, in full, the probes whose best rival was one
of them.

Probes (``possible_mislabels``): a probe whose best template is another person's, with a score
that person's own probes typically reach, while its own score lies far below its own person's
typical genuine score, reads as a photo of the other person filed under the wrong name rather
than a model error (a model error scores its own person low *and* the rival modestly).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facediag.metrics.identification import as_labels, l2_normalize, subject_sums

CHUNK_CELLS = 1 << 23  # image x template scores a block (32 MB of float32), as protocols.matching


@dataclass(frozen=True, eq=False)
class GalleryLabelScores:
    """Per enrolled image (rows of the embeddings given), and the templates' ingredients."""

    template_subjects: np.ndarray  # [S] str, sorted (the templates' order in protocols.gallery)
    own: np.ndarray                # int [N]: column of the image's own subject
    own_loo: np.ndarray            # float64 [N]: cosine to the own template without it; NaN: the subject has one image
    other: np.ndarray              # float64 [N]: best cosine to another subject's template; NaN: no other subject
    other_col: np.ndarray          # int [N]: that subject's column (-1: none)
    sums: np.ndarray               # float [S, D]: each subject's sum of L2-normalised embeddings
    counts: np.ndarray             # int [S]: images per subject

    @property
    def margin(self) -> np.ndarray:
        """other − own_loo: above 0, the image is closer to another person than to its own."""
        return self.other - self.own_loo

    def suspects(self, margin: float) -> np.ndarray:
        """Rows whose best other template beats the own leave-one-out template by more than ``margin``,
        the clearest first."""
        m = self.margin
        rows = np.flatnonzero(np.nan_to_num(m, nan=-np.inf) > margin)
        return rows[np.argsort(-m[rows], kind="stable")]


def gallery_label_scores(emb: np.ndarray, subjects, *, device: str | torch.device = "cpu",
                         chunk_cells: int = CHUNK_CELLS) -> GalleryLabelScores:
    """Leave-one-out own scores and best other-template scores of the enrolled images ``emb``
    [N, D] (raw or normalised; finite rows only) of ``subjects`` [N]."""
    g = np.ascontiguousarray(l2_normalize(emb), dtype=np.float32)
    subjects = as_labels(subjects)
    uniq, sums, counts = subject_sums(g, subjects)
    templates = l2_normalize(sums).astype(np.float32)
    own = np.searchsorted(uniq, subjects)
    n, s = len(g), len(uniq)
    norm = np.linalg.norm(sums.astype(np.float64), axis=1)  # ‖S_c‖
    own_loo = np.full(n, np.nan)
    other = np.full(n, np.nan)
    other_col = np.full(n, -1, np.int64)
    dev = torch.device(device)
    tmpl = torch.as_tensor(templates, device=dev)
    step = max(1, chunk_cells // max(s, 1))
    for a in range(0, n, step):
        b = min(a + step, n)
        oc = own[a:b]
        rows, cols = torch.arange(b - a, device=dev), torch.as_tensor(oc, device=dev)
        scores = torch.as_tensor(g[a:b], device=dev) @ tmpl.T
        # The own template's score, read before it is masked, gives g·S_c = (g·T_c)‖S_c‖ and so the
        # leave-one-out score g·(S_c − g)/‖S_c − g‖ (‖g‖ = 1): no template rebuilt per image.
        dot = scores[rows, cols].double().cpu().numpy() * norm[oc]
        rest = np.sqrt(np.maximum(norm[oc] ** 2 - 2 * dot + 1, 0))
        own_loo[a:b] = np.where((counts[oc] >= 2) & (rest > 1e-6), (dot - 1) / np.maximum(rest, 1e-6), np.nan)
        if s < 2:
            continue
        scores[rows, cols] = -torch.inf
        best, col = scores.max(dim=1)
        other[a:b] = best.double().cpu().numpy()
        other_col[a:b] = col.cpu().numpy()
    return GalleryLabelScores(uniq, own, own_loo, other, other_col, sums, counts)


def rank1_without(ev, scores: GalleryLabelScores, emb: np.ndarray, drop, *,
                  device: str | torch.device = "cpu", chunk_cells: int = CHUNK_CELLS) -> float | None:
    """Rank-1 of ``ev``'s mated probes (a protocols.gallery.Evaluation of the gallery ``emb`` [N, D]
    that ``scores`` were computed from) with the gallery rows ``drop`` left out of their templates.
    A person left with no image has no template: its probes miss and it is nobody's rival. Ties
    count against the probe, as in the matching pass."""
    mt = ev.matching
    mated = np.flatnonzero(mt.mated)
    if not len(mated):
        return None
    drop = np.unique(np.asarray(drop, np.int64))
    if not len(drop):
        return float(np.mean(mt.ranks[mated] == 1))
    if not np.array_equal(ev.template_subjects, scores.template_subjects):
        raise ValueError("the evaluation's templates and the gallery scores are not of the same subjects")
    changed, inverse = np.unique(scores.own[drop], return_inverse=True)
    removed = np.zeros((len(changed), scores.sums.shape[1]))
    np.add.at(removed, inverse, l2_normalize(emb[drop]))
    gone = scores.counts[changed] - np.bincount(inverse, minlength=len(changed)) == 0
    new = l2_normalize(scores.sums[changed] - removed).astype(np.float32)
    new[gone] = np.nan  # scored -inf below: a template no longer there
    probes, own = ev.probe_emb[mated], mt.own[mated]
    genuine, rival, rival_score = mt.genuine[mated], mt.rival[mated], mt.rival_score[mated]
    pos = np.searchsorted(changed, own)
    pos = np.where((pos < len(changed)) & (changed[np.minimum(pos, len(changed) - 1)] == own), pos, -1)
    own_new = genuine.astype(np.float64).copy()
    best_other = np.full(len(mated), np.nan)
    step = max(1, chunk_cells // len(changed))
    for a in range(0, len(mated), step):  # the changed templates against every mated probe
        b = min(a + step, len(mated))
        x = np.nan_to_num(np.asarray(probes[a:b], np.float32) @ new.T, nan=-np.inf).astype(np.float64)
        r = np.arange(b - a)
        here = pos[a:b] >= 0
        own_new[a:b] = np.where(here, x[r, np.maximum(pos[a:b], 0)], own_new[a:b])
        x[r[here], pos[a:b][here]] = -np.inf
        best_other[a:b] = np.maximum(rival_score[a:b], x.max(axis=1))
    # Probes whose best rival changed: their best other template may now be any; score them in full.
    again = np.flatnonzero(np.isin(rival, changed))
    if len(again):
        templates = np.array(ev.templates, np.float32)
        templates[changed] = new
        dev = torch.device(device)
        tmpl = torch.as_tensor(np.nan_to_num(templates, nan=0.0), device=dev)
        gone_cols = torch.as_tensor(changed[gone], device=dev)
        step = max(1, chunk_cells // len(templates))
        for a in range(0, len(again), step):
            rows = again[a:a + step]
            s = torch.as_tensor(np.ascontiguousarray(probes[rows], np.float32), device=dev) @ tmpl.T
            s[:, gone_cols] = -torch.inf
            s[torch.arange(len(rows), device=dev), torch.as_tensor(own[rows], device=dev)] = -torch.inf
            best_other[rows] = s.max(dim=1).values.double().cpu().numpy()
    return float(np.mean(own_new > best_other))


def possible_mislabels(subjects, genuine: np.ndarray, probe_subjects, probe_genuine: np.ndarray,
                       rival_subjects, rival_score: np.ndarray, *, min_drop: float, rival_within: float):
    """Which probes read as another person's photo: a mask over the probes (``probe_subjects``,
    their own-template scores ``probe_genuine``, their best other template's subject and score),
    and the lookup of each person's typical genuine score, read over ``subjects`` / ``genuine``
    (every mated probe).

    A probe is a possible mislabel when its best other template beats its own, its own score lies
    more than ``min_drop`` below its person's typical genuine score, and the other template's score
    is within ``rival_within`` of that person's typical genuine score: it matches the other person
    as well as that person's own probes do. A model error scores its own person low too, but the
    rival only modestly."""
    typical = typical_scores(subjects, genuine)
    genuine = np.asarray(probe_genuine, np.float64)
    rival_score = np.asarray(rival_score, np.float64)
    with np.errstate(invalid="ignore"):
        flag = ((rival_score > genuine) & (genuine < typical(probe_subjects) - min_drop)
                & (rival_score >= typical(rival_subjects) - rival_within))
    return flag, typical


def typical_scores(subjects, values: np.ndarray, min_rows: int = 3):
    """A lookup ``subjects -> typical value``: the median of ``values`` over each subject's rows where
    it has at least ``min_rows`` (one outlier cannot move it), else the median over every row
    (vectorised: one sort, one search)."""
    subjects = as_labels(subjects)
    values = np.asarray(values, np.float64)
    uniq, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    overall = float(np.median(values)) if len(values) else np.nan
    ordered = values[np.lexsort((values, inverse))]
    start = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    med = (ordered[start + (counts - 1) // 2] + ordered[start + counts // 2]) / 2 if len(values) else np.zeros(0)
    med = np.where(counts >= min_rows, med, overall)

    def lookup(names) -> np.ndarray:
        names = as_labels(names)
        if not len(uniq):
            return np.full(len(names), np.nan)
        pos = np.minimum(np.searchsorted(uniq, names), len(uniq) - 1)
        return np.where(uniq[pos] == names, med[pos], overall)
    return lookup
