"""identification: rank-k and CMC, accuracy at a threshold WITH its false-accept rate, open set."""
from __future__ import annotations

from facediag.checks._plotdata import r
from facediag.metrics.identification import closed_set, open_set, threshold_accuracy, threshold_for_far
from facediag.checks.base import Check, Finding, Severity, Status, worst
from facediag.checks.registry import register


@register
class Identification(Check):
    name = "identification"
    title = "Closed-set rank-k / CMC, accuracy and false accepts at the threshold, open set"
    params = {"threshold": 0.35, "ranks": [1, 5, 10], "max_far": 0.01, "fail_far": 0.5,
              "min_rank1": 0.5, "fail_rank1": 0.2, "target_fars": [0.01, 0.001]}

    def run(self, ctx, params):
        ev = ctx.evaluation("model")
        if not ev.mated.any():
            return self.result(Status.FAIL, "no probe's subject is in the gallery", {})
        t = params["threshold"]
        cs = closed_set(ev.scores, ev.probe_subjects, ev.template_subjects, ranks=tuple(params["ranks"]))
        at = threshold_accuracy(ev.scores, ev.probe_subjects, ev.template_subjects, t)
        metrics = {f"rank{k}": r(v) for k, v in cs.rank_accuracy.items()}
        metrics.update({"accuracy_at_threshold": r(at.accuracy), "genuine_accept_rate": r(at.genuine_accept_rate),
                        "far_at_threshold": r(at.false_accept_rate, 5), "n_false_accepts": at.n_false_accepts,
                        "n_impostor_pairs": at.n_impostor, "n_probes": cs.n_probes_used,
                        "n_gallery_subjects": cs.n_gallery, "threshold": t})
        impostor = ev.impostor_scores()
        for far in params["target_fars"]:
            ft = threshold_for_far(impostor, far)
            metrics[f"threshold_for_far_{far:g}"] = r(ft.threshold) if ft.supported else None
        findings, status = [], Status.PASS

        suggest = next((f"{metrics[f'threshold_for_far_{f:g}']:.3f} for FAR {f:g}" for f in params["target_fars"]
                        if metrics.get(f"threshold_for_far_{f:g}") is not None), None)
        if at.false_accept_rate > params["fail_far"]:
            status = worst([status, Status.FAIL])
            findings.append(Finding(Severity.FAILURE,
                                    f"at cosine ≥ {t} {at.false_accept_rate:.1%} of impostor pairs are accepted: "
                                    f"'accuracy at {t}' ({at.accuracy:.1%}) means nothing here",
                                    {"far_at_threshold": metrics["far_at_threshold"],
                                     "accuracy_at_threshold": metrics["accuracy_at_threshold"]}))
        elif at.false_accept_rate > params["max_far"]:
            status = worst([status, Status.WARN])
            findings.append(Finding(Severity.WARNING,
                                    f"the threshold {t} no longer holds: it accepts {at.false_accept_rate:.1%} of "
                                    f"impostor pairs" + (f"; use {suggest}" if suggest else ""),
                                    {"far_at_threshold": metrics["far_at_threshold"]}))
        if cs.rank_accuracy[1] < params["fail_rank1"]:
            status = worst([status, Status.FAIL])
            findings.append(Finding(Severity.FAILURE, f"rank-1 is {cs.rank_accuracy[1]:.1%} "
                                    f"(chance {1 / cs.n_gallery:.1%})"))
        elif cs.rank_accuracy[1] < params["min_rank1"]:
            status = worst([status, Status.WARN])
            findings.append(Finding(Severity.WARNING, f"rank-1 is only {cs.rank_accuracy[1]:.1%}"))
        if cs.worst_subjects:
            findings.append(Finding(Severity.INFO, "hardest subjects (rank-1, probes): " + ", ".join(
                f"{s} {acc:.0%}/{n}" for s, acc, n in cs.worst_subjects)))
        if (~ev.mated).any():
            osr = open_set(ev.scores, ev.probe_subjects, ev.template_subjects, threshold=t)
            metrics.update({"open_set_dir": r(osr.dir), "open_set_false_alarm_rate": r(osr.false_alarm_rate),
                            "open_set_correct_rejection_rate": r(osr.correct_rejection_rate),
                            "open_set_nonmated_probes": osr.n_nonmated})
            if osr.false_alarm_rate > 0.5:
                status = worst([status, Status.WARN])
                findings.append(Finding(Severity.WARNING,
                                        f"open set: {osr.false_alarm_rate:.1%} of probes of unenrolled people are "
                                        f"accepted as someone (only {osr.correct_rejection_rate:.1%} correctly rejected)"))
        summary = (f"rank-1 {cs.rank_accuracy[1]:.3f}; accuracy at {t} {at.accuracy:.3f} with FAR "
                   f"{at.false_accept_rate:.2%}" if status == Status.PASS else
                   next(f.message for f in findings if f.severity != Severity.INFO))
        data = {"headline": ["rank1", "accuracy_at_threshold", "far_at_threshold"],
                "cmc": [round(float(x), 5) for x in cs.cmc[:50]],
                "worst_subjects": [list(w) for w in cs.worst_subjects],
                "correct_rank1": cs.correct_rank1.astype(int).tolist(),
                "probe_rows": ev.probe_rows[ev.mated].tolist()}
        return self.result(status, summary, metrics, findings, data)
