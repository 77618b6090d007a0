"""identification: rank-k and CMC, accuracy at a threshold WITH its false-accept rate, open set."""
from __future__ import annotations

import numpy as np

from facediag.checks._faces import strip, tile
from facediag.checks._plotdata import r
from facediag.metrics.identification import closed_set_from, open_set_from, threshold_for_far
from facediag.protocols.gallery import threshold_accuracy_at
from facediag.protocols.index import recall_metrics
from facediag.protocols.label_noise import possible_mislabels
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.checks.registry import register


@register
class Identification(Check):
    name = "identification"
    title = "Closed-set rank-k / CMC, accuracy and false accepts at the threshold, open set"
    params = {"threshold": DEFAULT_THRESHOLD, "ranks": [1, 5, 10], "max_far": 0.01, "fail_far": 0.5,
              "min_rank1": 0.5, "fail_rank1": 0.2, "target_fars": [0.01, 0.001], "max_open_set_false_alarm": 0.5,
              "mislabel_min_drop": 0.3, "mislabel_rival_within": 0.15, "min_mislabel_rank1": 0.8}
    conditions = (
        Condition("far-meaningless", Severity.FAILURE,
                  "at cosine ≥ {threshold:g} {far_at_threshold:.1%} of impostor pairs are accepted: "
                  "'accuracy at {threshold:g}' ({accuracy_at_threshold:.1%}) means nothing here",
                  [("far_at_threshold", ">", "fail_far")], evidence=("far_at_threshold", "accuracy_at_threshold")),
        Condition("threshold-does-not-hold", Severity.WARNING,
                  "the threshold {threshold:g} no longer holds: it accepts {far_at_threshold:.1%} of impostor "
                  "pairs{suggestion}", [("far_at_threshold", ">", "max_far")],
                  unless=("far-meaningless",), evidence=("far_at_threshold",)),
        Condition("rank1-failed", Severity.FAILURE, "rank-1 is {rank1:.1%} (chance {chance:.1%})",
                  [("rank1", "<", "fail_rank1")]),
        Condition("rank1-low", Severity.WARNING, "rank-1 is only {rank1:.1%}", [("rank1", "<", "min_rank1")],
                  unless=("rank1-failed",)),
        Condition("open-set-false-alarms", Severity.WARNING,
                  "open set: {open_set_false_alarm_rate:.1%} of probes of unenrolled people are accepted as "
                  "someone (only {open_set_correct_rejection_rate:.1%} correctly rejected)",
                  [("open_set_false_alarm_rate", ">", "max_open_set_false_alarm")]),
        Condition("possible-mislabelled-probes", Severity.INFO,
                  "{possible_mislabelled_probes} probe(s) look like another enrolled person's photo filed under the "
                  "wrong name (own score more than {mislabel_min_drop} below their person's typical genuine score, the "
                  "other person's within {mislabel_rival_within} of that person's typical, judged {mislabel_view}): "
                  "possible mislabels, counted apart from model errors; rank-1 with them left out "
                  "{rank1_without_possible_mislabels:.1%} (all probes {rank1:.1%}): {mislabel_examples}",
                  [("possible_mislabelled_probes", ">", 0)],
                  evidence=("possible_mislabelled_probes", "rank1_without_possible_mislabels")),
    )

    def run(self, ctx, params):
        ev = ctx.evaluation("model")
        if not ev.mated.any():
            return self.result(Status.FAIL, "no probe's subject is in the gallery", {})
        t = params["threshold"]
        summary = ev.matching.summary()
        cs = closed_set_from(summary, ev.probe_subjects, ranks=tuple(params["ranks"]))
        at = threshold_accuracy_at(ev, t)
        metrics = {f"rank{k}": r(v) for k, v in cs.rank_accuracy.items()}
        metrics.update({"accuracy_at_threshold": r(at.accuracy), "genuine_accept_rate": r(at.genuine_accept_rate),
                        "far_at_threshold": r(at.false_accept_rate, 5), "n_false_accepts": at.n_false_accepts,
                        "n_impostor_pairs": at.n_impostor, "n_probes": cs.n_probes_used,
                        "n_gallery_subjects": cs.n_gallery, "threshold": t})
        impostor = ev.impostors
        for far in params["target_fars"]:
            ft = threshold_for_far(impostor, far)
            metrics[f"threshold_for_far_{far:g}"] = r(ft.threshold) if ft.supported else None
        findings = []
        suggest = next((f"{metrics[f'threshold_for_far_{f:g}']:.3f} for FAR {f:g}" for f in params["target_fars"]
                        if metrics.get(f"threshold_for_far_{f:g}") is not None), None)
        if summary_index := ev.matching.index:
            metrics.update(recall_metrics(summary_index))
            findings.append(Finding(Severity.INFO, _index_note(summary_index)))
        if cs.worst_subjects:
            findings.append(Finding(Severity.INFO, "hardest subjects (rank-1, probes): " + ", ".join(
                f"{s} {acc:.0%}/{n}" for s, acc, n in cs.worst_subjects)))
        if (~ev.mated).any():
            osr = open_set_from(summary, threshold=t)
            metrics.update({"open_set_dir": r(osr.dir), "open_set_false_alarm_rate": r(osr.false_alarm_rate),
                            "open_set_correct_rejection_rate": r(osr.correct_rejection_rate),
                            "open_set_nonmated_probes": osr.n_nonmated})
            for fpir, tpir in osr.dir_at_false_alarm.items():
                metrics[f"tpir_at_fpir_{fpir:g}"] = r(tpir)
                metrics[f"fnir_at_fpir_{fpir:g}"] = r(None if tpir is None else 1 - tpir)
            findings.append(Finding(Severity.INFO, (
                f"open set ({osr.n_mated} mated, {osr.n_nonmated} non-mated probes): TPIR = mated probes whose own "
                f"template ranks first AND scores >= the threshold (open_set_dir: {osr.dir:.1%} at {t}); FPIR = "
                f"non-mated probes whose best score is >= the threshold, i.e. accepted as someone "
                f"(open_set_false_alarm_rate: {osr.false_alarm_rate:.1%}); FNIR = 1 - TPIR. TPIR at FPIR f uses "
                f"the threshold letting at most f of the non-mated probes through"
                + "".join(f"; FPIR {f:g} not supported by {osr.n_nonmated} non-mated probes (needs "
                          f"{int(np.ceil(10 / f))})" for f, v in osr.dir_at_false_alarm.items() if v is None))))
            open_set_curve = {"thresholds": [round(float(x), 3) for x in osr.curve_thresholds],
                              "tpir": [round(float(x), 5) for x in osr.curve_dir],
                              "fnir": [round(1 - float(x), 5) for x in osr.curve_dir],
                              "fpir": [round(float(x), 5) for x in osr.curve_false_alarm_rate]}
        summary = (f"rank-1 {cs.rank_accuracy[1]:.3f}; accuracy at {t:g} {at.accuracy:.3f} with FAR "
                   f"{at.false_accept_rate:.2%}")
        data = {"headline": ["rank1", "accuracy_at_threshold", "far_at_threshold"],
                "cmc": [round(float(x), 5) for x in cs.cmc[:50]],
                "worst_subjects": [list(w) for w in cs.worst_subjects],
                "correct_rank1": cs.correct_rank1.astype(int).tolist(),
                "probe_rows": ev.probe_rows[ev.mated].tolist()}
        if (~ev.mated).any():
            data["open_set"] = open_set_curve  # the 1:N DET curve: FNIR against FPIR
        data["faces"] = _face_strips(ctx, ev)
        mislabels, view, judge_rank1 = _possible_mislabels(ctx, ev, params)
        metrics["mislabel_judge_rank1"] = r(judge_rank1)
        if judge_rank1 is not None and judge_rank1 < params["min_mislabel_rank1"]:
            # A model that misses many people cannot tell a mislabel from its own error: no probe is judged.
            findings.append(Finding(Severity.INFO, (
                f"probe labels not judged: rank-1 {view} is {judge_rank1:.1%} "
                f"(below {params['min_mislabel_rank1']:.0%}), "
                f"so a probe that looks like another person may be the model's own error")))
            mislabels = []
        correct = cs.correct_rank1.astype(bool)
        kept = ~np.isin(ev.probe_rows[ev.mated], [m["row"] for m in mislabels])
        judged = judge_rank1 is not None and judge_rank1 >= params["min_mislabel_rank1"]
        metrics["possible_mislabelled_probes"] = len(mislabels) if judged else None
        metrics["rank1_without_possible_mislabels"] = r(correct[kept].mean()) if judged and kept.any() else None
        data["possible_mislabels"] = mislabels[:MAX_LISTED]
        if mislabels:
            data["faces"].append(_mislabel_strip(ctx, mislabels[:SHOWN]))
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data,
                             context={"suggestion": f"; use {suggest}" if suggest else "",
                                      "chance": 1 / cs.n_gallery, "mislabel_view": view,
                                      "mislabel_examples": _mislabel_examples(mislabels)})


