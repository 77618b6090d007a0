"""operating-point: thresholds fixed on the development set, applied to the evaluation set; calibration.

A threshold tuned on the data it is reported on overstates what a deployment gets. With a
development set (--dev-data), each criterion of the suite (the EER, each target FMR, the minimum
HTER) fixes a threshold on the development set's comparisons; the evaluation set's FMR, FNMR
and HTER at it are reported beside the target and the development set's own figures. A target
FMR the development set's impostor pairs cannot support (n · FMR < 10) fixes no threshold; one
the evaluation set's pairs cannot measure is shown, not judged.

Calibration: an isotonic and a logistic map from score to match probability, fitted on the
development set and judged on the evaluation set (ECE over equal-width bins of the predicted
probability, Brier score), beside the raw cosine read as a probability, which it is not.
Without a development set the check is SKIP: no match probability without data behind it.
"""
from __future__ import annotations

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register
from facediag.metrics.calibration import METHODS, cosine_as_probability, fit_calibration, labelled, reliability
from facediag.metrics.operating_point import apply_threshold, criterion_key, fmr_refusal
from facediag.models.presets import DEFAULT_THRESHOLD

COSINE_NOTE = ("a cosine is not a probability: 0.4 between two faces is no 40 % chance of one person, and the "
               "same cosine means other odds for another model, resolution or population")


def criteria(params) -> list[str]:
    """The suite's criteria for this check as dev_thresholds names them (eer, min-hter, fmr=0.01, ...)."""
    out = ["eer"] if params["eer"] else []
    out += ["min-hter"] if params["min_hter"] else []
    return out + [criterion_key("fmr", float(f)) for f in params["fmr_targets"]]


def slug(key: str) -> str:
    """A criterion key as a metric name's tail: eer -> dev_eer, fmr=0.001 -> dev_fmr_0.001."""
    return "dev_" + key.replace("=", "_").replace("-", "_")


@register
class OperatingPoint(Check):
    name = "operating-point"
    title = "Thresholds fixed on the development set, applied to the evaluation set; calibration"
    requires = ("dev",)
    params = {"eer": True, "min_hter": True, "fmr_targets": [0.01, 0.001], "threshold": DEFAULT_THRESHOLD,
              "isotonic": True, "logistic": True, "ece_bins": 10, "max_fmr_ratio": 3.0}
    conditions = (
        Condition("dev-threshold-does-not-hold", Severity.WARNING,
                  "the threshold fixed on the development set for FMR {worst_fmr_target:g} lets "
                  "{worst_eval_fmr:.2%} of the evaluation set's impostor pairs through, {worst_fmr_ratio:.1f}× the "
                  "target: the development set does not represent the evaluation data (other people, capture or "
                  "resolution); fix the threshold on data like the deployment's",
                  [("worst_fmr_ratio", ">", "max_fmr_ratio")], evidence=("worst_fmr_ratio", "worst_eval_fmr")),
    )

    def run(self, ctx, params):
        points = ctx.dev_thresholds("model", criteria(params))
        dev, ev = ctx.dev_evaluation("model"), ctx.evaluation("model")
        genuine, impostor = ev.genuine_scores(), ev.impostors
        if not len(genuine) or not impostor.n:
            return self.result(Status.SKIP, "the evaluation set has no genuine or no impostor comparisons", {})
        n_pairs = int(ev.matching.impostor_count.sum())
        metrics = {"n_dev_genuine": len(dev.genuine_scores()), "n_dev_impostor": dev.impostors.n,
                   "n_eval_genuine": len(genuine), "n_eval_impostor": n_pairs}
        findings, rows, ratios = [], [], []
        operating = _operating(ctx, dev, ev, params["threshold"], n_pairs)
        metrics.update(operating.pop("metrics"))
        for key, point in points.items():
            row = {**point, "eval": None, "eval_supported": None}
            if point["threshold"] is None:
                findings.append(Finding(Severity.INFO, f"{key}: no threshold: the development set's "
                                                       f"{point['reason']}"))
                rows.append(row)
                continue
            applied = apply_threshold(point["threshold"], genuine, int(ev.false_accepts(point["threshold"]).sum()),
                                      n_pairs)
            row["eval"] = applied.as_dict()
            target = point["fmr_target"]
            row["eval_supported"] = None if target is None else applied.fmr_supported(target)
            metrics.update(_point_metrics(slug(key), point, applied))
            findings.append(Finding(Severity.INFO, _point_text(key, point, applied)))
            if target is not None and row["eval_supported"]:
                ratios.append((applied.fmr / target, target, applied.fmr))
            elif target is not None:
                findings.append(Finding(Severity.INFO, f"{key}: the evaluation set's FMR is shown, not judged: "
                                                       f"{fmr_refusal(n_pairs, target)}"))
            rows.append(row)
        worst = max(ratios, default=None)
        metrics.update(worst_fmr_ratio=r(worst[0]) if worst else None, worst_fmr_target=worst[1] if worst else None,
                       worst_eval_fmr=r(worst[2], 6) if worst else None)
        calibration = _calibration(dev, ev, params)
        metrics.update(calibration.pop("metrics"))
        findings.append(Finding(Severity.INFO, calibration["text"]))
        data = {"headline": _headline(points), "operating_points": rows, "operating_threshold": operating,
                "calibration": calibration}
        return self.conclude(metrics, params, summary=_summary(points, metrics), findings=findings, data=data,
                             context={"worst_fmr_target": worst[1] if worst else 0})


