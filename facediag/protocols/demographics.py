"""Demographic differentials of one model on the gallery protocol: per-group error rates at one
global threshold, their summaries (metrics.fairness) with subject-bootstrap intervals, and the
paired difference between two models.

A probe belongs to a group through its subject (or its own image, when the groups file says so);
a template through its subject. At a threshold τ, for each attribute (sex, age band, ...):

- FNMR of group g: its mated probes whose genuine score is below τ;
- FMR of group g: impostor pairs (probe, another subject's template) with both sides in g,
  scoring at least τ; the cross-group FMR matrix holds every (probe group, template group) pair;
- the summaries: max/min and max/geometric-mean ratios, FDR and GARBE.

Everything is counted in one chunked pass over the scores (protocols.group_scores). Intervals
resample the probes' subjects within their group (a stratified subject bootstrap; the gallery is
held fixed), the same resamples for every statistic, and for two models on the same probes the
same resamples on both sides, so their difference is paired. A group with fewer subjects or
comparisons than asked is said to be too small and left out of every summary, never read as 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facediag.data.groups import GroupAssignment, subject_name
from facediag.metrics import fairness
from facediag.metrics.identification import threshold_for_far
from facediag.metrics.significance import BootstrapCI
from facediag.protocols.gallery import Evaluation
from facediag.protocols.group_scores import group_pass
from facediag.protocols.resampling import Tested

METHOD = ("one global threshold; FMR per group over impostor pairs with both sides in the group, FNMR over its "
          "genuine pairs; intervals: percentile, stratified subject bootstrap of the probes (the gallery held "
          "fixed); a group without errors: its rate read as 0, and in the ratios as its one-sided Clopper–Pearson "
          "upper bound; FDR = 1 − [α·max ΔFMR + (1 − α)·max ΔFNMR] (de Freitas Pereira & Marcel); GARBE = "
          "α·Gini(FMR) + (1 − α)·Gini(FNMR), Gini with the n/(n − 1) correction (Howard et al.)")
SUMMARIES = ("fdr", "garbe", "fnmr_max_geomean", "fnmr_max_min", "fmr_max_geomean", "fmr_max_min")


@dataclass(frozen=True)
class Settings:
    """How the rates are judged: support, weights and the bootstrap."""

    min_subjects: int = 5     # a group's rate needs this many subjects ...
    min_pairs: int = 30       # ... and this many comparisons
    weight: float = fairness.WEIGHT  # α of FDR and GARBE
    alpha: float = 0.05       # intervals at 1 − alpha; Clopper–Pearson bounds at 1 − alpha, one-sided
    n_boot: int = 1000
    seed: int = 0


@dataclass(frozen=True, eq=False)
class AttributeCounts:
    """One attribute's counts from the pass, per probe subject (unit) and group."""

    name: str
    groups: tuple[str, ...]
    thresholds: tuple[float, ...]
    units: np.ndarray        # str [U]: the probes' subjects
    strata: np.ndarray       # int [U]: each unit's group (its first grouped probe's), -1: none
    fa: np.ndarray           # float [T, U, G]: impostor pairs >= threshold, both sides in the group
    imp: np.ndarray          # float [U, G]: impostor pairs with both sides in the group
    fr: np.ndarray           # float [T, U, G]: mated probes below the threshold
    gen: np.ndarray          # float [U, G]: mated probes
    matrix_fa: np.ndarray    # float [T, G, G]: probe group x template group, impostor pairs >= threshold
    matrix_imp: np.ndarray   # float [G, G]
    enrolled: np.ndarray     # int [G]: templates in the group
    genuine: tuple[np.ndarray, ...]  # per group: its mated probes' genuine scores
    histograms: np.ndarray   # int [G, bins]: within-group impostor scores


