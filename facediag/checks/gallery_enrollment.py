"""gallery-enrollment: the gallery is built the way deployment builds it, and is big enough."""
from __future__ import annotations

import numpy as np

from facediag.checks._faces import strip, tile
from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity
from facediag.models.presets import EDGEFACE
from facediag.models.loaded import preset_of
from facediag.protocols.label_noise import gallery_label_scores, rank1_without
from facediag.checks.registry import register


@register
class GalleryEnrollment(Check):
    name = "gallery-enrollment"
    title = "HR gallery templates, DSR probes, no classifier head in the embedding"
    params = {"min_images_per_subject": 2, "min_cohesion": 0.3, "embedding_dim": EDGEFACE.embedding_dim,
              "label_noise_margin": 0.35, "fail_label_noise_share": 0.1, "min_label_loo_rank1": 0.8}
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
        Condition("label-noise-heavy", Severity.FAILURE,
                  "{label_noise_share:.1%} of the enrolled images ({label_noise_suspects} of {label_noise_scored}) "
                  "look more like another person than their own: the gallery's labels cannot be trusted "
                  "({suspect_examples})", [("label_noise_share", ">", "fail_label_noise_share"),
                                           ("label_noise_loo_rank1", ">=", "min_label_loo_rank1")],
                  evidence=("label_noise_suspects", "label_noise_share")),
        Condition("label-noise", Severity.WARNING,
                  "{label_noise_suspects} enrolled image(s) look more like another person than their own (best other "
                  "template beats their own, built without them, by more than {label_noise_margin}): possibly "
                  "mislabelled ({suspect_examples})", [("label_noise_suspects", ">", 0),
                                                       ("label_noise_loo_rank1", ">=", "min_label_loo_rank1")],
                  unless=("label-noise-heavy",), evidence=("label_noise_suspects", "label_noise_share")),
        # A model that confuses many people cannot tell a mislabel from its own error: it judges no label.
        Condition("labels-unjudged", Severity.INFO,
                  "labels not judged: the model identifies only {label_noise_loo_rank1:.0%} of the enrolled images by "
                  "their person's other images (below {min_label_loo_rank1:.0%}), so the {label_noise_suspects} that "
                  "look more like another person may be its own errors",
                  [("label_noise_suspects", ">", 0), ("label_noise_loo_rank1", "<", "min_label_loo_rank1")]),
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
        findings = ([Finding(Severity.INFO, "subjects enrolled with too few images", {"subjects": few[:20]})]
                    if few else [])
        # Label noise: each image against its own template built without it, and every other template.
        rows = np.flatnonzero(ok)
        scores = gallery_label_scores(g_norm, gallery.subjects[ok], device=ev.device)
        sus = scores.suspects(params["label_noise_margin"])
        scored = int(np.isfinite(scores.margin).sum())
        margins = scores.margin[np.isfinite(scores.margin)]
        clean = np.delete(scores.margin, sus)
        clean = clean[np.isfinite(clean)]
        # How well the model knows these people: images its leave-one-out templates identify (the
        # suspects left out). Labels are judged only where this is high (min_label_loo_rank1).
        loo_rank1 = float(np.mean(clean < 0)) if len(clean) else None
        judged = loo_rank1 is not None and loo_rank1 >= params["min_label_loo_rank1"]
        metrics.update({"label_noise_scored": scored, "label_noise_suspects": int(len(sus)),
                        "label_noise_share": r(len(sus) / scored) if scored else None,
                        "label_noise_margin_max": r(margins.max()) if len(margins) else None,
                        "label_noise_loo_rank1": r(loo_rank1)})
        suspects = [{"row": int(rows[i]), "path": str(proto.gallery[rows[i]].path),
                     "subject": str(gallery.subjects[rows[i]]),
                     "resembles": str(scores.template_subjects[scores.other_col[i]]), "own_score": r(scores.own_loo[i]),
                     "other_score": r(scores.other[i]), "margin": r(scores.margin[i])} for i in sus[:MAX_LISTED]]
        data = {"headline": ["gallery_subjects", "gallery_images", "template_cohesion_mean"],
                "label_noise": {"margin": params["label_noise_margin"], "judged": judged, "suspects": suspects,
                                "not_listed": max(0, len(sus) - MAX_LISTED)}}
        if len(sus) and judged:
            mated = ev.matching.mated
            rank1 = float(np.mean(ev.matching.ranks[mated] == 1)) if mated.any() else None
            without = rank1_without(ev, scores, g_norm, sus, device=ev.device)
            metrics["rank1_without_label_suspects"] = r(without)
            if rank1 is not None:
                findings.append(Finding(Severity.INFO, (
                    f"with the {len(sus)} suspect image(s) left out of their templates, rank-1 would be "
                    f"{without:.1%} (now {rank1:.1%})"),
                    {"rank1": r(rank1), "rank1_without_label_suspects": r(without)}))
            data["faces"] = [_suspect_strip(ctx, gallery.subjects, suspects[:SHOWN])]
        vlr = "DSR(VLR files)" if real_vlr else (f"DSR({proto.vlr_size} px)" if ctx.probes_need_dsr else "HR")
        summary = (f"{metrics['gallery_subjects']} subjects, {metrics['gallery_images']} HR images enrolled "
                   f"(min {metrics['images_per_subject_min']}/subject); {len(proto.probes)} probes via {vlr}")
        return self.conclude(metrics, params, summary=summary, findings=findings, data=data,
                             context={"expected_dim": params["embedding_dim"],
                                      "suspect_examples": _examples(suspects, len(sus))})


MAX_LISTED = 1000  # suspects kept in the result's data (the count says how many more)
SHOWN = 12  # suspects shown as faces
BESIDE = 2  # gallery images of each person shown beside a suspect


def _examples(suspects: list[dict], n: int, shown: int = 5) -> str:
    """The clearest suspects in words, for the condition's message."""
    words = "; ".join(f"{_name(s['path'])} filed as {s['subject']} looks like {s['resembles']} "
                      f"({s['other_score']:.2f} vs {s['own_score']:.2f} own)" for s in suspects[:shown])
    return words + (f"; and {n - shown} more" if n > shown else "")


def _name(path: str) -> str:
    parts = str(path).replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def _suspect_strip(ctx, subjects: np.ndarray, suspects: list[dict]) -> dict:
    """Each suspect beside gallery images of the person it is filed under and of the person it resembles."""
    def others(subject: str, but: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(subjects == subject) if i != but][:BESIDE]

    rows = []
    for s in suspects:
        tiles = [tile(ctx.thumbnail("gallery", s["row"]), f"filed as {s['subject']}")]
        tiles += [tile(ctx.thumbnail("gallery", i), f"{s['subject']} · own {s['own_score']:.2f}")
                  for i in others(s["subject"], s["row"])]
        tiles += [tile(ctx.thumbnail("gallery", i), f"{s['resembles']} · {s['other_score']:.2f}")
                  for i in others(s["resembles"], s["row"])]
        rows.append((f"{_name(s['path'])}: {s['subject']} or {s['resembles']}?", tiles))
    return strip("Possibly mislabelled gallery images",
                 "each enrolled image that looks more like another person than its own, beside gallery images of "
                 "the person it is filed under (own: its cosine to their template without it) and of the person it "
                 "resembles (its cosine to that person's template)", rows)
