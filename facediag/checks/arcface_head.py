"""arcface-head: how HR and DSR embeddings score against the checkpoint's own class centres.

The head is never part of the embedding (matching uses the backbone output), but its class
centres say what training optimised: a big HR-vs-DSR gap, or a label map that does not
fit the data, explains results that gallery matching alone cannot.
"""
from __future__ import annotations

import numpy as np

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register


def map_subjects(subjects, label_map: dict | None) -> np.ndarray:
    """Class index per subject (-1 when the label map does not know it). Keys may be '001', 1 or 's1'."""
    if not label_map:
        return np.full(len(subjects), -1)
    lookup = {str(k): int(v) for k, v in label_map.items()}
    lookup.update({str(k).lstrip("0") or "0": int(v) for k, v in label_map.items()})
    return np.array([lookup.get(s, lookup.get(s.lstrip("0") or "0", -1)) for s in subjects])


@register
class ArcFaceHead(Check):
    name = "arcface-head"
    title = "HR vs DSR scores against the checkpoint's ArcFace class centres"
    requires = ("head",)
    params = {"max_gap": 0.6, "min_label_coverage": 0.5}
    conditions = (
        Condition("label-map-size", Severity.WARNING,
                  "the label map names {label_map_size} subjects but the head has {head_classes} classes",
                  [("label_map_size", ">", 0), ("label_map_size", "!=", 0, "head_classes")]),
        Condition("label-coverage", Severity.WARNING,
                  "only {label_coverage:.0%} of the data's subjects are in the checkpoint's label map: the head was "
                  "trained on other people (or ids are spelt differently)",
                  [("label_coverage", "<", "min_label_coverage")]),
        Condition("domain-gap", Severity.WARNING,
                  "HR images score {hr_c:.2f} against their class centre, DSR probes {dsr_c:.2f}: the head "
                  "separates the two domains", [("hr_dsr_gap", ">", "max_gap")]),
    )

    def run(self, ctx, params):
        loaded = ctx.model("model")
        w = loaded.head.detach().float().cpu().numpy()
        w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        label_map = loaded.label_map
        findings = []
        metrics = {"head_classes": int(w.shape[0]), "label_map_size": len(label_map) if label_map else 0}
        if w.shape[1] != ctx.embeddings("model", "gallery").raw.shape[1]:
            return self.result(Status.FAIL, f"head is {w.shape[1]}-d but embeddings are "
                               f"{ctx.embeddings('model', 'gallery').raw.shape[1]}-d", metrics)
        views = {}
        for view, key in (("hr", "gallery"), ("dsr", "probe_dsr")):
            emb = ctx.embeddings("model", key)
            ok = emb.valid
            x = emb.raw[ok] / np.linalg.norm(emb.raw[ok], axis=1, keepdims=True)
            views[view] = (x @ w.T, map_subjects(emb.subjects[ok], label_map))
        if label_map:
            data_subjects = set(ctx.protocol.gallery_subjects) | set(ctx.protocol.probe_subjects)
            covered = map_subjects(sorted(data_subjects), label_map) >= 0
            coverage = float(covered.mean())
            metrics["label_coverage"] = r(coverage)
            for view, (cos, cls) in views.items():
                known = (cls >= 0) & (cls < w.shape[0])
                if known.any():
                    own = cos[known, cls[known]]
                    metrics[f"{view}_class_cosine"] = r(own.mean())
                    metrics[f"{view}_head_top1"] = r((cos[known].argmax(axis=1) == cls[known]).mean())
        else:
            findings.append(Finding(Severity.INFO, "no label map in the checkpoint: scores are to the nearest centre"))
            for view, (cos, _) in views.items():
                metrics[f"{view}_nearest_centre_cosine"] = r(cos.max(axis=1).mean())
        hr_c = metrics.get("hr_class_cosine", metrics.get("hr_nearest_centre_cosine"))
        dsr_c = metrics.get("dsr_class_cosine", metrics.get("dsr_nearest_centre_cosine"))
        if hr_c is not None and dsr_c is not None:
            metrics["hr_dsr_gap"] = r(hr_c - dsr_c)
        summary = (f"class-centre cosine HR {hr_c:.2f}, DSR {dsr_c:.2f} over {w.shape[0]} classes"
                   if hr_c is not None and dsr_c is not None else "head scored")
        return self.conclude(metrics, params, summary=summary, findings=findings,
                             data={"headline": [k for k in ("hr_class_cosine", "dsr_class_cosine", "hr_dsr_gap")
                                                if k in metrics]},
                             context={"hr_c": hr_c, "dsr_c": dsr_c})
