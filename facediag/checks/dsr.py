"""dsr-vs-bicubic: the DSR network against plain bicubic upsampling on the same probes.

A DSR exists to give the face model more to work with than bicubic does. One that loses people
bicubic keeps (blurred, hallucinated or shifted faces) costs rank-1 that otherwise reads as the
model's fault. Both views of the probes come from the same low-resolution inputs and go
through the same engine and cache (Session views probe_dsr and probe_bicubic); rank-1 is
compared per probe, paired, by an exact McNemar test, and the pixels of each against the
probes' own HR images by PSNR and SSIM (scikit-image) where those exist.
"""
from __future__ import annotations

import numpy as np

from facediag.checks._plotdata import r
from facediag.checks.base import Check, Condition, Finding, Severity, Status
from facediag.checks.registry import register
from facediag.metrics.significance import mcnemar_exact


@register
class DsrVsBicubic(Check):
    name = "dsr-vs-bicubic"
    title = "The DSR against plain bicubic on the same probes (rank-1, McNemar, PSNR/SSIM)"
    requires = ("dsr",)
    params = {"alpha": 0.05}
    conditions = (
        Condition("dsr-worse", Severity.FAILURE,
                  "{dsr} loses people plain bicubic keeps: rank-1 {rank1_dsr:.3f} against {rank1_bicubic:.3f} "
                  "with bicubic ({dsr_lost} probes lost, {dsr_won} won; exact McNemar p = {mcnemar_p:.2g})",
                  [("rank1_delta", "<", 0.0), ("mcnemar_p", "<", "alpha")],
                  evidence=("rank1_dsr", "rank1_bicubic", "mcnemar_p", "dsr_lost", "dsr_won")),
        Condition("dsr-worse-by-chance", Severity.INFO,
                  "rank-1 {rank1_dsr:.3f} through {dsr} is below bicubic's {rank1_bicubic:.3f}, within chance "
                  "(exact McNemar p = {mcnemar_p:.2g} ≥ {alpha})",
                  [("rank1_delta", "<", 0.0), ("mcnemar_p", ">=", "alpha")], evidence=("mcnemar_p",)),
        Condition("pixels-worse", Severity.INFO,
                  "{dsr}'s outputs are further from the HR images than bicubic's: PSNR {psnr_dsr:.2f} against "
                  "{psnr_bicubic:.2f} dB, SSIM {ssim_dsr:.3f} against {ssim_bicubic:.3f}",
                  [("psnr_delta", "<", 0.0), ("ssim_delta", "<", 0.0)],
                  evidence=("psnr_dsr", "psnr_bicubic", "ssim_dsr", "ssim_bicubic")),
    )

    def run(self, ctx, params):
        name = getattr(ctx.dsr, "name", "the DSR")
        dsr, bicubic = ctx.evaluation("model"), ctx.evaluation("model", "probe_bicubic")
        rows = np.intersect1d(dsr.probe_rows[dsr.mated], bicubic.probe_rows[bicubic.mated])
        if not len(rows):
            return self.result(Status.SKIP, "no probe's subject is enrolled in the gallery: rank-1 cannot be "
                                            "compared (see subject-overlap)")
        correct_d, genuine_d = _per_probe(dsr, rows)
        correct_b, genuine_b = _per_probe(bicubic, rows)
        test = mcnemar_exact(correct_b, correct_d)  # b01: bicubic wrong, DSR right
        metrics = {
            "rank1_dsr": r(correct_d.mean()), "rank1_bicubic": r(correct_b.mean()),
            "rank1_delta": r(correct_d.mean() - correct_b.mean()),
            "genuine_mean_dsr": r(genuine_d.mean()), "genuine_mean_bicubic": r(genuine_b.mean()),
            "genuine_delta": r(genuine_d.mean() - genuine_b.mean()),
            "mcnemar_p": r(test["p_value"], 6), "dsr_won": test["b01"], "dsr_lost": test["b10"],
            "n_probes": int(len(rows)),
        }
        findings = []
        try:
            q_rows, q_dsr = ctx.probe_quality("probe_dsr")
            _, q_bic = ctx.probe_quality("probe_bicubic")
        except ImportError as e:
            findings.append(Finding(Severity.INFO, f"PSNR/SSIM against the HR images left out: {e}"))
        else:
            ok = np.isfinite(q_dsr).all(axis=1) & np.isfinite(q_bic).all(axis=1)
            if ok.any():
                (psnr_d, ssim_d), (psnr_b, ssim_b) = q_dsr[ok].mean(axis=0), q_bic[ok].mean(axis=0)
                metrics.update(psnr_dsr=r(psnr_d, 3), psnr_bicubic=r(psnr_b, 3), psnr_delta=r(psnr_d - psnr_b, 3),
                               ssim_dsr=r(ssim_d), ssim_bicubic=r(ssim_b), ssim_delta=r(ssim_d - ssim_b),
                               n_quality=int(ok.sum()))
            else:
                findings.append(Finding(Severity.INFO, "PSNR/SSIM left out: no probe has its own HR image"
                                        if not len(q_rows)
                                        else "PSNR/SSIM left out: no probe's HR image could be read"))
        summary = (f"{name}: rank-1 {metrics['rank1_dsr']:.3f} against {metrics['rank1_bicubic']:.3f} with bicubic "
                   f"(McNemar p = {metrics['mcnemar_p']:.2g})")
        if "psnr_dsr" in metrics:
            summary += f"; PSNR {metrics['psnr_dsr']:.2f} against {metrics['psnr_bicubic']:.2f} dB"
        return self.conclude(metrics, params, summary=summary, findings=findings, context={"dsr": name},
                             data={"dsr": name, "headline": ["rank1_dsr", "rank1_bicubic", "mcnemar_p"]})


def _per_probe(ev, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 correctness and genuine score of the mated probes at ``rows`` (protocol rows)."""
    mated_rows = ev.probe_rows[ev.mated]
    at = np.searchsorted(mated_rows, rows)  # probe rows are in protocol order
    return ev.rank1_correct()[at], ev.genuine_scores()[at]
