"""Score files out of a run and into facediag's metrics: ``facediag scores`` and ``facediag bench scores``.

:func:`write_run_scores` writes the comparisons run-all's verification makes: every readable probe
(through the DSR, as run-all's ``evaluation``) against every person's template (the mean of the
person's L2-normalised gallery embeddings, renormalised), cosine in float32 (the matching pass's
arithmetic), a block of probes at a time, so no score matrix is held. A comparison is genuine
when the probe's person is the template's. The embeddings come from the engine and its cache, as
run-all's do: a run-all over the same data and weights before or after embeds nothing again.

:func:`bench_scores` reads a score file any system wrote (facediag.scores: bob's 4- and 5-column
and CSV files, OpenBR's .mtx + .mask, pyeer's lists) and computes facediag's verification metrics
(ROC, EER, TAR@FAR with the support rule, DET) and, where the file is a search of a gallery
(every probe against every entry), closed-set identification (CMC) and, when some probes have
no mate, the open set (DIR at false-alarm rate), as a BenchReport of kind ``scores``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from facediag.errors import FacediagError
from facediag.metrics.distribution import dprime_from_moments
from facediag.metrics.identification import closed_set_from, impostors_needed, open_set_from
from facediag.protocols.gallery import Evaluation
from facediag.results import BenchReport
from facediag.runner import checkpoint_info, settle_alignment
from facediag.scores import DESCRIPTIONS, ScoreBlock, ScoreSummary, open_scores, summarise, write_scores
from facediag.session import Session, SessionConfig

DEFAULT_FARS = (1e-1, 1e-2, 1e-3, 1e-4)
CMC_RANKS = (1, 5, 10, 20)
CMC_DEPTH = 50          # the CMC curve a report keeps
OPEN_SET_FPIRS = (1e-2, 1e-1)
BLOCK_CELLS = 1 << 20   # scores per written block (a block's text is a few tens of MB at most)


# ------------------------------------------------------------------------------------ writing
def probe_labels(session: Session, ev: Evaluation) -> list[str]:
    """Each evaluated probe's file relative to the root it came from (the test label bob groups a
    search by); full paths where two would read alike, the protocol row added where even they do."""
    data = session.data
    paths = data.view_paths("probe_dsr")
    roots = [i.root if i.root.is_dir() else i.root.parent
             for i in (data.index, data.probe_index, data.distractor_index) if i is not None]

    def relative(path: str) -> str:
        for root in roots:
            rel = os.path.relpath(path, root)
            if not rel.startswith(".."):
                return rel
        return path

    rows = ev.probe_rows.tolist()
    labels = [relative(paths[r]) for r in rows]
    if len(set(labels)) < len(labels):
        labels = [paths[r] for r in rows]
    if len(set(labels)) < len(labels):
        labels = [f"{p}#{r}" for p, r in zip(labels, rows)]
    return labels


def score_blocks(ev: Evaluation, labels: Sequence[str], device: str | torch.device = "cpu",
                 block_cells: int = BLOCK_CELLS) -> Iterator[ScoreBlock]:
    """Every probe of ``ev`` against every template, a block of probes at a time: float32 matrix
    products of the L2-normalised embeddings, as the matching pass computes them."""
    device = torch.device(device)
    templates = torch.as_tensor(np.ascontiguousarray(ev.templates, dtype=np.float32), device=device)
    step = max(1, block_cells // max(len(ev.templates), 1))
    for a in range(0, len(ev.probe_emb), step):
        b = min(a + step, len(ev.probe_emb))
        probes = torch.as_tensor(np.ascontiguousarray(ev.probe_emb[a:b], dtype=np.float32), device=device)
        yield ScoreBlock(list(labels[a:b]), ev.probe_subjects[a:b], (probes @ templates.T).cpu().numpy())


def write_run_scores(config: SessionConfig, out: str | Path, fmt: str, *,
                     session: Session | None = None) -> dict[str, Any]:
    """Write run-all's verification comparisons for ``config``'s model and data as ``fmt``.

    Parameters
    ----------
    config : SessionConfig
        The model (``weights``, ``card``, ``arch``) and the data, as run-all takes them.
    out : str or Path
        The file (OpenBR: the .mtx, its .mask beside it; pyeer: a folder for the two lists).
    fmt : str
        One of facediag.scores.FORMATS.
    session : Session, optional
        A Session over the same config already built (its embeddings are reused).

    Returns
    -------
    dict
        ``paths`` written, ``comparisons``, ``genuine``, ``impostor``, ``probes``, ``templates``,
        ``unreadable`` (files that could not be used: left out), ``checkpoint``.

    Example::

        write_run_scores(SessionConfig(weights="edgeface_xxs.pt", data="orl_faces"), "orl.txt", "bob4")
    """
    session = session or Session(config)
    session.check_card("model")  # a bad checkpoint or card is bad input: one line before any work
    settle_alignment(session)
    ev = session.evaluation("model")
    if not len(ev.probe_emb):
        raise FacediagError("no probe could be read: nothing to score")
    labels = probe_labels(session, ev)
    paths, n = write_scores(out, fmt, ev.template_subjects, len(ev.probe_emb),
                            score_blocks(ev, labels, session.device))
    genuine = int(np.isin(ev.probe_subjects, ev.template_subjects).sum())
    return {"paths": [str(p) for p in paths], "format": fmt, "comparisons": n, "genuine": genuine,
            "impostor": n - genuine, "probes": len(ev.probe_emb), "templates": len(ev.templates),
            "unreadable": len(session.problems), "checkpoint": checkpoint_info(session.model("model"))}


# ------------------------------------------------------------------------------------ reading
def _curve(x: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in x]


def verification_row(s: ScoreSummary, fars: Sequence[float], threshold: float | None) -> dict[str, Any]:
    """ROC AUC, EER (and its threshold), TAR@FAR, d′, the score means and the ROC/DET curves."""
    v = s.verification(fars)
    g = s.genuine
    imp_mean, imp_var = s.impostor_moments()
    half = 1.0 if s.scale is None else s.scale[1]
    row: dict[str, Any] = {
        "auc": v.auc, "eer": v.eer, "eer_threshold": v.eer_threshold,
        "dprime": dprime_from_moments(float(g.mean()), float(g.var()), s.impostors.mean, s.impostors.var),
        "genuine_mean": float(s.to_file_scale(g.mean())), "impostor_mean": imp_mean,
        "genuine_std": float(g.std() * half), "impostor_std": float(np.sqrt(imp_var)),
        "tar_at_far": {f"{p.far:g}": p.tar for p in v.tar_at_far},
        "threshold_at_far": {f"{p.far:g}": p.threshold for p in v.tar_at_far if p.supported},
        "tar_unsupported": {f"{p.far:g}": p.reason for p in v.tar_at_far if not p.supported},
        "n_genuine": v.n_genuine, "n_impostor": v.n_impostor, "score_resolution": v.score_resolution,
        "auc_error_bound": v.auc_error_bound, "eer_error_bound": v.eer_error_bound,
        "roc": {"fpr": _curve(v.roc_fpr), "tpr": _curve(v.roc_tpr)},
        "det": {"fpr": _curve(v.det_fpr), "fnr": _curve(v.det_fnr)},
    }
    if threshold is not None:
        row["at_threshold"] = _at_threshold(s, threshold)
    return row


def _at_threshold(s: ScoreSummary, threshold: float) -> dict[str, Any]:
    """FMR and FNMR at a given threshold (accept when score >= threshold). A summarised stream
    counts its impostors exactly only at a kept score or a bin edge; elsewhere FMR is None."""
    t = threshold if s.scale is None else (threshold - s.scale[0]) / s.scale[1]
    false_matches = s.impostors.count_at_least(t)
    return {"threshold": threshold, "fmr": None if false_matches is None else false_matches / s.impostors.n,
            "false_matches": false_matches, "fnmr": float((s.genuine < t).mean())}


def identification_row(s: ScoreSummary, threshold: float) -> dict[str, Any] | None:
    """Closed-set rank-k and CMC over the mated searches; the open set (DIR at false-alarm rates,
    TPIR and FPIR at ``threshold``) when some searches have no mate. None when the file is no search."""
    m = s.search
    if m is None:
        return None
    closed = closed_set_from(m, s.probe_identities, ranks=CMC_RANKS)
    out: dict[str, Any] = {
        **{f"rank{k}": v for k, v in closed.rank_accuracy.items() if k <= m.n_gallery},
        "cmc": _curve(closed.cmc[:CMC_DEPTH]), "n_searches": int(len(m.mated)), "n_mated": int(m.mated.sum()),
        "n_nonmated": int((~m.mated).sum()), "n_gallery": int(m.n_gallery),
        "worst_subjects": [list(w) for w in closed.worst_subjects], "open_set": None,
    }
    if (~m.mated).any():
        grid = np.linspace(s.score_min, s.score_max, 201)
        osr = open_set_from(m, grid, threshold=threshold, fars=OPEN_SET_FPIRS)
        refused = {f"{f:g}": f"FPIR {f:g} needs >= {impostors_needed(f)} non-mated searches (n·FPIR >= 10); only "
                             f"{osr.n_nonmated} available" for f, v in osr.dir_at_false_alarm.items() if v is None}
        out["open_set"] = {"threshold": threshold, "tpir": osr.dir, "fpir": osr.false_alarm_rate,
                           "tpir_at_fpir": {f"{f:g}": v for f, v in osr.dir_at_false_alarm.items()},
                           "tpir_unsupported": refused,
                           "fpir_curve": _curve(osr.curve_false_alarm_rate),
                           "fnir_curve": _curve(1.0 - osr.curve_dir)}
    return out


def describe(s: ScoreSummary) -> dict[str, Any]:
    """What a report says of the file: its format, files, counts and score range."""
    return {"format": s.fmt, "format_description": DESCRIPTIONS[s.fmt], "files": list(s.paths),
            "comparisons": s.n_comparisons, "genuine": len(s.genuine), "impostor": s.impostors.n,
            "probes": s.n_probes, "gallery_entries": s.n_entries, "ignored": s.ignored, "nan": s.nan,
            "score_min": s.score_min, "score_max": s.score_max, "impostors_kept": s.impostors.exact}


def _notes(s: ScoreSummary, threshold_given: bool) -> list[str]:
    notes = []
    if s.search is None:
        notes.append(f"identification not computed: {s.no_search}")
    if s.nan:
        notes.append(f"{s.nan} NaN score(s) left out, as OpenBR's evaluation leaves them out")
    if not s.impostors.exact:
        notes.append(f"{s.impostors.n:,} impostor scores summarised (a histogram of bin width "
                     f"{s.impostors.resolution * (1.0 if s.scale is None else s.scale[1]):.2g} on the file's scale, "
                     f"the top {len(s.impostors.top):,} exact): AUC and EER are bounded by auc_error_bound and "
                     "eer_error_bound" + ("; the scores were read on an affine map of their range onto [-1, 1], "
                                          "thresholds mapped back" if s.scale is not None else ""))
    if s.search is not None and (~s.search.mated).any() and not threshold_given:
        notes.append("open set at the EER threshold (no --threshold given)")
    return notes


def bench_scores(path: str | Path, fmt: str | None = None, *, impostors: str | Path | None = None,
                 mask: str | Path | None = None, fars: Sequence[float] = DEFAULT_FARS,
                 threshold: float | None = None, command: str | None = None,
                 exact_limit: int | None = None) -> BenchReport:
    """facediag's metrics from a score file any system wrote.

    Parameters
    ----------
    path : str or Path
        The score file (OpenBR: the .mtx; pyeer: the genuine list, or a folder holding both lists).
    fmt : str, optional
        bob4, bob5, bob-csv, openbr or pyeer (None: told from the file, facediag.scores.detect_format).
    impostors, mask : str or Path, optional
        pyeer's impostor list; OpenBR's mask (default: the .mtx's name ending in .mask).
    fars : sequence of float
        TAR is reported at these FARs where the impostor count supports them (n·FAR >= 10).
    threshold : float, optional
        An operating threshold on the file's scale: FMR and FNMR there, and the open set's TPIR and
        FPIR (default for the open set: the EER threshold).
    exact_limit : int, optional
        Impostor scores kept exactly up to this many (metrics.streaming.EXACT_LIMIT).

    Returns
    -------
    BenchReport
        Kind ``scores``: one row (verification, and identification where the file allows).

    Example::

        report = bench_scores("scores-dev.txt")            # bob 4-column, told from its first line
        report.rows[0]["eer"], report.rows[0]["identification"]["rank1"]
    """
    if any(not 0 < f < 1 for f in fars):
        raise FacediagError(f"FAR targets must lie in (0, 1): {', '.join(f'{f:g}' for f in fars)}")
    s = summarise(open_scores(path, fmt, impostors=impostors, mask=mask), exact_limit=exact_limit)
    row: dict[str, Any] = {"file": Path(path).name, "format": s.fmt, **verification_row(s, fars, threshold)}
    ident = identification_row(s, row["eer_threshold"] if threshold is None else threshold)
    row["identification"] = ident
    row["no_identification"] = s.no_search or None
    settings = {"format": s.fmt, "fars": list(fars), "threshold": threshold, "cmc_ranks": list(CMC_RANKS),
                "open_set_fpirs": list(OPEN_SET_FPIRS)}
    return BenchReport(kind="scores", command=command or "facediag.bench.scores.bench_scores(...)", checkpoints={},
                       settings=settings, rows=[row], dataset=describe(s), notes=_notes(s, threshold is not None))


__all__ = ["DEFAULT_FARS", "bench_scores", "describe", "identification_row", "probe_labels", "score_blocks",
           "verification_row", "write_run_scores"]
