"""gallery-enrollment: the gallery is built the way deployment builds it, and is big enough."""
from __future__ import annotations

import numpy as np

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity
from facediag.models.presets import EDGEFACE
from facediag.models.protocol import preset_of
from facediag.checks.registry import register


@register
class GalleryEnrollment(Check):
    name = "gallery-enrollment"
    title = "HR gallery templates, DSR probes, no classifier head in the embedding"
    params = {"min_images_per_subject": 2, "min_cohesion": 0.3, "embedding_dim": EDGEFACE.embedding_dim}
    conditions = (
        Condition("wrong-dimension", Severity.FAILURE,
                  "the model outputs {embedding_dim}-d vectors, not {expected_dim}-d embeddings: a classifier head may "
                  "be part of the embedding", [("embedding_dim", "!=", "embedding_dim")]),
        Condition("few-images", Severity.WARNING,
                  "{subjects_below_min} subject(s) enrol fewer than {min_images_per_subject} HR image(s): their "
                  "templates rest on one shot", [("subjects_below_min", ">", 0)]),
        Condition("noisy-templates", Severity.WARNING,
                  "gallery images sit far from their own templates (mean cosine {template_cohesion_mean:.2f}): "
                  "templates are noisy", [("template_cohesion_mean", "<", "min_cohesion")]),
    )

    def run(self, ctx, params):
        loaded = ctx.model("model")
        if getattr(loaded, "card", None):  # a model card states the width its model returns
            params = {**params, "embedding_dim": preset_of(loaded).embedding_dim}
        proto = ctx.protocol
        ev = ctx.evaluation("model")
        gallery = ctx.embeddings("model", "gallery")
        counts = np.array(list(ev.gallery_counts.values()))
        dim = gallery.raw.shape[1]
        # Cohesion: how close each enrolled image sits to its own template (HR vs HR).
        ok = gallery.valid
        g_norm = gallery.raw[ok] / np.linalg.norm(gallery.raw[ok], axis=1, keepdims=True)
        cols = np.searchsorted(ev.template_subjects, gallery.subjects[ok])
        cohesion = np.einsum("ij,ij->i", g_norm, ev.templates[cols])
        few = sorted(s for s, c in ev.gallery_counts.items() if c < params["min_images_per_subject"])
        real_vlr = sum(p.vlr is not None for p in proto.probes)
        metrics = {
            "gallery_images": int(ok.sum()), "gallery_subjects": len(ev.template_subjects),
            "images_per_subject_min": int(counts.min()), "images_per_subject_median": float(np.median(counts)),
            "subjects_below_min": len(few), "template_cohesion_mean": r(cohesion.mean()),
            "embedding_dim": int(dim), "probes": len(proto.probes), "probes_real_vlr": int(real_vlr),
            "probes_synthetic_vlr": int(len(proto.probes) - real_vlr) if ctx.probes_need_dsr else 0,
        }
        findings = [Finding(Severity.INFO, "subjects enrolled with too few images", {"subjects": few[:20]})] if few else []
        vlr = "DSR(VLR files)" if real_vlr else (f"DSR({proto.vlr_size} px)" if ctx.probes_need_dsr else "HR")
        summary = (f"{metrics['gallery_subjects']} subjects, {metrics['gallery_images']} HR images enrolled "
                   f"(min {metrics['images_per_subject_min']}/subject); {len(proto.probes)} probes via {vlr}")
        return self.conclude(metrics, params, summary=summary, findings=findings,
                             data={"headline": ["gallery_subjects", "gallery_images", "template_cohesion_mean"]},
                             context={"expected_dim": params["embedding_dim"]})