MAX_LISTED = 1000  # possible mislabels kept in the result's data


def _possible_mislabels(ctx, ev, params) -> tuple[list[dict], str, float | None]:
    """Mated probes that read as another enrolled person's photo (protocols.label_noise), judged on
    the probes' own HR images when they have them (a label belongs to the image, and at 16 px the
    model's own errors look like mislabels), clearest first; the view they were judged on; and the
    rank-1 of that view over the other probes (how well the judge knows these people)."""
    judged = ev.hr_probes() if ev.has_pairs.any() else ev
    view = "on the probes' HR images" if judged is not ev else "on the probes as matched"
    mt = judged.matching
    m = np.flatnonzero(mt.mated & (mt.rival >= 0))
    if not len(m):
        return [], view, None
    subjects, rivals = judged.probe_subjects[m], judged.template_subjects[mt.rival[m]]
    genuine, rival = mt.genuine[m], mt.rival_score[m]
    # The person's typical genuine score is read over every mated probe of the judged view.
    all_mated = np.flatnonzero(mt.mated)
    flag, typical = possible_mislabels(judged.probe_subjects[all_mated], mt.genuine[all_mated], subjects, genuine,
                                       rivals, rival, min_drop=params["mislabel_min_drop"],
                                       rival_within=params["mislabel_rival_within"])
    hits = np.flatnonzero(flag)
    hits = hits[np.argsort(genuine[hits] - rival[hits], kind="stable")]
    others = np.setdiff1d(all_mated, m[hits])
    judge_rank1 = float(np.mean(mt.ranks[others] == 1)) if len(others) else None
    probes = ctx.protocol.probes
    out = []
    for i in hits:
        row = int(judged.probe_rows[m[i]])
        out.append({"row": row, "path": str(probes[row].source.path), "subject": str(subjects[i]),
                    "resembles": str(rivals[i]), "own_score": r(genuine[i]),
                    "own_typical": r(typical(subjects[i:i + 1])[0]),
                    "other_score": r(rival[i]), "other_typical": r(typical(rivals[i:i + 1])[0])})
    return out, view, judge_rank1


