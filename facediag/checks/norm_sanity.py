"""norm-sanity: raw embedding norms, NaN/Inf, collapse and dead dimensions, HR vs DSR norm shift."""
from __future__ import annotations

import numpy as np

from facediag.checks._plotdata import histogram, r
from facediag.metrics.distribution import dead_dimensions, effective_rank, mean_pairwise_cosine, norm_stats
from facediag.checks.base import Check, Finding, Severity, Status, worst
from facediag.checks.registry import register


@register
class NormSanity(Check):
    name = "norm-sanity"
    title = "Embedding norms, NaN/Inf, collapse and dead dimensions"
    params = {"max_impostor_mean": 0.7, "min_effective_rank": 8.0, "max_dead_fraction": 0.1,
              "max_norm_ratio": 1.5}

    def run(self, ctx, params):
        hr = ctx.embeddings("model", "gallery")
        dsr = ctx.embeddings("model", "probe_dsr")
        s_hr, s_dsr = norm_stats(hr.raw[~_failed(hr)]), norm_stats(dsr.raw[~_failed(dsr)])
        nonfinite = s_hr["n_nan_rows"] + s_hr["n_inf_rows"] + s_dsr["n_nan_rows"] + s_dsr["n_inf_rows"]
        findings, status = [], Status.PASS

        metrics = {"hr_norm_mean": r(s_hr.get("norm_mean")), "hr_norm_std": r(s_hr.get("norm_std")),
                   "dsr_norm_mean": r(s_dsr.get("norm_mean")), "dsr_norm_std": r(s_dsr.get("norm_std")),
                   "nonfinite_embeddings": int(nonfinite)}
        if nonfinite:
            status = worst([status, Status.FAIL])
            findings.append(Finding(Severity.FAILURE, f"{nonfinite} embedding(s) contain NaN or Inf"))
        x = np.concatenate([hr.raw[hr.valid], dsr.raw[dsr.valid]])
        subjects = np.concatenate([hr.subjects[hr.valid], dsr.subjects[dsr.valid]])
        if len(x) < 2:
            return self.result(Status.FAIL if nonfinite else Status.SKIP, "too few finite embeddings", metrics, findings)
        normed = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        imp_mean = mean_pairwise_cosine(normed, subjects)
        erank = effective_rank(normed)
        dead = dead_dimensions(x)
        ratio = (s_dsr["norm_mean"] / s_hr["norm_mean"]) if s_hr.get("norm_mean") and s_dsr.get("norm_mean") else None
        metrics.update({"impostor_mean": r(imp_mean), "effective_rank": r(erank, 2),
                        "dead_dimensions": dead.n_dead, "dead_fraction": r(dead.n_dead / dead.n_dims),
                        "dsr_hr_norm_ratio": r(ratio)})
        if imp_mean >= params["max_impostor_mean"]:
            status = worst([status, Status.FAIL])
            findings.append(Finding(Severity.FAILURE,
                                    f"embeddings have collapsed: different people's images score {imp_mean:.2f} "
                                    f"mean cosine (healthy ≈ 0.05)", {"impostor_mean": r(imp_mean)}))
        if erank < params["min_effective_rank"]:
            # Few dimensions alone is not collapse: a model trained briefly on few people can
            # separate them well in ~8 dimensions. Collapse is when impostors match (above).
            status = worst([status, Status.WARN])
            findings.append(Finding(Severity.WARNING,
                                    f"the embeddings span about {erank:.1f} effective dimensions of {x.shape[1]}: "
                                    f"most of the model's capacity is unused (dimensional collapse)"))
        if dead.n_dead / dead.n_dims > params["max_dead_fraction"]:
            status = worst([status, Status.WARN])
            findings.append(Finding(Severity.WARNING, f"{dead.n_dead} of {dead.n_dims} dimensions never vary"))
        if ratio is not None and not 1 / params["max_norm_ratio"] <= ratio <= params["max_norm_ratio"]:
            status = worst([status, Status.WARN])
            findings.append(Finding(Severity.WARNING,
                                    f"DSR probes embed with {ratio:.2f}× the norm of HR images: the model "
                                    f"treats super-resolved faces as another domain"))
        data = {"headline": ["impostor_mean", "effective_rank", "dsr_hr_norm_ratio"],
                "norm_histograms": {
                    "hr": histogram(np.linalg.norm(hr.raw[hr.valid], axis=1), 40, _range(x)),
                    "dsr": histogram(np.linalg.norm(dsr.raw[dsr.valid], axis=1), 40, _range(x))}}
        summary = (f"norms HR {metrics['hr_norm_mean']:.2f} / DSR {metrics['dsr_norm_mean']:.2f}; impostor "
                   f"cosine {imp_mean:.2f}; effective rank {erank:.0f}" if status == Status.PASS
                   else findings[0].message)
        return self.result(status, summary, metrics, findings, data)


def _failed(emb) -> np.ndarray:
    """Rows that failed to decode (not the model's fault), as opposed to NaN the model produced."""
    mask = np.zeros(len(emb.raw), bool)
    mask[list(emb.failures)] = True
    return mask


def _range(x) -> tuple[float, float]:
    norms = np.linalg.norm(x, axis=1)
    return float(norms.min()) * 0.95, float(norms.max()) * 1.05 + 1e-6
