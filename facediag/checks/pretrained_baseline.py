"""pretrained-baseline: the same numbers for a reference checkpoint on the same probes."""
from __future__ import annotations

from facediag.checks._plotdata import r
from facediag.protocols.gallery import headline_metrics
from facediag.checks.base import Check, Condition, Severity
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.checks.registry import register

COMPARED = ("rank1", "accuracy_at_threshold", "genuine_mean", "impostor_mean", "far_at_threshold", "paired_mean")


@register
class PretrainedBaseline(Check):
    name = "pretrained-baseline"
    title = "Against the pretrained (baseline) checkpoint on the same data and probes"
    requires = ("baseline",)
    params = {"threshold": DEFAULT_THRESHOLD, "max_rank1_drop": 0.05, "max_genuine_drop": 0.15,
              "max_impostor_rise": 0.15, "max_far_rise": 0.05}
    conditions = (
        Condition("rank1-dropped", Severity.FAILURE,
                  "rank-1 moved from {baseline_rank1:.3f} (baseline) to {model_rank1:.3f}",
                  [("delta_rank1", "drop>", "max_rank1_drop")],
                  evidence=("baseline_rank1", "model_rank1", "delta_rank1")),
        Condition("genuine-dropped", Severity.FAILURE,
                  "genuine similarity moved from {baseline_genuine_mean:.3f} (baseline) to {model_genuine_mean:.3f}",
                  [("delta_genuine_mean", "drop>", "max_genuine_drop")],
                  evidence=("baseline_genuine_mean", "model_genuine_mean", "delta_genuine_mean")),
        Condition("impostor-rose", Severity.FAILURE,
                  "impostor similarity moved from {baseline_impostor_mean:.3f} (baseline) to {model_impostor_mean:.3f}",
                  [("delta_impostor_mean", ">", "max_impostor_rise")],
                  evidence=("baseline_impostor_mean", "model_impostor_mean", "delta_impostor_mean")),
        Condition("far-rose", Severity.FAILURE,
                  "false-accept rate at {threshold:g} moved from {baseline_far_at_threshold:.3f} (baseline) to "
                  "{model_far_at_threshold:.3f}", [("delta_far_at_threshold", ">", "max_far_rise")],
                  evidence=("baseline_far_at_threshold", "model_far_at_threshold", "delta_far_at_threshold")),
    )

    def run(self, ctx, params):
        model = headline_metrics(ctx.evaluation("model"), params["threshold"])
        base = headline_metrics(ctx.evaluation("baseline"), params["threshold"])
        metrics = {}
        for k in COMPARED:
            metrics[f"model_{k}"] = r(model[k])
            metrics[f"baseline_{k}"] = r(base[k])
            metrics[f"delta_{k}"] = r(model[k] - base[k]) if model[k] is not None and base[k] is not None else None
        result = self.conclude(metrics, params, summary=f"rank-1 {model['rank1']:.3f} vs baseline {base['rank1']:.3f} "
                                                        f"({metrics['delta_rank1']:+.3f})",
                               data={"headline": ["model_rank1", "baseline_rank1", "delta_rank1"]})
        if result.findings:  # name up to two of the metrics that moved
            result.summary = "worse than the baseline: " + "; ".join(f.message for f in result.findings[:2])
        return result
