"""Template protocols (IJB-B/C): image features -> media -> template features, 1:1 template
pairs and 1:N search, as the reference evaluation (insightface ijb_11.py / ijb_1n.py) builds them.

Image feature = embedding(crop) [+ embedding(mirror crop)], then the reference's switches:
``norm_score`` keeps the feature's norm (the reference's default; off: each image feature is
L2-normalised first) and ``detector_score`` multiplies it by the detector's score. A media's
feature is the mean over its images in the template, a template's the sum over its media,
L2-normalised (the mean and the sum agree after normalising). Scores are cosines.

Memory is bounded: rows arrive in chunks of whole (template, media) groups and are reduced into
the template sums on the spot (:class:`TemplatePooler`); 1:1 pair scores are computed a chunk
of pairs at a time into the impostor stream (metrics.streaming); 1:N is the chunked matching
pass (protocols.matching).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facediag.metrics.identification import closed_set_from, l2_normalize
from facediag.metrics.open_set import tpir_at_fpir
from facediag.metrics.streaming import EXACT_LIMIT, SAMPLE_SIZE, ImpostorScores, ImpostorStream, bin_counts
from facediag.protocols.matching import match

PAIR_CHUNK = 1 << 16     # template pairs scored at a time (two 128 MB gathers of 512-d features)
FPIRS = (1e-2, 1e-1)
RANKS = (1, 5, 10)


def switches_text(flip: bool, norm_score: bool, detector_score: bool) -> str:
    """The reference's three switches (its TestMode F/N/D), as every report names them."""
    flip_text = "on (F1: crop + mirror crop embeddings summed)" if flip else "off (F0)"
    norm_text = ("on (N1: image features keep their norm, the reference default)" if norm_score
                 else "off (N0: each image feature L2-normalised before pooling)")
    detector_text = "on (D1: image features weighted by the detector score)" if detector_score else "off (D0)"
    return f"flip {flip_text}; norm score {norm_text}; detector score {detector_text}"


def image_features(summed: np.ndarray, scores: np.ndarray, *, norm_score: bool = True,
                   detector_score: bool = True) -> np.ndarray:
    """Per-image features [n, D] from the (flip-summed) embeddings [n, D] and detector scores [n]."""
    f = np.asarray(summed, dtype=np.float64)
    if not norm_score:
        f = l2_normalize(f)
    if detector_score:
        f = f * np.asarray(scores, dtype=np.float64)[:, None]
    return f


@dataclass(frozen=True, eq=False)
class TemplateGroups:
    """The rows of a template list ordered by (template, media): each group is one media of
    one template, the unit the reference averages over."""

    templates: np.ndarray      # int64 [T] unique template ids, ascending
    order: np.ndarray          # int64 [N] rows in (template, media) order
    group_starts: np.ndarray   # int64 [G + 1] offsets into ``order`` of each group
    group_template: np.ndarray  # int64 [G] index into ``templates`` of each group

    def chunks(self, rows_per_chunk: int):
        """Slices of ``order`` holding whole groups, about ``rows_per_chunk`` rows each:
        (rows, group index of each row, the groups' templates)."""
        g, n_groups = 0, len(self.group_template)
        while g < n_groups:
            start = self.group_starts[g]
            h = int(np.searchsorted(self.group_starts, start + max(1, rows_per_chunk), side="right")) - 1
            h = max(h, g + 1)
            rows = self.order[start:self.group_starts[h]]
            local = np.repeat(np.arange(h - g), np.diff(self.group_starts[g:h + 1]))
            yield rows, local, self.group_template[g:h]
            g = h


def template_groups(templates, medias) -> TemplateGroups:
    t, m = np.asarray(templates, np.int64), np.asarray(medias, np.int64)
    order = np.lexsort((m, t))
    ts, ms = t[order], m[order]
    new = np.r_[True, (ts[1:] != ts[:-1]) | (ms[1:] != ms[:-1])]
    starts = np.r_[np.flatnonzero(new), len(order)]
    uniq = np.unique(t)
    return TemplateGroups(uniq, order, starts, np.searchsorted(uniq, ts[new]))


class TemplatePooler:
    """Template sums, fed whole (template, media) groups at a time. An unreadable image (NaN
    row) is left out of its media's mean; a media with no readable image is left out of its
    template; a template with none is NaN."""

    def __init__(self, n_templates: int, dim: int):
        self.sums = np.zeros((n_templates, dim), dtype=np.float64)
        self.media = np.zeros(n_templates, dtype=np.int64)    # media that contributed, per template

    def add(self, features: np.ndarray, group: np.ndarray, group_template: np.ndarray) -> None:
        """``features`` [n, D] of n rows; ``group`` [n] local group of each row (0..g-1);
        ``group_template`` [g] template index of each group."""
        ok = np.isfinite(features).all(axis=1)
        g = len(group_template)
        sums = np.zeros((g, features.shape[1]))
        np.add.at(sums, group[ok], features[ok])
        counts = np.bincount(group[ok], minlength=g)
        used = counts > 0
        np.add.at(self.sums, group_template[used], sums[used] / counts[used, None])
        np.add.at(self.media, group_template[used], 1)

    def result(self) -> np.ndarray:
        """L2-normalised template features [T, D]; NaN rows for templates without a readable image."""
        out = l2_normalize(self.sums)
        out[self.media == 0] = np.nan
        return out


