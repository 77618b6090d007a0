"""pair-gap: the original finding as a check.

Naive validation compares each DSR output only with its own HR image ("paired"). What
deployment needs is that DSR output matching the person's *other* HR images ("genuine",
against the enrolled template) and not matching other people ("impostor"). A model can
learn the pairs without learning the people (memorisation: paired high, genuine low), or
map every face to one point (collapse: impostor as high as genuine).
"""
from __future__ import annotations

from facediag.checks._plotdata import histogram, r
from facediag.protocols.gallery import headline_metrics
from facediag.metrics.distribution import COLLAPSE_IMPOSTOR, MIN_SEPARATION, collapsed
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register


@register
class PairGap(Check):
    name = "pair-gap"
    title = "Paired (DSR_i vs own HR_i) vs cross-image genuine vs impostor similarity"
    params = {"threshold": DEFAULT_THRESHOLD, "memorization_paired": 0.7, "max_gap": 0.3,
              "collapse_impostor": COLLAPSE_IMPOSTOR, "min_separation": MIN_SEPARATION, "max_hr_rank1_gap": 0.25}
    conditions = (
        # Collapse by the one rule (metrics.distribution.collapsed), with this suite's thresholds.
        Condition("collapsed", Severity.FAILURE,
                  "collapse: different people score {impostor_mean:.2f} on average, the same person "
                  "{genuine_mean:.2f} — everything matches everything; paired similarity {paired_mean:.3f} hides it",
                  [("collapsed", "is")],
                  evidence=("paired_mean", "genuine_mean", "impostor_mean", "far_at_threshold")),
        Condition("memorized", Severity.FAILURE,
                  "pair memorisation: each DSR output matches its own HR image ({paired_mean:.2f}) but not the "
                  "person's other images ({genuine_mean:.2f}); rank-1 {rank1:.2f}",
                  [("paired_mean", ">=", "memorization_paired"), ("gap", ">=", "max_gap")],
                  unless=("collapsed",), evidence=("paired_mean", "genuine_mean", "gap", "rank1")),
        # Recorded for the diagnosis layer (no finding): what DSR costs, and a high paired score.
        Condition("hr-dsr-rank1-gap", Severity.WARNING, None, [("hr_rank1", ">", "max_hr_rank1_gap", "rank1")]),
        Condition("paired-high", Severity.INFO, None, [("paired_mean", ">", "memorization_paired")]),
    )

    def run(self, ctx, params):
        ev = ctx.evaluation("model")
        if not ev.mated.any():  # nothing genuine to compare with: a fact of the data, not the model
            return self.result(Status.FAIL, "no probe's subject is enrolled in the gallery: genuine similarity "
                               "cannot be measured (see subject-overlap)")
        m = headline_metrics(ev, params["threshold"])
        paired, genuine, impostor = ev.paired_scores(), ev.genuine_scores(), ev.impostors
        hr_m = headline_metrics(ev.hr_probes(), params["threshold"]) if ev.has_pairs.any() else {}
        metrics = {"paired_mean": r(m["paired_mean"]), "genuine_mean": r(m["genuine_mean"]),
                   "impostor_mean": r(m["impostor_mean"]), "gap": r(m["pair_gap"]),
                   "separation": r(m["genuine_mean"] - m["impostor_mean"]),
                   "rank1": r(m["rank1"]), "accuracy_at_threshold": r(m["accuracy_at_threshold"]),
                   "far_at_threshold": r(m["far_at_threshold"]),
                   "hr_rank1": r(hr_m.get("rank1")), "hr_genuine_mean": r(hr_m.get("genuine_mean")),
                   "n_paired": int(len(paired)), "n_genuine": int(len(genuine)), "n_impostor": int(impostor.n)}
        metrics["collapsed"] = collapsed(m["genuine_mean"], m["impostor_mean"],
                                         collapse_impostor=params["collapse_impostor"],
                                         min_separation=params["min_separation"])
        data = {
            "headline": ["paired_mean", "genuine_mean", "impostor_mean", "gap"],
            "threshold": params["threshold"],
            "histograms": {"paired": histogram(paired), "genuine": histogram(genuine),
                           "impostor": histogram(impostor)},
        }
        findings = []
        if not len(paired):  # memorisation cannot be measured; collapse still can
            why = ctx.available("pairs") or "no probe has its own HR image"
            findings.append(Finding(Severity.INFO, f"paired similarity not measured: {why}; judged on "
                                    f"cross-image genuine vs impostor similarity only"))
            summary = (f"genuine {m['genuine_mean']:.3f}, impostor {m['impostor_mean']:.3f} "
                       f"(no DSR/HR pairs: paired similarity not measured)")
        else:
            summary = (f"paired {m['paired_mean']:.3f}, genuine {m['genuine_mean']:.3f}, impostor "
                       f"{m['impostor_mean']:.3f} (gap {m['pair_gap']:+.3f})")
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data)