def _mislabel_examples(mislabels: list[dict], shown: int = 5) -> str:
    words = "; ".join(f"{_name(m['path'])} filed as {m['subject']} looks like {m['resembles']} "
                      f"({m['other_score']:.2f}, typical {m['other_typical']:.2f}) "
                      f"vs own {m['own_score']:.2f} (typical {m['own_typical']:.2f})"
                      for m in mislabels[:shown])
    return words + (f"; and {len(mislabels) - shown} more" if len(mislabels) > shown else "")


def _name(path: str) -> str:
    return "/".join(str(path).replace("\\", "/").split("/")[-2:])


def _mislabel_strip(ctx, mislabels: list[dict]) -> dict:
    """Each possible mislabel (its HR image) beside the gallery of the person it is filed under and
    of the one it resembles."""
    first = {}
    for i, rec in enumerate(ctx.protocol.gallery):
        first.setdefault(rec.subject, i)
    return strip("Possibly mislabelled probes", "probes that look like another enrolled person's photo, not a model "
                 "error: the probe at full resolution, its own person's gallery image, the person it resembles", [
                     (f"{_name(m['path'])}: {m['subject']} or {m['resembles']}?", [
                         tile(ctx.thumbnail("probe_hr", m["row"]), f"filed as {m['subject']}"),
                         tile(ctx.thumbnail("gallery", first[m["subject"]]), f"{m['subject']} · {m['own_score']:.2f}"),
                         tile(ctx.thumbnail("gallery", first[m["resembles"]]),
                              f"{m['resembles']} · {m['other_score']:.2f}")])
                     for m in mislabels])