def operating_thresholds(ev: Evaluation, operating: float, fmr_target: float | None,
                         dev: dict[str, dict] | None) -> tuple[list[dict], list[str]]:
    """The global thresholds to report at, each with where it comes from, and notes.

    Parameters
    ----------
    ev : Evaluation
    operating : float
        The operating threshold (the suite's, or the model card's).
    fmr_target : float or None
        Also the threshold reaching this FMR over all impostor pairs (NIST's way: comparable
        between models), when the impostor count supports it.
    dev : dict or None
        Thresholds fixed on a development set (Session.dev_thresholds), by criterion.

    Returns
    -------
    (list of dict, list of str)
        ``label``, ``threshold``, ``set``, ``criterion`` (and ``fmr_target``) per threshold; notes.
    """
    out = [{"label": "operating", "threshold": float(operating), "set": "evaluation",
            "criterion": "operating threshold (the suite's or the model card's)"}]
    notes = []
    if fmr_target is not None and ev.impostors.n:
        ft = threshold_for_far(ev.impostors, fmr_target)
        if ft.supported:
            out.append({"label": f"FMR {fmr_target:g}", "threshold": float(ft.threshold), "set": "evaluation",
                        "criterion": f"FMR {fmr_target:g} over all {ft.n_impostor:,} impostor pairs",
                        "fmr_target": fmr_target})
        else:
            notes.append(f"no threshold for FMR {fmr_target:g}: {ft.reason}")
    for key, entry in (dev or {}).items():
        if not isinstance(entry, dict):
            continue
        if not isinstance(entry.get("threshold"), (int, float)):
            notes.append(f"no development-set threshold {key}: {entry.get('reason') or 'none was fixed'}")
            continue
        out.append({"label": f"dev {key}", "threshold": float(entry["threshold"]), "set": entry.get("set", "dev"),
                    "criterion": entry.get("criterion", key),
                    **({"fmr_target": entry["fmr_target"]} if entry.get("fmr_target") is not None else {})})
    return out, notes


def attribute_counts(ev: Evaluation, assignment: GroupAssignment, thresholds) -> list[AttributeCounts]:
    """Every attribute's counts from one chunked pass over the model's scores.

    Parameters
    ----------
    ev : Evaluation
        The model's evaluation (probes, templates).
    assignment : GroupAssignment
        The groups of the protocol's probes and enrolled subjects (data.groups.assign).
    thresholds : sequence of float

    Returns
    -------
    list of AttributeCounts
    """
    thresholds = tuple(float(t) for t in thresholds)
    n_p, n_s = len(ev.probe_subjects), len(ev.template_subjects)
    pos = np.minimum(np.searchsorted(ev.template_subjects, ev.probe_subjects), max(n_s - 1, 0))
    own = np.where(ev.template_subjects[pos] == ev.probe_subjects, pos, -1) if n_s else np.full(n_p, -1)
    probe_groups, template_groups, columns = [], [], 0
    pcols = np.full((n_p, len(assignment.attributes)), -1, dtype=np.int64)
    tcols = np.full((n_s, len(assignment.attributes)), -1, dtype=np.int64)
    for a, groups in enumerate(assignment.groups):
        pg = _local(assignment.probe_values[a][ev.probe_rows], groups)
        tg = _local(np.array([assignment.subject_values[a].get(subject_name(str(s)), "") for s in ev.template_subjects],
                             dtype=object), groups)
        pcols[:, a] = np.where(pg >= 0, pg + columns, -1)
        tcols[:, a] = np.where(tg >= 0, tg + columns, -1)
        probe_groups.append(pg)
        template_groups.append(tg)
        columns += len(groups)
    scores = group_pass(ev.probe_emb, ev.templates, own, pcols, tcols, columns, thresholds, device=ev.device)
    units, unit = np.unique(ev.probe_subjects, return_inverse=True)
    mated = (own >= 0) & np.isfinite(scores.genuine)
    out, col0 = [], 0
    for a, groups in enumerate(assignment.groups):
        out.append(_one_attribute(assignment.attributes[a], groups, thresholds, scores, col0, probe_groups[a],
                                  template_groups[a], own, mated, units, unit))
        col0 += len(groups)
    return out


def _local(values: np.ndarray, groups: tuple[str, ...]) -> np.ndarray:
    """Each value's index in ``groups`` (sorted), -1 for "" or a value not among them."""
    values = np.asarray(values, dtype=object).astype(str)
    g = np.asarray(groups, dtype=str)
    if not len(g):
        return np.full(len(values), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(g, values), len(g) - 1)
    return np.where(g[at] == values, at, -1).astype(np.int64)


def _by_unit(unit: np.ndarray, group: np.ndarray, n_units: int, n_groups: int, weights) -> np.ndarray:
    """Sum of ``weights`` per (unit, group) over probes in a group, [U, G] (float)."""
    keep = group >= 0
    flat = np.bincount(unit[keep] * n_groups + group[keep], weights=np.asarray(weights, dtype=np.float64)[keep],
                       minlength=n_units * n_groups)
    return flat.reshape(n_units, n_groups)


