"""alignment: are the faces aligned the way ArcFace-style models expect?

EdgeFace expects a 112×112 crop whose five landmarks sit on the ArcFace template. A folder of
camera frames or loose crops is otherwise evaluated as if aligned, and its numbers mean
nothing. This check detects the landmarks (MTCNN) on a bounded sample of gallery faces as
the model sees them (after facediag's own 112 canvas) and measures how far they are from the
template: the normalised mean error by inter-ocular distance (NME), the rotation and scale of
the similarity transform that would align them, and the share of faces not found.
Medians, so that a few odd detections do not decide.
"""
from __future__ import annotations

import numpy as np
import torch

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register
from facediag.data.detect import CANVAS_MIN_FACE, CANVAS_SCALE_STEP, Detector, missing_extra
from facediag.data.landmarks import fit, nme

REMEDY = "align them with `facediag align SRC DST` (or `--align mtcnn`)"


def _uint8(pixels01) -> list[np.ndarray]:
    """[N, 3, 112, 112] in [0, 1] -> N HxWx3 uint8 arrays, as the detector takes them."""
    arr = (pixels01.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(arr)


@register
class Alignment(Check):
    name = "alignment"
    title = "Faces are aligned to the ArcFace 5-point template"
    params = {"max_nme": 0.35, "fail_nme": 0.6, "max_rotation": 8.0, "max_scale": 1.4,
              "max_not_found": 0.2, "fail_not_found": 0.5, "max_subjects": 16, "per_subject": 2}
    conditions = (
        Condition("far-from-template", Severity.FAILURE,
                  "the faces are not aligned: landmarks lie {nme_median:.2f} inter-ocular distances from the "
                  "ArcFace template (median; aligned crops ≤ {max_nme:g}); " + REMEDY,
                  [("nme_median", ">", "fail_nme")], evidence=("nme_median", "scale_median", "rotation_median")),
        Condition("off-template", Severity.WARNING,
                  "the faces look loosely aligned: landmarks lie {nme_median:.2f} inter-ocular distances from the "
                  "ArcFace template (median; aligned crops ≤ {max_nme:g}); " + REMEDY,
                  [("nme_median", ">", "max_nme")], unless=("far-from-template",),
                  evidence=("nme_median", "scale_median", "rotation_median")),
        Condition("rotated", Severity.WARNING,
                  "the faces are rotated: aligning them needs a {rotation_median:.1f}° turn (median; aligned crops "
                  "within ±{max_rotation:g}°); " + REMEDY,
                  [("rotation_median_abs", ">", "max_rotation")], evidence=("rotation_median",)),
        Condition("wrong-scale", Severity.WARNING,
                  "the faces are the wrong size: aligning them needs a {scale_median:.2f}× zoom (median; aligned "
                  "crops within {max_scale:g}×); " + REMEDY,
                  [("scale_median", "outside", "max_scale")], evidence=("scale_median",)),
        Condition("no-face", Severity.FAILURE,
                  "no face was found in {not_found_share:.0%} of the sampled images: they are not face crops, or "
                  "the faces are far too small; " + REMEDY,
                  [("not_found_share", ">", "fail_not_found")], evidence=("not_found_share",)),
        Condition("faces-missed", Severity.WARNING,
                  "no face was found in {not_found_share:.0%} of the sampled images; " + REMEDY,
                  [("not_found_share", ">", "max_not_found")], unless=("no-face",), evidence=("not_found_share",)),
    )

    def run(self, ctx, params):
        reason = missing_extra()
        if reason:
            return self.result(Status.SKIP, reason)
        pixels = ctx.sample_pixels(params["max_subjects"], params["per_subject"]).pixels
        device = str(ctx.device) if ctx.device.type == "cuda" else "cpu"
        detector = Detector(min_face_size=CANVAS_MIN_FACE, device=device, scale_step=CANVAS_SCALE_STEP)
        detections = detector.detect(_uint8(pixels))
        found = [d for d in detections if d.found]
        metrics = {"sample_images": len(detections), "faces_found": len(found),
                   "not_found_share": r(1 - len(found) / len(detections)),
                   "several_faces": sum(d.faces > 1 for d in found)}
        if not found:
            metrics.update(nme_median=None, rotation_median=None, rotation_median_abs=None, scale_median=None)
            return self.conclude(metrics, params, summary="no face found")
        fits = [fit(d.points) for d in found]
        rotation = float(np.median([f.rotation_deg for f in fits]))
        metrics.update({
            "nme_median": r(float(np.median([nme(d.points) for d in found]))),
            "rotation_median": r(rotation),
            "rotation_median_abs": r(float(np.median([abs(f.rotation_deg) for f in fits]))),
            "scale_median": r(float(np.median([f.scale for f in fits]))),
            "residual_median": r(float(np.median([f.residual for f in fits]))),
            "score_median": r(float(np.median([d.score for d in found]))),
        })
        findings = []
        if metrics["several_faces"]:
            findings.append(Finding(Severity.INFO, f"{metrics['several_faces']} sampled image(s) hold several faces: "
                                    "the largest (most central of similar size) was measured"))
        summary = (f"landmarks {metrics['nme_median']:.2f} inter-ocular distances from the template (median), "
                   f"turn {rotation:.1f}°, zoom {metrics['scale_median']:.2f}×, "
                   f"faces found in {len(found)}/{len(detections)}")
        return self.conclude(metrics, params, summary=summary, findings=findings,
                             data={"headline": ["nme_median", "scale_median", "not_found_share"]})
