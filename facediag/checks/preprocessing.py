"""preprocessing: is the model fed what it expects (RGB order, [-1, 1] range, 112×112 faces)?

Scores a sample of gallery faces three ways — EdgeFace's normalisation, raw [0, 1] input
and swapped channels — and compares how well same-person pairs separate from
different-person pairs. A model that does clearly better on an alternative was trained
on that alternative, and the deployment pipeline must match it.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.metrics import roc_auc_score

from facediag.checks._plotdata import r
from facediag.data.images import normalize
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register

VARIANTS = {
    "expected": normalize,
    "range_0_1": lambda x: x,
    "channels_swapped": lambda x: normalize(x.flip(1)),
}


def pair_auc(emb: np.ndarray, subjects: np.ndarray) -> float | None:
    """AUC of same-subject vs different-subject cosine over all pairs of a small sample."""
    x = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    iu = np.triu_indices(len(x), k=1)
    same = (subjects[:, None] == subjects[None, :])[iu]
    if same.all() or not same.any() or not np.isfinite(sims).all():
        return None
    return float(roc_auc_score(same, sims[iu]))


@register
class Preprocessing(Check):
    name = "preprocessing"
    title = "Input range, channel order and image geometry match what the model expects"
    params = {"margin": 0.01, "max_subjects": 24, "per_subject": 3}
    conditions = (
        Condition("prefers-range-0-1", Severity.FAILURE,
                  "the model separates people better with raw [0, 1] input (AUC {auc_range_0_1:.3f}) than with "
                  "EdgeFace's (x/255−0.5)/0.5 RGB input (AUC {auc_expected:.3f})",
                  [("auc_range_0_1", ">", "margin", "auc_expected")], evidence=("auc_range_0_1", "auc_expected")),
        Condition("prefers-bgr", Severity.FAILURE,
                  "the model separates people better with swapped (BGR) channels (AUC {auc_channels_swapped:.3f}) "
                  "than with EdgeFace's (x/255−0.5)/0.5 RGB input (AUC {auc_expected:.3f})",
                  [("auc_channels_swapped", ">", "margin", "auc_expected")],
                  evidence=("auc_channels_swapped", "auc_expected")),
    )

    def run(self, ctx, params):
        sample = ctx.sample_pixels(params["max_subjects"], params["per_subject"])
        pixels, subjects = sample.pixels, sample.subjects
        grey = bool((pixels[:, 0] == pixels[:, 1]).all() and (pixels[:, 1] == pixels[:, 2]).all())
        aucs = {}
        for name, norm in VARIANTS.items():
            if name == "channels_swapped" and grey:
                continue  # channel order cannot matter on greyscale faces
            # The expected input is how the gallery is embedded anyway: those embeddings, not new forwards.
            emb = ctx.embed_sample("model", sample) if norm is normalize else ctx.embed_pixels("model", pixels, norm)
            aucs[name] = pair_auc(emb, subjects)
        sizes = ctx.image_sizes()
        size_counts = Counter((w, h) for w, h, _ in sizes)
        grey_files = sum(mode in ("L", "LA", "I", "I;16", "1", "P") and mode != "P" for _, _, mode in sizes)
        non_square = sum(w != h for w, h, _ in sizes)
        metrics = {f"auc_{k}": r(v) for k, v in aucs.items()}
        metrics.update({"sample_images": len(pixels), "greyscale_share": r(grey_files / max(len(sizes), 1)),
                        "non_square_share": r(non_square / max(len(sizes), 1)),
                        "distinct_sizes": len(size_counts)})
        findings = []
        base = aucs.get("expected")
        if base is None:
            return self.result(Status.SKIP, "the sample has no same-person pair to score", metrics)
        if grey:
            findings.append(Finding(Severity.INFO, "the faces are greyscale: channel order was not tested"))
        common = size_counts.most_common(1)[0][0] if size_counts else None
        if common and common != (112, 112):
            findings.append(Finding(Severity.INFO, f"most images are {common[0]}×{common[1]}: scaled so the "
                                    f"longer side is 112, then padded centred (never stretched)"))
        summary = (f"expected input separates best (AUC {base:.3f}); "
                   + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items() if k != "expected" and v is not None))
        return self.conclude(metrics, params, summary=summary, findings=findings,
                             data={"headline": list(metrics)[:3]})
