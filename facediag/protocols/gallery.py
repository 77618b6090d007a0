"""The shared gallery-matching evaluation of one model: templates, probe scores, paired scores.

Everything that judges a model by gallery matching — the checks, the trainer's validation,
bench and compare — starts from an Evaluation built here, so they all mean the same thing
by "rank-1", "genuine" and "paired".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facediag.metrics.identification import build_templates, l2_normalize, threshold_accuracy_from
from facediag.metrics.streaming import ImpostorScores
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.protocols.matching import Matching, match


@dataclass
class Evaluation:
    """The embeddings of one model on the protocol; scores are never held as a matrix: the
    chunked matching pass (protocols.matching) runs once, on first use, and keeps per-probe
    numbers and the impostor summary."""

    template_subjects: np.ndarray  # [S] str, sorted
    templates: np.ndarray  # [S, D] mean of L2-normalised gallery embeddings, renormalised
    gallery_counts: dict[str, int]  # images enrolled per subject
    probe_subjects: np.ndarray  # [P] str (valid probes only)
    probe_rows: np.ndarray  # [P] int: index of each row in Protocol.probes
    probe_raw: np.ndarray  # [P, D] raw DSR-probe embeddings
    probe_emb: np.ndarray  # [P, D] L2-normalised
    probe_hr_emb: np.ndarray  # [P, D] L2-normalised embedding of each probe's own HR image (NaN rows: none)
    thresholds: tuple = (DEFAULT_THRESHOLD,)  # false accepts are counted at these in the one pass
    device: str = "cpu"  # where the matching pass computes the scores
    index: str = "exact"  # where its candidate search (rank-k, best score) comes from: protocols.index
    _matching: Matching | None = field(default=None, repr=False)
    _extra_false_accepts: dict = field(default_factory=dict, repr=False)
    _hr: "Evaluation | None" = field(default=None, repr=False)

    @property
    def mated(self) -> np.ndarray:
        """Probes whose subject is enrolled (closed-set probes)."""
        return np.isin(self.probe_subjects, self.template_subjects)

    @property
    def has_pairs(self) -> np.ndarray:
        return ~np.isnan(self.probe_hr_emb[:, 0]) if len(self.probe_hr_emb) else np.zeros(0, bool)

    @property
    def matching(self) -> Matching:
        if self._matching is None:
            pos = np.minimum(np.searchsorted(self.template_subjects, self.probe_subjects),
                             len(self.template_subjects) - 1)
            own = np.where(self.template_subjects[pos] == self.probe_subjects, pos, -1) if len(pos) else pos
            self._matching = match(self.probe_emb, self.templates, own, self.probe_rows,
                                   thresholds=self.thresholds, device=self.device, index=self.index)
        return self._matching

    @property
    def impostors(self) -> ImpostorScores:
        """Every probe against every template of another subject, as a stream summary (exact
        scores when there are few; see metrics.streaming)."""
        return self.matching.impostors

    def paired_scores(self) -> np.ndarray:
        """cos(DSR_i, HR_i) for probes that have their own HR image: what naive validation reports."""
        m = self.has_pairs
        return np.einsum("ij,ij->i", self.probe_emb[m], self.probe_hr_emb[m])

    def genuine_scores(self) -> np.ndarray:
        """Each mated probe against its own subject's template (a different image of the person)."""
        mt = self.matching
        return mt.genuine[mt.mated]

    def genuine_ranks(self) -> np.ndarray:
        """Per mated probe: the rank of its own template (1 + templates scoring at least as high
        as it, so ties count against the probe); matching.RANK_LIMIT + 1 means beyond it."""
        mt = self.matching
        return mt.ranks[mt.mated]

    def rank1_correct(self) -> np.ndarray:
        """Per mated probe: does its own template score strictly highest? (ties count against)"""
        return self.genuine_ranks() == 1

    def rank1_subjects(self) -> np.ndarray:
        """Per probe (mated or not): the subject of its best template, the name the system would
        give. Its own when that scores strictly highest, else the best rival (ties count against,
        as in rank1_correct)."""
        mt = self.matching
        col = np.where(mt.ranks == 1, mt.own, mt.rival)
        return np.where(col >= 0, self.template_subjects[np.maximum(col, 0)], "")

    def false_accepts(self, threshold: float) -> np.ndarray:
        """Per probe: its impostor pairs scoring >= threshold (exact; a threshold the pass was not
        told about costs one more pass)."""
        counts = self.matching.false_accepts.get(float(threshold))
        if counts is None:
            counts = self._extra_false_accepts.get(float(threshold))
        if counts is None:
            counts = match(self.probe_emb, self.templates, self.matching.own, self.probe_rows,
                           thresholds=(threshold,), device=self.device).false_accepts[float(threshold)]
            self._extra_false_accepts[float(threshold)] = counts
        return counts

    def impostor_subjects(self, probe_ids: np.ndarray) -> np.ndarray:
        """The subject of the probe behind each impostor pair (the cluster a bootstrap resamples),
        from the pair's probe id (its protocol row)."""
        return self.probe_subjects[np.searchsorted(self.probe_rows, probe_ids)]

    def subset(self, probe_rows: np.ndarray, template_subjects: np.ndarray) -> "Evaluation":
        """The same evaluation over some probes (by protocol row) and some templates (by subject)."""
        if np.array_equal(probe_rows, self.probe_rows) and np.array_equal(template_subjects, self.template_subjects):
            return self
        ri = np.searchsorted(self.probe_rows, probe_rows)  # probe_rows is increasing (protocol order)
        ci = np.searchsorted(self.template_subjects, template_subjects)  # template_subjects is sorted
        return Evaluation(self.template_subjects[ci], self.templates[ci],
                          {s: self.gallery_counts[s] for s in self.template_subjects[ci]}, self.probe_subjects[ri],
                          self.probe_rows[ri], self.probe_raw[ri], self.probe_emb[ri], self.probe_hr_emb[ri],
                          self.thresholds, self.device, self.index)

    def hr_probes(self) -> "Evaluation":
        """The same probes at full resolution (their own HR images): what DSR costs, by difference.
        Built once: the checks that ask (weights-integrity, pair-gap, identification) share its
        matching pass."""
        if self._hr is None:
            m = self.has_pairs
            emb = self.probe_hr_emb[m]
            self._hr = Evaluation(self.template_subjects, self.templates, self.gallery_counts, self.probe_subjects[m],
                                  self.probe_rows[m], emb, emb, emb, self.thresholds, self.device, self.index)
        return self._hr


