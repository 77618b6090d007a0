"""pretrained-baseline: the same numbers for a reference checkpoint on the same probes."""
from __future__ import annotations

from facediag.checks._plotdata import r
from facediag.protocols.gallery import headline_metrics
from facediag.checks.base import Check, Finding, Severity, Status
from facediag.checks.registry import register

COMPARED = ("rank1", "accuracy_at_threshold", "genuine_mean", "impostor_mean", "far_at_threshold", "paired_mean")


@register
class PretrainedBaseline(Check):
    name = "pretrained-baseline"
    title = "Against the pretrained (baseline) checkpoint on the same data and probes"
    requires = ("baseline",)
    params = {"threshold": 0.35, "max_rank1_drop": 0.05, "max_genuine_drop": 0.15,
              "max_impostor_rise": 0.15, "max_far_rise": 0.05}

    def run(self, ctx, params):
        model = headline_metrics(ctx.evaluation("model"), params["threshold"])
        base = headline_metrics(ctx.evaluation("baseline"), params["threshold"])
        metrics = {}
        for k in COMPARED:
            metrics[f"model_{k}"] = r(model[k])
            metrics[f"baseline_{k}"] = r(base[k])
            metrics[f"delta_{k}"] = r(model[k] - base[k]) if model[k] is not None and base[k] is not None else None
        findings = []
        rules = (("rank1", -params["max_rank1_drop"], "rank-1"),
                 ("genuine_mean", -params["max_genuine_drop"], "genuine similarity"),
                 ("impostor_mean", params["max_impostor_rise"], "impostor similarity"),
                 ("far_at_threshold", params["max_far_rise"], f"false-accept rate at {params['threshold']}"))
        for key, limit, label in rules:
            d = metrics[f"delta_{key}"]
            if d is None:
                continue
            worse = d < limit if limit < 0 else d > limit
            if worse:
                findings.append(Finding(Severity.FAILURE,
                                        f"{label} moved from {base[key]:.3f} (baseline) to {model[key]:.3f}",
                                        {"baseline": r(base[key]), "model": r(model[key]), "delta": d}))
        status = Status.FAIL if findings else Status.PASS
        summary = (f"rank-1 {model['rank1']:.3f} vs baseline {base['rank1']:.3f} "
                   f"({metrics['delta_rank1']:+.3f})" if not findings else
                   "worse than the baseline: " + "; ".join(f.message for f in findings[:2]))
        return self.result(status, summary, metrics, findings,
                           {"headline": ["model_rank1", "baseline_rank1", "delta_rank1"]})
