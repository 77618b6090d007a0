"""The shared gallery-matching evaluation of one model: templates, probe scores, paired scores.

Everything that judges a model by gallery matching — the checks, the trainer's validation,
bench and compare — starts from an Evaluation built here, so they all mean the same thing
by "rank-1", "genuine" and "paired".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.metrics.identification import build_templates, closed_set, l2_normalize, threshold_accuracy


@dataclass
class Evaluation:
    template_subjects: np.ndarray  # [S] str, sorted
    templates: np.ndarray  # [S, D] mean of L2-normalised gallery embeddings, renormalised
    gallery_counts: dict[str, int]  # images enrolled per subject
    probe_subjects: np.ndarray  # [P] str (valid probes only)
    probe_rows: np.ndarray  # [P] int: index of each row in Protocol.probes
    probe_raw: np.ndarray  # [P, D] raw DSR-probe embeddings
    probe_emb: np.ndarray  # [P, D] L2-normalised
    probe_hr_emb: np.ndarray  # [P, D] L2-normalised embedding of each probe's own HR image (NaN rows: none)
    scores: np.ndarray  # [P, S] cosine of each probe to each template

    @property
    def mated(self) -> np.ndarray:
        """Probes whose subject is enrolled (closed-set probes)."""
        return np.isin(self.probe_subjects, self.template_subjects)

    @property
    def has_pairs(self) -> np.ndarray:
        return ~np.isnan(self.probe_hr_emb[:, 0]) if len(self.probe_hr_emb) else np.zeros(0, bool)

    def paired_scores(self) -> np.ndarray:
        """cos(DSR_i, HR_i) for probes that have their own HR image: what naive validation reports."""
        m = self.has_pairs
        return np.einsum("ij,ij->i", self.probe_emb[m], self.probe_hr_emb[m])

    def genuine_scores(self) -> np.ndarray:
        """Each mated probe against its own subject's template (a different image of the person)."""
        m = self.mated
        cols = np.searchsorted(self.template_subjects, self.probe_subjects[m])
        return self.scores[np.flatnonzero(m), cols]

    def impostor_scores(self) -> np.ndarray:
        """Every probe against every template of another subject."""
        other = self.probe_subjects[:, None] != self.template_subjects[None, :]
        return self.scores[other]

    def genuine_ranks(self) -> np.ndarray:
        """Per mated probe: the rank of its own template (1 + templates scoring at least as high
        as it, so ties count against the probe)."""
        m = self.mated
        rows = self.scores[m]
        own = rows[np.arange(len(rows)), np.searchsorted(self.template_subjects, self.probe_subjects[m])]
        return (rows >= own[:, None]).sum(axis=1)

    def subset(self, probe_rows: np.ndarray, template_subjects: np.ndarray) -> "Evaluation":
        """The same evaluation over some probes (by protocol row) and some templates (by subject)."""
        ri = np.searchsorted(self.probe_rows, probe_rows)  # probe_rows is increasing (protocol order)
        ci = np.searchsorted(self.template_subjects, template_subjects)  # template_subjects is sorted
        return Evaluation(self.template_subjects[ci], self.templates[ci],
                          {s: self.gallery_counts[s] for s in self.template_subjects[ci]}, self.probe_subjects[ri],
                          self.probe_rows[ri], self.probe_raw[ri], self.probe_emb[ri], self.probe_hr_emb[ri],
                          self.scores[np.ix_(ri, ci)])

    def rank1_correct(self) -> np.ndarray:
        """Per mated probe: does its own template score strictly highest? (ties count against)"""
        if not self.mated.any():
            return np.zeros(0, bool)
        return closed_set(self.scores, self.probe_subjects, self.template_subjects).correct_rank1

    def hr_probes(self) -> "Evaluation":
        """The same probes at full resolution (their own HR images): what DSR costs, by difference."""
        m = self.has_pairs
        emb = self.probe_hr_emb[m]
        return Evaluation(self.template_subjects, self.templates, self.gallery_counts, self.probe_subjects[m],
                          self.probe_rows[m], emb, emb, emb, emb @ self.templates.T)


def build_evaluation(gallery_raw: np.ndarray, gallery_subjects, probe_raw: np.ndarray, probe_subjects,
                     probe_hr_raw: np.ndarray | None = None, probe_rows=None) -> Evaluation:
    """From raw embeddings to an Evaluation. Rows with NaN (unreadable images) are left out."""
    gallery_subjects = np.asarray(gallery_subjects, dtype=str)
    probe_subjects = np.asarray(probe_subjects, dtype=str)
    g_ok = np.isfinite(gallery_raw).all(axis=1)
    p_ok = np.isfinite(probe_raw).all(axis=1)
    g_norm = l2_normalize(gallery_raw[g_ok])
    t_subj, templates = build_templates(g_norm, gallery_subjects[g_ok])
    subj, counts = np.unique(gallery_subjects[g_ok], return_counts=True)
    probe_emb = l2_normalize(probe_raw[p_ok])
    if probe_hr_raw is None:
        hr = np.full_like(probe_emb, np.nan)
    else:
        hr_raw = probe_hr_raw[p_ok]
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
        probe_raw=probe_raw[p_ok],
        probe_emb=probe_emb,
        probe_hr_emb=hr,
        scores=probe_emb @ templates.T,
    )


def headline_metrics(ev: Evaluation, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """The few numbers every report leads with; the trainer's validation uses the same ones.

    ``accuracy_at_threshold``: mated probes whose best match is right AND scores >= threshold.
    ``far_at_threshold``: impostor (probe, other-subject template) pairs scoring >= threshold.
    """
    genuine, impostor, paired = ev.genuine_scores(), ev.impostor_scores(), ev.paired_scores()
    at = threshold_accuracy(ev.scores, ev.probe_subjects, ev.template_subjects, threshold) if ev.mated.any() else None
    out = {
        "rank1": _mean(ev.rank1_correct()),
        "accuracy_at_threshold": at.accuracy if at else None,
        "far_at_threshold": at.false_accept_rate if at else None,
        "genuine_mean": _mean(genuine),
        "impostor_mean": _mean(impostor),
        "paired_mean": _mean(paired),
        "threshold": float(threshold),
        "n_probes": int(ev.mated.sum()),
        "n_subjects": int(len(ev.template_subjects)),
    }
    out["pair_gap"] = (out["paired_mean"] - out["genuine_mean"]
                       if out["paired_mean"] is not None and out["genuine_mean"] is not None else None)
    return out


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else None
