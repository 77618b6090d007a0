"""verification: ROC AUC, EER, TAR at FAR (with the pair counts behind them), d′."""
from __future__ import annotations

from facediag.checks._plotdata import histogram, r
from facediag.metrics.distribution import dprime_from_moments
from facediag.metrics.verification import kfold_pair_accuracy, verification_metrics
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.checks.registry import register


@register
class Verification(Check):
    name = "verification"
    title = "1:1 verification: ROC AUC, EER, TAR@FAR, d′"
    params = {"fars": [0.1, 0.01, 0.001, 0.0001], "max_eer": 0.2, "fail_eer": 0.35, "threshold": DEFAULT_THRESHOLD}
    conditions = (
        Condition("eer-failed", Severity.FAILURE, "EER {eer:.1%}: genuine and impostor scores overlap",
                  [("eer", ">", "fail_eer")]),
        Condition("eer-high", Severity.WARNING, "EER {eer:.1%} is high", [("eer", ">", "max_eer")],
                  unless=("eer-failed",)),
    )

    def run(self, ctx, params):
        ev = ctx.evaluation("model")
        genuine, impostor = ev.genuine_scores(), ev.impostors
        if len(genuine) == 0 or impostor.n == 0:
            return self.result(Status.SKIP, "needs genuine and impostor pairs", {})
        v = verification_metrics(genuine, impostor, fars=tuple(params["fars"]))
        metrics = {"auc": r(v.auc), "eer": r(v.eer), "eer_threshold": r(v.eer_threshold),
                   "dprime": r(dprime_from_moments(genuine.mean(), genuine.var(), impostor.mean, impostor.var)),
                   "n_genuine": v.n_genuine, "n_impostor": v.n_impostor,
                   "score_resolution": v.score_resolution, "auc_error_bound": r(v.auc_error_bound, 6),
                   "eer_error_bound": r(v.eer_error_bound, 6)}
        findings = []
        if not impostor.exact:
            findings.append(Finding(Severity.INFO, (
                f"{impostor.n:,} impostor pairs summarised in a histogram of bin width {v.score_resolution:.2g} with "
                f"the top {len(impostor.top):,} scores exact: AUC within ±{v.auc_error_bound:.1e}, EER within "
                f"±{v.eer_error_bound:.1e}; 10-fold accuracy on a sample of {len(impostor.sample):,} pairs")))
        for p in v.tar_at_far:
            key = f"tar_at_far_{p.far:g}"
            metrics[key] = r(p.tar) if p.supported else None
            if not p.supported:
                findings.append(Finding(Severity.INFO, f"TAR@FAR {p.far:g} not reported: {p.reason}"))
        try:
            kf = kfold_pair_accuracy(genuine, impostor.sample)
            metrics.update({"pair_accuracy_10fold": r(kf.mean), "pair_accuracy_10fold_std": r(kf.std)})
        except ValueError as exc:
            findings.append(Finding(Severity.INFO, f"10-fold pair accuracy not computed: {exc}"))
        supported = [p for p in v.tar_at_far if p.supported]
        summary = f"AUC {v.auc:.3f}, EER {v.eer:.1%}" + (
            f", TAR {supported[-1].tar:.3f} @ FAR {supported[-1].far:g}" if supported else "") + (
            f" ({v.n_genuine} genuine / {v.n_impostor} impostor pairs; ± in 10-fold accuracy is the std)")
        data = {"headline": ["auc", "eer", "dprime"],
                "roc": {"fpr": [round(float(x), 6) for x in v.roc_fpr], "tpr": [round(float(x), 6) for x in v.roc_tpr]},
                "det": {"fpr": [round(float(x), 6) for x in v.det_fpr], "fnr": [round(float(x), 6) for x in v.det_fnr]},
                "histograms": {"genuine": histogram(genuine), "impostor": histogram(impostor)},
                "threshold": params["threshold"]}  # marked on the score histograms
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data)