def _index_note(index: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in index["params"].items())
    what = (f"{index['index']} ({params})" if params else f"{index['index']} (flat inner product: exact)")
    recall = ""
    if "recall_probes" in index:
        recall = (f"; its recall against exact search on {index['recall_probes']} probes: " + ", ".join(
            f"@{k.removeprefix('index_recall_at_')} {v:.4f}" for k, v in recall_metrics(index).items()))
    return (f"candidate search by the index {what}{recall}. Rank-k, CMC and open set are as the index answers "
            "them (a template it misses does not rank); genuine scores, false accepts and the verification "
            "metrics come from the exact pass")


SHOWN = 6  # faces per strip: enough to see a pattern, few enough to keep the report light


def _face_strips(ctx, ev) -> list[dict]:
    """The worst genuine matches (a probe, its own person's gallery, the impostor that beat it)
    and the highest-scoring impostor pairs, as thumbnails of what the model saw."""
    first = {}
    for i, rec in enumerate(ctx.protocol.gallery):
        first.setdefault(rec.subject, i)
    seen = "as the model saw it" + (f" ({ctx.protocol.vlr_size} px → DSR)" if ctx.probes_need_dsr else "")
    strips = []
    mt = ev.matching
    rows = np.flatnonzero(mt.mated)
    if len(rows) and len(ev.template_subjects) > 1:
        own, rival, rival_score = mt.genuine[rows], mt.rival[rows], mt.rival_score[rows]
        worst = [i for i in np.argsort(own - rival_score, kind="stable") if rival_score[i] >= own[i]][:SHOWN]
        if worst:
            strips.append(strip("Worst genuine matches", f"probes whose own person did not rank first, probe {seen}", [
                (f"{ev.probe_subjects[rows[i]]}", [
                    tile(ctx.thumbnail("probe_dsr", int(ev.probe_rows[rows[i]])), "probe"),
                    tile(ctx.thumbnail("gallery", first[ev.probe_subjects[rows[i]]]), f"own gallery · {own[i]:.2f}"),
                    tile(ctx.thumbnail("gallery", first[ev.template_subjects[rival[i]]]),
                         f"{ev.template_subjects[rival[i]]} beat it · {rival_score[i]:.2f}")])
                for i in worst]))
    imp = ev.impostors  # its kept top is sorted, with the probe and template of each pair
    pairs = [(int(np.searchsorted(ev.probe_rows, pid)), int(t), float(s))
             for s, pid, t in zip(imp.top[:SHOWN], imp.top_probe[:SHOWN], imp.top_template[:SHOWN])]
    if pairs:
        strips.append(strip("Highest-scoring impostor pairs",
                            f"different people the model finds most alike, probe {seen}", [
            (f"{ev.probe_subjects[p]} vs {ev.template_subjects[t]}", [
                tile(ctx.thumbnail("probe_dsr", int(ev.probe_rows[p])), "probe"),
                tile(ctx.thumbnail("gallery", first[ev.template_subjects[t]]), f"{score:.2f}")])
            for p, t, score in pairs]))
    return strips