def build_evaluation(gallery_raw: np.ndarray, gallery_subjects, probe_raw: np.ndarray, probe_subjects,
                     probe_hr_raw: np.ndarray | None = None, probe_rows=None, *,
                     thresholds=(DEFAULT_THRESHOLD,), device: str = "cpu", index: str = "exact") -> Evaluation:
    """From raw embeddings to an Evaluation. Rows with NaN (unreadable images) are left out.
    ``index``: the matching pass's candidate search (protocols.index.INDEXES)."""
    gallery_subjects = np.asarray(gallery_subjects, dtype=str)
    probe_subjects = np.asarray(probe_subjects, dtype=str)
    g_ok = np.isfinite(gallery_raw).all(axis=1)
    p_ok = np.isfinite(probe_raw).all(axis=1)
    g_norm = l2_normalize(_rows(gallery_raw, g_ok))
    t_subj, templates = build_templates(g_norm, gallery_subjects[g_ok])
    subj, counts = np.unique(gallery_subjects[g_ok], return_counts=True)
    kept_raw = _rows(probe_raw, p_ok)
    probe_emb = l2_normalize(kept_raw)
    if probe_hr_raw is None:  # no probe has its HR image: one NaN row seen P times, not P rows
        hr = np.broadcast_to(np.array(np.nan, probe_emb.dtype), probe_emb.shape)
    else:
        hr_raw = _rows(probe_hr_raw, p_ok)
        hr = np.full_like(hr_raw, np.nan)
        ok = np.isfinite(hr_raw).all(axis=1)
        hr[ok] = l2_normalize(hr_raw[ok])
    rows = np.arange(len(probe_raw)) if probe_rows is None else np.asarray(probe_rows)
    return Evaluation(
        template_subjects=t_subj,
        templates=templates,
        gallery_counts={str(s): int(c) for s, c in zip(subj, counts)},
        probe_subjects=probe_subjects[p_ok],
        probe_rows=rows[p_ok],
        probe_raw=kept_raw,
        probe_emb=probe_emb,
        probe_hr_emb=hr,
        thresholds=tuple(thresholds),
        device=str(device),
        index=index,
    )


def _rows(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """x's rows where keep is true; x itself (no copy: a probe set can be gigabytes) when all are."""
    return x if keep.all() else x[keep]


def headline_metrics(ev: Evaluation, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """The few numbers every report leads with; the trainer's validation uses the same ones.

    ``accuracy_at_threshold``: mated probes whose best match is right AND scores >= threshold.
    ``far_at_threshold``: impostor (probe, other-subject template) pairs scoring >= threshold.
    """
    genuine, impostor, paired = ev.genuine_scores(), ev.impostors, ev.paired_scores()
    at = threshold_accuracy_at(ev, threshold) if ev.mated.any() else None
    out = {
        "rank1": _mean(ev.rank1_correct()),
        "accuracy_at_threshold": at.accuracy if at else None,
        "far_at_threshold": at.false_accept_rate if at else None,
        "genuine_mean": _mean(genuine),
        "impostor_mean": impostor.mean if impostor.n else None,
        "paired_mean": _mean(paired),
        "threshold": float(threshold),
        "n_probes": int(ev.mated.sum()),
        "n_subjects": int(len(ev.template_subjects)),
    }
    out["pair_gap"] = (out["paired_mean"] - out["genuine_mean"]
                       if out["paired_mean"] is not None and out["genuine_mean"] is not None else None)
    return out


def threshold_accuracy_at(ev: Evaluation, threshold: float):
    """metrics.identification.ThresholdResult of an evaluation, from its matching pass."""
    mt = ev.matching
    return threshold_accuracy_from(mt.summary(), threshold, int(ev.false_accepts(threshold).sum()),
                                   int(mt.impostor_count.sum()))


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else None
