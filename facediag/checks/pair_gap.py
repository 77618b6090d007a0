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
from facediag.checks.base import Check, Finding, Severity, Status
from facediag.checks.registry import register


@register
class PairGap(Check):
    name = "pair-gap"
    title = "Paired (DSR_i vs own HR_i) vs cross-image genuine vs impostor similarity"
    requires = ("pairs",)
    params = {"threshold": 0.35, "memorization_paired": 0.7, "max_gap": 0.3, "collapse_impostor": COLLAPSE_IMPOSTOR,
              "min_separation": MIN_SEPARATION}

    def run(self, ctx, params):
        ev = ctx.evaluation("model")
        m = headline_metrics(ev, params["threshold"])
        paired, genuine, impostor = ev.paired_scores(), ev.genuine_scores(), ev.impostor_scores()
        hr_m = headline_metrics(ev.hr_probes(), params["threshold"]) if ev.has_pairs.any() else {}
        metrics = {"paired_mean": r(m["paired_mean"]), "genuine_mean": r(m["genuine_mean"]),
                   "impostor_mean": r(m["impostor_mean"]), "gap": r(m["pair_gap"]),
                   "separation": r(m["genuine_mean"] - m["impostor_mean"]),
                   "rank1": r(m["rank1"]), "accuracy_at_threshold": r(m["accuracy_at_threshold"]),
                   "far_at_threshold": r(m["far_at_threshold"]),
                   "hr_rank1": r(hr_m.get("rank1")), "hr_genuine_mean": r(hr_m.get("genuine_mean")),
                   "n_paired": int(len(paired)), "n_genuine": int(len(genuine)), "n_impostor": int(len(impostor))}
        findings, status = [], Status.PASS
        # Collapse by the one rule (metrics.distribution.collapsed), with this suite's thresholds.
        is_collapsed = collapsed(m["genuine_mean"], m["impostor_mean"],
                                 collapse_impostor=params["collapse_impostor"],
                                 min_separation=params["min_separation"])
        metrics["collapsed"] = is_collapsed  # the diagnosis reads this, not a copy of the rule
        if is_collapsed:
            status = Status.FAIL
            findings.append(Finding(
                Severity.FAILURE,
                f"collapse: different people score {m['impostor_mean']:.2f} on average, the same person "
                f"{m['genuine_mean']:.2f} — everything matches everything; paired similarity "
                f"{m['paired_mean']:.3f} hides it",
                {k: metrics[k] for k in ("paired_mean", "genuine_mean", "impostor_mean", "far_at_threshold")}))
        elif m["paired_mean"] >= params["memorization_paired"] and m["pair_gap"] >= params["max_gap"]:
            status = Status.FAIL
            findings.append(Finding(
                Severity.FAILURE,
                f"pair memorisation: each DSR output matches its own HR image ({m['paired_mean']:.2f}) but not the "
                f"person's other images ({m['genuine_mean']:.2f}); rank-1 {m['rank1']:.2f}",
                {k: metrics[k] for k in ("paired_mean", "genuine_mean", "gap", "rank1")}))
        data = {
            "headline": ["paired_mean", "genuine_mean", "impostor_mean", "gap"],
            "threshold": params["threshold"],
            "histograms": {"paired": histogram(paired), "genuine": histogram(genuine),
                           "impostor": histogram(impostor)},
        }
        summary = (f"paired {m['paired_mean']:.3f}, genuine {m['genuine_mean']:.3f}, impostor "
                   f"{m['impostor_mean']:.3f} (gap {m['pair_gap']:+.3f})" if status == Status.PASS
                   else findings[0].message)
        return self.result(status, summary, metrics, findings, data)
