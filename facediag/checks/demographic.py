"""demographic: FMR and FNMR per demographic group at one global threshold, and their summaries.

Runs with ``--groups FILE`` (data.groups); SKIP without. At the operating threshold, the
threshold for a target FMR over all impostors (NIST's way of making models comparable) and
each threshold fixed on a development set: each group's FNMR and FMR (impostor pairs with both
sides in the group) with subject-bootstrap intervals (a group without errors: its one-sided
Clopper–Pearson bound), the cross-group FMR matrix, max/min and max/geometric-mean ratios,
FDR and GARBE (metrics.fairness; protocols.demographics). The conditions judge one threshold:
the development set's when the run has one (the honest deployment threshold), else the one
reaching the FMR target over all impostor pairs (NIST's: models compared at the same FMR), else
the operating threshold. A differential counts only when the worst group's rate lies above the
other groups' pooled rate beyond its bootstrap interval: a ratio from a handful of errors is
not one.
"""
from __future__ import annotations

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.protocols.demographics import Settings, demographic_section, operating_thresholds

RATES = ("fnmr", "fmr")


@register
class Demographic(Check):
    name = "demographic"
    title = "Demographic differentials: FMR and FNMR per group at one global threshold (NIST ratios, FDR, GARBE)"
    requires = ("groups",)
    params = {"threshold": DEFAULT_THRESHOLD, "fmr_target": 0.001, "max_ratio": 1.25, "fail_ratio": 2.0,
              "min_fdr": 0.9, "weight": 0.5, "min_subjects": 5, "min_pairs": 30, "n_boot": 1000, "alpha": 0.05}
    conditions = (
        Condition("fnmr-differential-large", Severity.FAILURE,
                  "{fnmr_worst_group} is falsely rejected {fnmr_worst:.1%} of the time [{fnmr_worst_low:.1%}, "
                  "{fnmr_worst_high:.1%}], {fnmr_max_geomean:.1f}× the groups' geometric mean FNMR at the "
                  "{judged} threshold {threshold:.3f}",
                  [("fnmr_max_geomean", ">", "fail_ratio"), ("fnmr_differential_significant", "is")],
                  evidence=("fnmr_worst", "fnmr_max_geomean", "fnmr_max_min")),
        Condition("fnmr-differential", Severity.WARNING,
                  "{fnmr_worst_group} is falsely rejected {fnmr_worst:.1%} of the time [{fnmr_worst_low:.1%}, "
                  "{fnmr_worst_high:.1%}], {fnmr_max_geomean:.2f}× the groups' geometric mean FNMR at the "
                  "{judged} threshold {threshold:.3f}",
                  [("fnmr_max_geomean", ">", "max_ratio"), ("fnmr_differential_significant", "is")],
                  unless=("fnmr-differential-large",), evidence=("fnmr_worst", "fnmr_max_geomean", "fnmr_max_min")),
        Condition("fmr-differential-large", Severity.FAILURE,
                  "{fmr_worst_group}'s impostors are falsely accepted {fmr_worst:.2%} of the time "
                  "[{fmr_worst_low:.2%}, {fmr_worst_high:.2%}], {fmr_max_geomean:.1f}× the groups' geometric mean FMR "
                  "at the {judged} threshold {threshold:.3f}",
                  [("fmr_max_geomean", ">", "fail_ratio"), ("fmr_differential_significant", "is")],
                  evidence=("fmr_worst", "fmr_max_geomean", "fmr_max_min")),
        Condition("fmr-differential", Severity.WARNING,
                  "{fmr_worst_group}'s impostors are falsely accepted {fmr_worst:.2%} of the time "
                  "[{fmr_worst_low:.2%}, {fmr_worst_high:.2%}], {fmr_max_geomean:.2f}× the groups' geometric mean FMR "
                  "at the {judged} threshold {threshold:.3f}",
                  [("fmr_max_geomean", ">", "max_ratio"), ("fmr_differential_significant", "is")],
                  unless=("fmr-differential-large",), evidence=("fmr_worst", "fmr_max_geomean", "fmr_max_min")),
        Condition("fdr-low", Severity.WARNING,
                  "fairness discrepancy rate {fdr:.3f} [{fdr_low:.3f}, {fdr_high:.3f}] ({fdr_attribute}) lies below "
                  "{min_fdr:g} at the {judged} threshold",
                  [("fdr_high", "<", "min_fdr")], evidence=("fdr", "garbe")),
    )

    def run(self, ctx, params):
        assignment = ctx.group_assignment()
        ev = ctx.evaluation("model")
        if ev.mated.sum() == 0:
            return self.result(Status.SKIP, "no probe is enrolled: no genuine pair to judge a group by")
        labels, notes = operating_thresholds(ev, params["threshold"], params["fmr_target"], ctx.dev_thresholds())
        judged = judged_label(labels, params["fmr_target"])
        settings = settings_of(params)
        section = demographic_section(ev, assignment, labels, settings, judged)
        metrics, context = headline(section, judged)
        findings = [Finding(Severity.INFO, n) for n in [*notes, *section["notes"]]]
        summary = _summary(section, metrics, context)
        # the worst group of each rate, named for the diagnosis (metrics are numbers only)
        worst = {rate: context.pop(f"{rate}_worst_entry", None) for rate in RATES}
        data = {"headline": ["fdr", "garbe", "fnmr_max_geomean", "fmr_max_geomean"], "demographic": section,
                "worst": {**worst, "judged": context["judged"], "threshold": metrics["threshold"]},
                "threshold": metrics["threshold"]}
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data, context=context)


def settings_of(params: dict) -> Settings:
    """The check's parameters as the protocol's Settings."""
    return Settings(min_subjects=int(params["min_subjects"]), min_pairs=int(params["min_pairs"]),
                    weight=float(params["weight"]), alpha=float(params["alpha"]), n_boot=int(params["n_boot"]))