def _one_attribute(name, groups, thresholds, scores, col0, pg, tg, own, mated, units, unit) -> AttributeCounts:
    g_n, u_n, t_n = len(groups), len(units), len(thresholds)
    enrolled = np.bincount(tg[tg >= 0], minlength=g_n)
    own_group = np.where(own >= 0, tg[np.maximum(own, 0)], -1)
    in_group = pg >= 0
    # within the group: the probe's pairs with every template of its group but its own
    idx = np.flatnonzero(in_group)
    within = np.zeros((t_n, len(pg)))
    within[:, idx] = scores.accepts[:, idx, col0 + pg[idx]]
    imp_p = np.where(in_group, enrolled[np.maximum(pg, 0)] - (own_group == pg), 0)
    fa = np.stack([_by_unit(unit, pg, u_n, g_n, within[i]) for i in range(t_n)])
    imp = _by_unit(unit, pg, u_n, g_n, imp_p)
    fr = np.stack([_by_unit(unit, pg, u_n, g_n, mated & (scores.genuine < t)) for t in thresholds])
    gen = _by_unit(unit, pg, u_n, g_n, mated)
    onehot = np.zeros((len(pg), g_n))
    onehot[idx, pg[idx]] = 1.0
    block = scores.accepts[:, :, col0:col0 + g_n].astype(np.float64)
    matrix_fa = np.einsum("pg,tph->tgh", onehot, block)
    own_in = np.zeros((g_n, g_n))
    np.add.at(own_in, (pg[in_group & (own_group >= 0)], own_group[in_group & (own_group >= 0)]), 1.0)
    matrix_imp = onehot.sum(0)[:, None] * enrolled[None, :] - own_in
    strata = np.full(u_n, -1, dtype=np.int64)
    grouped_units, first = np.unique(unit[idx], return_index=True)  # a unit's stratum: its first grouped probe's
    strata[grouped_units] = pg[idx[first]]
    genuine = tuple(scores.genuine[in_group & mated & (pg == g)] for g in range(g_n))
    return AttributeCounts(name, tuple(groups), tuple(thresholds), units, strata, fa, imp, fr, gen, matrix_fa,
                           matrix_imp, enrolled, genuine, scores.histograms[col0:col0 + g_n])


# ------------------------------------------------------------------------------ the rates
@dataclass(frozen=True, eq=False)
class _Rates:
    """One attribute at one threshold, every row a resample (row 0: the data)."""

    fnmr: np.ndarray        # [B+1, G], NaN where the group is too small
    fmr: np.ndarray
    fnmr_floor: np.ndarray  # the ratios' rates: a group without errors at its upper bound
    fmr_floor: np.ndarray
    fr: np.ndarray          # errors and trials per row and group
    gen: np.ndarray
    fa: np.ndarray
    imp: np.ndarray