def _point_metrics(tail: str, point: dict, applied) -> dict:
    return {f"threshold_{tail}": r(point["threshold"], 6), f"dev_fmr_at_{tail}": r(point["fmr"], 6),
            f"dev_fnmr_at_{tail}": r(point["fnmr"]), f"eval_fmr_at_{tail}": r(applied.fmr, 6),
            f"eval_fnmr_at_{tail}": r(applied.fnmr), f"eval_hter_at_{tail}": r(applied.hter)}


def _point_text(key: str, point: dict, applied) -> str:
    target = f"; target {point['fmr_target']:g}" if point["fmr_target"] is not None else ""
    return (f"{key}: threshold {point['threshold']:.4f} fixed on the development set "
            f"({point['n_genuine']:,} genuine / {point['n_impostor']:,} impostor comparisons: FMR {point['fmr']:.4g}, "
            f"FNMR {point['fnmr']:.4g}) → evaluation set FMR {applied.fmr:.4g} ({applied.n_false_accepts:,} of "
            f"{applied.n_impostor:,}{target}), FNMR {applied.fnmr:.4g} ({applied.n_false_rejects:,} of "
            f"{applied.n_genuine:,}), HTER {applied.hter:.4g}")


def _operating(ctx, dev, ev, threshold: float, n_pairs: int) -> dict:
    """The suite's (or preset's) operating threshold on both sets: how it fares beside the fixed ones."""
    on_dev = apply_threshold(threshold, dev.genuine_scores(), int(dev.false_accepts(threshold).sum()),
                             int(dev.matching.impostor_count.sum()))
    on_eval = apply_threshold(threshold, ev.genuine_scores(), int(ev.false_accepts(threshold).sum()), n_pairs)
    return {"threshold": threshold, "dev": on_dev.as_dict(), "eval": on_eval.as_dict(),
            "metrics": {"threshold": threshold, "dev_fmr_at_threshold": r(on_dev.fmr, 6),
                        "dev_fnmr_at_threshold": r(on_dev.fnmr), "eval_fmr_at_threshold": r(on_eval.fmr, 6),
                        "eval_fnmr_at_threshold": r(on_eval.fnmr)}}


def _calibration(dev, ev, params) -> dict:
    """Isotonic and logistic calibration fitted on dev, judged on eval beside the raw cosine."""
    bins = params["ece_bins"]
    d_imp, e_imp = dev.impostors, ev.impostors
    scores, outcomes, weights = labelled(ev.genuine_scores(), e_imp.sample, 1 / e_imp.sample_fraction)
    raw = reliability(cosine_as_probability(scores), outcomes, weights, bins)
    out = {"note": COSINE_NOTE, "binning": f"{bins} equal-width bins of the predicted probability over [0, 1]",
           "cosine": raw.as_dict(), "fits": {}}
    metrics = {"ece_cosine": r(raw.ece), "brier_cosine": r(raw.brier),
               "eval_prior": r(float((weights * outcomes).sum() / weights.sum()), 6)}
    words = []
    for method in METHODS:
        if not params[method]:
            continue
        cal = fit_calibration(dev.genuine_scores(), d_imp.sample, method, impostor_weight=1 / d_imp.sample_fraction)
        judged = reliability(cal.probability(scores), outcomes, weights, bins)
        out["fits"][method] = {"fit": cal.as_dict(), "eval": judged.as_dict()}
        metrics.update({f"ece_{method}": r(judged.ece), f"brier_{method}": r(judged.brier),
                        "dev_prior": r(cal.prior, 6)})
        words.append(f"{method} ECE {judged.ece:.4f}, Brier {judged.brier:.4f}")
    prior = metrics.get("dev_prior")
    out["text"] = (f"{COSINE_NOTE}. Read as one, the evaluation set's cosines give ECE {raw.ece:.4f}, Brier "
                   f"{raw.brier:.4f}" + (f"; fitted on the development set: {'; '.join(words)}. The match probability "
                                         f"is P(same person | score) at the development set's share of genuine "
                                         f"comparisons ({prior:.2%}; evaluation set {metrics['eval_prior']:.2%})"
                                         if words else "") + f". ECE over {out['binning']}")
    out["metrics"] = metrics
    return out


def _headline(points: dict) -> list[str]:
    first_fmr = next((k for k, p in points.items() if p["fmr_target"] is not None and p["threshold"] is not None), None)
    names = [f"eval_fmr_at_{slug(first_fmr)}", f"eval_fnmr_at_{slug(first_fmr)}"] if first_fmr else []
    if "eer" in points and points["eer"]["threshold"] is not None:
        names.append("eval_hter_at_dev_eer")
    return [*names, "ece_isotonic"]


def _summary(points: dict, metrics: dict) -> str:
    parts = []
    for key, p in points.items():
        tail = slug(key)
        if p["threshold"] is None:
            parts.append(f"{key}: refused on dev")
        elif p["fmr_target"] is not None:
            parts.append(f"{key}: eval FMR {metrics[f'eval_fmr_at_{tail}']:.4g}, "
                         f"FNMR {metrics[f'eval_fnmr_at_{tail}']:.3f}")
        else:
            parts.append(f"{key}: eval HTER {metrics[f'eval_hter_at_{tail}']:.3f}")
    if metrics.get("ece_isotonic") is not None:
        parts.append(f"match probability calibrated on dev: ECE {metrics['ece_isotonic']:.3f} (the cosine read as a "
                     f"probability, which it is not: {metrics['ece_cosine']:.3f})")
    return "thresholds fixed on dev → " + "; ".join(parts)