def judged_label(labels: list[dict], fmr_target: float) -> str:
    """The threshold the conditions judge: fixed on the development set when there is one (the one
    for the check's FMR target first); else the one reaching the FMR target over all impostor pairs
    (NIST's way: every model judged at the same FMR); else, when the impostors cannot support that
    target, the operating threshold."""
    dev = [x for x in labels if x["label"].startswith("dev ")]
    same = [x for x in dev if x.get("fmr_target") == fmr_target]
    at_target = [x for x in labels if x["set"] == "evaluation" and x.get("fmr_target") == fmr_target]
    return (same or dev or at_target or labels)[0]["label"]


def judged_threshold(ctx, ev, params: dict) -> float:
    """The threshold the check judges ``ev`` at (compare holds each side to its own)."""
    labels, _ = operating_thresholds(ev, params["threshold"], params["fmr_target"], ctx.dev_thresholds())
    label = judged_label(labels, params["fmr_target"])
    return next(x["threshold"] for x in labels if x["label"] == label)


def _at(attribute: dict, label: str) -> dict:
    return next(x for x in attribute["at"] if x["label"] == label)


def headline(section: dict, judged: str) -> tuple[dict, dict]:
    """The flat metrics the conditions read (at the judged threshold; over several attributes the
    one with the largest differential), and the wording's context (the worst groups' names)."""
    attributes = section["attributes"]
    first = _at(attributes[0], judged)
    metrics = {"threshold": r(first["threshold"], 6), "attributes": len(attributes),
               "groups": sum(len(a["groups"]) for a in attributes),
               "groups_too_small": sum(not (g["fnmr_supported"] and g["fmr_supported"])
                                       for a in attributes for g in a["groups"])}
    context = {"judged": judged.replace("dev ", "development set's "), "fdr_attribute": ""}
    for rate in RATES:
        best = _pick(attributes, judged, rate)
        s = _at(best, judged)["summary"] if best else {}
        worst = s.get(f"{rate}_worst") or {}
        metrics.update({f"{rate}_max_geomean": r(s.get(f"{rate}_max_geomean")),
                        f"{rate}_max_min": r(s.get(f"{rate}_max_min")),
                        f"{rate}_worst": r(worst.get("rate"), 6), f"{rate}_worst_low": r(worst.get("low"), 6),
                        f"{rate}_worst_high": r(worst.get("high"), 6),
                        f"{rate}_differential_significant": bool(worst.get("significant", False))})
        context[f"{rate}_worst_group"] = f"{best['attribute']}={worst['group']}" if worst else "no group"
        if worst:
            context[f"{rate}_worst_entry"] = {**worst, "group": context[f"{rate}_worst_group"],
                                              "max_geomean": s.get(f"{rate}_max_geomean")}
    by_fdr = [(s["fdr"], a) for a in attributes if (s := _at(a, judged)["summary"])["fdr"] is not None]
    if by_fdr:
        _, a = min(by_fdr, key=lambda x: x[0])
        s = _at(a, judged)["summary"]
        metrics.update({"fdr": r(s["fdr"]), "fdr_low": r(s["fdr_ci"][0]), "fdr_high": r(s["fdr_ci"][1])})
        context["fdr_attribute"] = a["attribute"]
    else:
        metrics.update({"fdr": None, "fdr_low": None, "fdr_high": None})
    garbes = [_at(a, judged)["summary"] for a in attributes if _at(a, judged)["summary"]["garbe"] is not None]
    worst_garbe = max(garbes, key=lambda s: s["garbe"]) if garbes else None
    metrics.update({"garbe": r(worst_garbe["garbe"]) if worst_garbe else None,
                    "garbe_low": r(worst_garbe["garbe_ci"][0]) if worst_garbe else None,
                    "garbe_high": r(worst_garbe["garbe_ci"][1]) if worst_garbe else None})
    if len(attributes) > 1:  # each attribute's own summaries, for compare's per-attribute verdicts
        for a in attributes:
            s = _at(a, judged)["summary"]
            for key in ("fdr", "garbe", "fnmr_max_geomean", "fmr_max_geomean"):
                metrics[f"{key}.{a['attribute']}"] = r(s.get(key))
    return metrics, context


def _pick(attributes: list[dict], judged: str, rate: str) -> dict | None:
    """The attribute whose worst group differs most (significantly first) in ``rate``."""
    scored = []
    for a in attributes:
        s = _at(a, judged)["summary"]
        ratio, worst = s.get(f"{rate}_max_geomean"), s.get(f"{rate}_worst")
        if ratio is not None and worst:
            scored.append((bool(worst["significant"]), ratio, a))
    return max(scored, key=lambda x: x[:2])[2] if scored else None


def _summary(section: dict, metrics: dict, context: dict) -> str:
    names = ", ".join(f"{a['attribute']} ({len(a['groups'])})" for a in section["attributes"])
    parts = [f"groups by {names}"]
    if metrics.get("fdr") is not None:
        parts.append(f"FDR {metrics['fdr']:.3f}, GARBE {metrics['garbe']:.3f}")
    for rate, label in (("fnmr", "FNMR"), ("fmr", "FMR")):
        if metrics.get(f"{rate}_max_geomean") is not None:
            parts.append(f"{label} max/geomean {metrics[f'{rate}_max_geomean']:.2f} (worst "
                         f"{context[f'{rate}_worst_group']})")
    if metrics.get("fdr") is None:
        parts.append("fewer than two groups large enough to compare")
    return "; ".join(parts) + f" at the {context['judged']} threshold {metrics['threshold']:.3f}; no significant " \
                              "differential"