def _support(c: AttributeCounts, s: Settings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Which groups support an FNMR and an FMR, and why the others do not."""
    subjects = (c.gen > 0).sum(0) if c.gen.size else np.zeros(len(c.groups), int)
    probe_subjects = (c.imp > 0).sum(0) if c.imp.size else np.zeros(len(c.groups), int)
    gen, imp = c.gen.sum(0), c.imp.sum(0)
    fnmr_ok = (subjects >= s.min_subjects) & (gen >= s.min_pairs)
    fmr_ok = (probe_subjects >= s.min_subjects) & (c.enrolled >= 2) & (imp >= s.min_pairs)
    why = []
    for g, name in enumerate(c.groups):
        if not (fnmr_ok[g] and fmr_ok[g]):
            parts = []
            if not fnmr_ok[g]:
                parts.append(f"FNMR from {int(subjects[g])} subject(s), {int(gen[g])} genuine pair(s)")
            if not fmr_ok[g]:
                parts.append(f"FMR from {int(probe_subjects[g])} probe subject(s), {int(c.enrolled[g])} enrolled, "
                             f"{int(imp[g])} impostor pair(s)")
            why.append(f"{c.name}={name} too small to support a rate ({'; '.join(parts)}; a rate needs "
                       f"{s.min_subjects} subjects and {s.min_pairs} comparisons): left out of every summary")
    return fnmr_ok, fmr_ok, why


def _rates(c: AttributeCounts, t: int, draws: np.ndarray, fnmr_ok, fmr_ok, s: Settings) -> _Rates:
    w = draws.astype(np.float64)
    fr, gen, fa, imp = w @ c.fr[t], w @ c.gen, w @ c.fa[t], w @ c.imp
    fnmr = np.where(fnmr_ok, fairness.rates(fr, gen), np.nan)
    fmr = np.where(fmr_ok, fairness.rates(fa, imp), np.nan)
    return _Rates(fnmr, fmr, np.where(fnmr_ok, fairness.floored_rates(fr, gen, s.alpha), np.nan),
                  np.where(fmr_ok, fairness.floored_rates(fa, imp, s.alpha), np.nan), fr, gen, fa, imp)


def _statistics(r: _Rates, s: Settings) -> dict[str, np.ndarray]:
    """Each summary per row (resample)."""
    return {"fdr": fairness.fdr(r.fmr, r.fnmr, s.weight), "garbe": fairness.garbe(r.fmr, r.fnmr, s.weight),
            "fnmr_max_geomean": fairness.max_geomean_ratio(r.fnmr_floor),
            "fnmr_max_min": fairness.max_min_ratio(r.fnmr_floor),
            "fmr_max_geomean": fairness.max_geomean_ratio(r.fmr_floor),
            "fmr_max_min": fairness.max_min_ratio(r.fmr_floor)}


def _worst(rate: np.ndarray, errors: np.ndarray, trials: np.ndarray, groups, alpha: float) -> dict | None:
    """The group with the highest rate against the other groups pooled, with the bootstrap interval
    of the difference: significant when it leaves out 0 (above)."""
    ok = np.isfinite(rate[0])
    if ok.sum() < 2 or not np.nanmax(rate[0]) > 0:
        return None
    w = int(np.nanargmax(np.where(ok, rate[0], -np.inf)))
    rest = ok.copy()
    rest[w] = False
    pooled = fairness.rates(errors[:, rest].sum(1), trials[:, rest].sum(1))
    diff = rate[:, w] - pooled
    low, high = fairness.interval(diff[1:], alpha)
    r_low, r_high = fairness.interval(rate[1:, w], alpha)
    return {"group": groups[w], "rate": float(rate[0, w]), "low": r_low, "high": r_high,
            "rest": float(pooled[0]), "difference": float(diff[0]), "difference_ci": [low, high],
            "significant": bool(low is not None and low > 0)}


def _group_rate(errors, trials, rate_rows, ok: bool, alpha: float) -> dict:
    e, n = float(errors[0]), float(trials[0])
    out = {"errors": int(round(e)), "trials": int(round(n)), "supported": bool(ok)}
    if not ok or n <= 0:
        return {**out, "rate": None, "low": None, "high": None, "upper_bound": None}
    low, high = fairness.interval(rate_rows[1:], alpha)
    bound = float(fairness.clopper_pearson_upper(0, n, alpha)) if e == 0 else None
    return {**out, "rate": e / n, "low": low, "high": high, "upper_bound": bound}


def attribute_section(c: AttributeCounts, labels: list[dict], s: Settings) -> dict:
    """One attribute's part of the section: groups, rates and summaries at each threshold, DET."""
    fnmr_ok, fmr_ok, notes = _support(c, s)
    draws = fairness.stratified_draws(c.strata, s.n_boot, s.seed)
    at = []
    for t, spec in enumerate(labels):
        r = _rates(c, t, draws, fnmr_ok, fmr_ok, s)
        stats = _statistics(r, s)
        summary = {}
        for key, rows in stats.items():
            point = rows[0]
            low, high = fairness.interval(rows[1:], s.alpha)
            summary[key] = None if not np.isfinite(point) else float(point)
            summary[f"{key}_ci"] = [low, high]
        summary["fnmr_worst"] = _worst(r.fnmr, r.fr, r.gen, c.groups, s.alpha)
        summary["fmr_worst"] = _worst(r.fmr, r.fa, r.imp, c.groups, s.alpha)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.where(c.matrix_imp > 0, c.matrix_fa[t] / np.maximum(c.matrix_imp, 1), np.nan)
        at.append({**spec,
                   "fnmr": {g: _group_rate(r.fr[:, i], r.gen[:, i], r.fnmr[:, i], fnmr_ok[i], s.alpha)
                            for i, g in enumerate(c.groups)},
                   "fmr": {g: _group_rate(r.fa[:, i], r.imp[:, i], r.fmr[:, i], fmr_ok[i], s.alpha)
                           for i, g in enumerate(c.groups)},
                   "fmr_matrix": [[None if not np.isfinite(x) else float(x) for x in row] for row in matrix],
                   "fmr_matrix_pairs": [[int(x) for x in row] for row in c.matrix_imp],
                   "summary": summary})
    groups = [{"group": g, "subjects": int((c.gen[:, i] > 0).sum() if c.gen.size else 0),
               "probe_subjects": int((c.imp[:, i] > 0).sum() if c.imp.size else 0),
               "enrolled": int(c.enrolled[i]), "genuine_pairs": int(c.gen[:, i].sum()),
               "impostor_pairs": int(c.imp[:, i].sum()), "fnmr_supported": bool(fnmr_ok[i]),
               "fmr_supported": bool(fmr_ok[i])} for i, g in enumerate(c.groups)]
    det = {g: fairness.det_from_histogram(c.genuine[i], c.histograms[i]) for i, g in enumerate(c.groups)
           if fnmr_ok[i] and fmr_ok[i]}
    return {"attribute": c.name, "groups": groups, "at": at, "det": det, "notes": notes}


def demographic_section(ev: Evaluation, assignment: GroupAssignment, labels: list[dict], settings: Settings,
                        judged: str) -> dict:
    """Per-group rates and their summaries at each threshold, for every attribute.

    Parameters
    ----------
    ev : Evaluation
        The model's evaluation.
    assignment : GroupAssignment
        Groups of the protocol's probes and enrolled subjects.
    labels : list of dict
        The thresholds (operating_thresholds): ``label``, ``threshold`` and provenance.
    settings : Settings
    judged : str
        The label of the threshold a check judges at.

    Returns
    -------
    dict
        ``attributes`` (one entry per attribute: ``groups``, ``at`` per threshold with ``fnmr``,
        ``fmr``, ``fmr_matrix`` and ``summary``, and ``det`` per group), ``judged``, ``method``,
        ``notes``: JSON-friendly, what the check's data and a bench row carry.
    """
    counts = attribute_counts(ev, assignment, [x["threshold"] for x in labels])
    attributes = [attribute_section(c, labels, settings) for c in counts]
    notes = list(assignment.notes) + [n for a in attributes for n in a.pop("notes")]
    return {"attributes": attributes, "judged": judged, "alpha": settings.alpha, "n_boot": settings.n_boot,
            "weight": settings.weight, "min_subjects": settings.min_subjects, "min_pairs": settings.min_pairs,
            "method": METHOD, "notes": notes}


# ------------------------------------------------------------------------- two models, paired
def differential_tests(ev_a: Evaluation, ev_b: Evaluation, assignment: GroupAssignment, threshold_a: float,
                       threshold_b: float, settings: Settings, prefix: str = "demographic") -> dict[str, Tested]:
    """The summaries of A and B and the paired difference B − A, on the same resampled subjects.

    Parameters
    ----------
    ev_a, ev_b : Evaluation
        The two models on the same probes and templates (those both have are used).
    assignment : GroupAssignment
    threshold_a, threshold_b : float
        The threshold each side is judged at.
    settings : Settings
    prefix : str
        The check name keys start with.

    Returns
    -------
    dict of str to Tested
        ``prefix.fdr``, ``prefix.garbe``, ``prefix.fnmr_max_geomean``, ... (with ``.attribute`` appended
        when there are several attributes); a summary neither side can compute is left out.
    """
    rows = np.intersect1d(ev_a.probe_rows, ev_b.probe_rows)
    templates = np.intersect1d(ev_a.template_subjects, ev_b.template_subjects)
    sides = [attribute_counts(ev.subset(rows, templates), assignment, [t])
             for ev, t in ((ev_a, threshold_a), (ev_b, threshold_b))]
    out: dict[str, Tested] = {}
    several = len(assignment.attributes) > 1
    for ca, cb in zip(*sides):
        draws = fairness.stratified_draws(ca.strata, settings.n_boot, settings.seed)  # the same subjects: paired
        ok = [_support(c, settings)[:2] for c in (ca, cb)]
        fnmr_ok, fmr_ok = ok[0][0] & ok[1][0], ok[0][1] & ok[1][1]  # the groups both sides support
        stats = [_statistics(_rates(c, 0, draws, fnmr_ok, fmr_ok, settings), settings) for c in (ca, cb)]
        for key in SUMMARIES:
            a, b = stats[0][key], stats[1][key]
            if not (np.isfinite(a[0]) and np.isfinite(b[0])):
                continue
            name = f"{prefix}.{key}" + (f".{ca.name}" if several else "")
            out[name] = Tested(name, _ci(a, settings.alpha), _ci(b, settings.alpha), _ci(b - a, settings.alpha))
    return out


def _ci(rows: np.ndarray, alpha: float) -> BootstrapCI:
    low, high = fairness.interval(rows[1:], alpha)
    point = float(rows[0])
    return BootstrapCI(point, point if low is None else low, point if high is None else high)
