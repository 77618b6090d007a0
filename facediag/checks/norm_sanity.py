"""norm-sanity: raw embedding norms, NaN/Inf, collapse and dead dimensions, HR vs DSR norm shift."""
from __future__ import annotations

import numpy as np

from facediag.checks._plotdata import histogram, r
from facediag.metrics.distribution import (
    COLLAPSE_IMPOSTOR,
    dead_dimensions,
    effective_rank,
    mean_pairwise_cosine,
    norm_stats,
)
from facediag.checks.base import Check, Condition, Severity, Status
from facediag.checks.registry import register


@register
class NormSanity(Check):
    name = "norm-sanity"
    title = "Embedding norms, NaN/Inf, collapse and dead dimensions"
    params = {"max_impostor_mean": COLLAPSE_IMPOSTOR, "min_effective_rank": 8.0, "max_dead_fraction": 0.1,
              "max_norm_ratio": 1.5}
    conditions = (
        Condition("nonfinite", Severity.FAILURE, "{nonfinite_embeddings} embedding(s) contain NaN or Inf",
                  [("nonfinite_embeddings", ">", 0)]),
        Condition("impostors-match", Severity.FAILURE,
                  "embeddings have collapsed: different people's images score {impostor_mean:.2f} mean cosine "
                  "(healthy ≈ 0.05)", [("impostor_mean", ">=", "max_impostor_mean")], evidence=("impostor_mean",)),
        # Few dimensions alone is not collapse: a model trained briefly on few people can
        # separate them well in ~8 dimensions. Collapse is when impostors match (above).
        Condition("low-rank", Severity.WARNING,
                  "the embeddings span about {effective_rank:.1f} effective dimensions of {dims}: most of the "
                  "model's capacity is unused (dimensional collapse)", [("effective_rank", "<", "min_effective_rank")]),
        Condition("dead-dimensions", Severity.WARNING, "{dead_dimensions} of {dims} dimensions never vary",
                  [("dead_fraction", ">", "max_dead_fraction")]),
        Condition("norm-shift", Severity.WARNING,
                  "DSR probes embed with {dsr_hr_norm_ratio:.2f}× the norm of HR images: the model treats "
                  "super-resolved faces as another domain", [("dsr_hr_norm_ratio", "outside", "max_norm_ratio")]),
    )

    def run(self, ctx, params):
        hr = ctx.embeddings("model", "gallery")
        dsr = ctx.embeddings("model", "probe_dsr")
        s_hr, s_dsr = norm_stats(hr.raw[~_failed(hr)]), norm_stats(dsr.raw[~_failed(dsr)])
        nonfinite = s_hr["n_nan_rows"] + s_hr["n_inf_rows"] + s_dsr["n_nan_rows"] + s_dsr["n_inf_rows"]
        metrics = {"hr_norm_mean": r(s_hr.get("norm_mean")), "hr_norm_std": r(s_hr.get("norm_std")),
                   "dsr_norm_mean": r(s_dsr.get("norm_mean")), "dsr_norm_std": r(s_dsr.get("norm_std")),
                   "nonfinite_embeddings": int(nonfinite)}
        x = np.concatenate([hr.raw[hr.valid], dsr.raw[dsr.valid]])
        subjects = np.concatenate([hr.subjects[hr.valid], dsr.subjects[dsr.valid]])
        if len(x) < 2:
            if nonfinite:  # the model returns NaN: say so, whatever else cannot be measured
                return self.conclude(metrics, params, summary="too few finite embeddings")
            return self.result(Status.SKIP, "too few finite embeddings", metrics)
        normed = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        imp_mean = mean_pairwise_cosine(normed, subjects)
        erank = effective_rank(normed)
        dead = dead_dimensions(x)
        ratio = (s_dsr["norm_mean"] / s_hr["norm_mean"]) if s_hr.get("norm_mean") and s_dsr.get("norm_mean") else None
        metrics.update({"impostor_mean": r(imp_mean), "effective_rank": r(erank, 2),
                        "dead_dimensions": dead.n_dead, "dead_fraction": r(dead.n_dead / dead.n_dims),
                        "dsr_hr_norm_ratio": r(ratio)})
        data = {"headline": ["impostor_mean", "effective_rank", "dsr_hr_norm_ratio"],
                "norm_histograms": {
                    "hr": histogram(np.linalg.norm(hr.raw[hr.valid], axis=1), 40, _range(x)),
                    "dsr": histogram(np.linalg.norm(dsr.raw[dsr.valid], axis=1), 40, _range(x))}}
        summary = (f"norms HR {metrics['hr_norm_mean']:.2f} / DSR {metrics['dsr_norm_mean']:.2f}; impostor "
                   f"cosine {imp_mean:.2f}; effective rank {erank:.0f}")
        return self.conclude(metrics, params, summary=summary, data=data, context={"dims": x.shape[1]})


def _failed(emb) -> np.ndarray:
    """Rows that failed to decode (not the model's fault), as opposed to NaN the model produced."""
    mask = np.zeros(len(emb.raw), bool)
    mask[list(emb.failures)] = True
    return mask


def _range(x) -> tuple[float, float]:
    norms = np.linalg.norm(x, axis=1)
    return float(norms.min()) * 0.95, float(norms.max()) * 1.05 + 1e-6