def _row_of(templates: np.ndarray, ids: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(templates, ids)
    pos = np.minimum(pos, len(templates) - 1)
    if (templates[pos] != ids).any():
        raise ValueError("a template id is not among the pooled templates")
    return pos


@dataclass(frozen=True, eq=False)
class PairScores:
    genuine: np.ndarray        # float64 [n_genuine] cosine of every usable genuine pair
    impostors: ImpostorScores  # every usable impostor pair, kept or summarised
    n_dropped: int             # pairs with a template that has no readable image


def score_pairs(features: np.ndarray, templates: np.ndarray, t1, t2, label, *, chunk: int = PAIR_CHUNK,
                exact_limit: int = EXACT_LIMIT, sample_size: int = SAMPLE_SIZE) -> PairScores:
    """1:1 cosine of every template pair, a chunk at a time: genuine scores kept, impostor scores
    into the impostor stream (all kept up to ``exact_limit``; beyond, histogram + exact top +
    a sample of every k-th pair)."""
    t1, t2, label = np.asarray(t1), np.asarray(t2), np.asarray(label, bool)
    a, b = _row_of(templates, t1), _row_of(templates, t2)
    usable = np.isfinite(features[:, 0])
    keep = usable[a] & usable[b]
    n_imp = int((keep & ~label).sum())
    stream = ImpostorStream(n_imp, exact_limit=exact_limit, sample_size=sample_size)
    every = 1 if stream.exact else max(1, int(round(1 / stream.keep)))
    genuine = []
    for s in range(0, len(label), chunk):
        sl = slice(s, s + chunk)
        k, lab = keep[sl], label[sl]
        score = np.einsum("ij,ij->i", features[a[sl][k]], features[b[sl][k]])
        ids = np.arange(s, min(s + chunk, len(label)))[k]
        genuine.append(score[lab[k]])
        imp, imp_ids = score[~lab[k]], ids[~lab[k]]
        if stream.exact:
            stream.add_exact(imp, imp_ids, np.zeros_like(imp_ids))
            continue
        stream.add_moments(len(imp), float(imp.sum()), float(np.dot(imp, imp)))
        stream.add_histogram(bin_counts(imp))
        pick = imp_ids % every == 0
        stream.add_sample(imp[pick], imp_ids[pick], np.zeros(int(pick.sum()), np.int64))
        above = imp > stream.floor
        stream.offer_top(imp[above], imp_ids[above], np.zeros(int(above.sum()), np.int64))
    return PairScores(np.concatenate(genuine) if genuine else np.zeros(0), stream.result(), int((~keep).sum()))


def search(features: np.ndarray, templates: np.ndarray, gallery, probes, *, device="cpu",
           fpirs=FPIRS, ranks=RANKS) -> dict:
    """1:N: the probe templates searched against one gallery (one template per subject).

    A probe is mated when its subject is in the gallery. Rank-k over the mated probes (the own
    template strictly highest for rank 1: ties go against the probe). TPIR(t): mated probes
    whose own template ranks first and scores >= t, over all mated probes; FPIR(t): non-mated
    probes whose best score is >= t, over all non-mated probes; TPIR@FPIR at the lowest
    threshold whose FPIR does not exceed the target (supported when n_nonmated·FPIR >= 10)."""
    g_feat, p_feat = features[_row_of(templates, gallery.templates)], features[_row_of(templates, probes.templates)]
    g_ok, p_ok = np.isfinite(g_feat[:, 0]), np.isfinite(p_feat[:, 0])
    g_subjects, p_subjects = gallery.subjects[g_ok], probes.subjects[p_ok]
    order = np.argsort(g_subjects)
    pos = np.minimum(np.searchsorted(g_subjects, p_subjects, sorter=order), max(len(order) - 1, 0))
    own = np.where(g_subjects[order[pos]] == p_subjects, order[pos], -1) if len(order) else np.full(len(p_subjects), -1)
    m = match(p_feat[p_ok], g_feat[g_ok], own, np.flatnonzero(p_ok), device=device)
    summary = m.summary()
    row = {"gallery": gallery.name, "n_gallery": int(g_ok.sum()), "n_probes": int(p_ok.sum()),
           "n_mated": int(summary.mated.sum()), "n_nonmated": int((~summary.mated).sum()),
           "dropped_gallery": int((~g_ok).sum()), "dropped_probes": int((~p_ok).sum())}
    if row["n_mated"]:
        closed = closed_set_from(summary, p_subjects, ranks=ranks)
        row.update({f"rank{k}": v for k, v in closed.rank_accuracy.items()})
    row.update(tpir_at_fpir(summary, fpirs, rank=1))
    return row


__all__ = ["FPIRS", "PairScores", "TemplateGroups", "TemplatePooler", "image_features", "score_pairs", "search",
           "switches_text", "template_groups"]
