"""weights-integrity: did the weights load completely, are they finite, were they ever trained?"""
from __future__ import annotations

import numpy as np
import torch

from facediag.checks._plotdata import r
from facediag.metrics.distribution import dprime
from facediag.checks.base import Check, Finding, Severity, Status
from facediag.checks.registry import register

# EdgeNeXt initialises every layer-scale gamma to this constant and every norm to (1, 0):
# a backbone whose tensors all still hold these values was never trained or never loaded.
_GAMMA_INIT = 1e-6


def init_signature(module: torch.nn.Module) -> tuple[float, int]:
    """Share of layer-scale gammas and norm layers still exactly at their initial constants."""
    at_init = total = 0
    for mod in module.modules():
        if isinstance(mod, (torch.nn.LayerNorm, torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm)):
            if getattr(mod, "weight", None) is None:
                continue
            total += 1
            at_init += bool(torch.all(mod.weight == 1) and (mod.bias is None or torch.all(mod.bias == 0)))
        for pname, p in mod.named_parameters(recurse=False):
            if pname.startswith("gamma"):
                total += 1
                at_init += bool(torch.all(p == _GAMMA_INIT))
    return (at_init / total if total else 0.0), total


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    return [n for n, p in module.state_dict().items()
            if torch.is_tensor(p) and p.is_floating_point() and not torch.isfinite(p).all()]


@register
class WeightsIntegrity(Check):
    name = "weights-integrity"
    title = "Weights loaded completely, finite, and trained"
    params = {"max_init_fraction": 0.5, "min_dprime": 1.0}

    def run(self, ctx, params):
        loaded = ctx.model("model")
        matched = float(getattr(loaded, "matched_fraction", 1.0))
        missing = list(getattr(loaded, "missing_keys", []) or [])
        unexpected = list(getattr(loaded, "unexpected_keys", []) or [])
        init_frac, n_init_tensors = init_signature(loaded.model)
        bad = nonfinite_parameters(loaded.model)
        genuine = impostor = np.zeros(0)
        if not bad:  # NaN weights give NaN embeddings: nothing to score
            ev = ctx.evaluation("model")
            # Judge the weights on full-resolution probes when there are any: at 8 px even the
            # pretrained model barely separates people, which is resolution loss, not untrained weights.
            ev = ev.hr_probes() if ev.has_pairs.any() else ev
            genuine, impostor = ev.genuine_scores(), ev.impostor_scores()
        dp = dprime(genuine, impostor) if len(genuine) and len(impostor) else None
        metrics = {
            "matched_fraction": matched, "missing_keys": len(missing), "unexpected_keys": len(unexpected),
            "parameters": int(getattr(loaded, "parameters", 0) or sum(p.numel() for p in loaded.model.parameters())),
            "nonfinite_tensors": len(bad), "init_fraction": r(init_frac), "dprime": r(dp),
        }
        findings, status = [], Status.PASS
        if matched < 1.0 or missing or unexpected:
            status = Status.FAIL
            findings.append(Finding(Severity.FAILURE,
                                    f"only {matched:.1%} of the parameters came from the checkpoint "
                                    f"({len(missing)} missing, {len(unexpected)} unexpected keys)",
                                    {"missing": missing[:10], "unexpected": unexpected[:10]}))
        if bad:
            status = Status.FAIL
            findings.append(Finding(Severity.FAILURE, f"{len(bad)} weight tensor(s) hold NaN or Inf",
                                    {"tensors": bad[:10]}))
        if n_init_tensors and init_frac > params["max_init_fraction"]:
            status = Status.FAIL
            findings.append(Finding(Severity.FAILURE,
                                    f"{init_frac:.0%} of the {n_init_tensors} layer-scale/norm tensors still hold "
                                    f"their initial constants: these weights were never trained",
                                    {"init_fraction": r(init_frac)}))
        if dp is not None and dp < params["min_dprime"]:
            status = Status.FAIL if status == Status.FAIL else Status.WARN
            findings.append(Finding(Severity.WARNING,
                                    f"genuine and impostor scores barely separate (d′ {dp:.2f} < {params['min_dprime']}): "
                                    f"the model behaves as untrained on this data",
                                    {"genuine_mean": r(np.mean(genuine)), "impostor_mean": r(np.mean(impostor))}))
        variant = getattr(loaded, "variant", "?")
        sha = (getattr(loaded, "sha256", None) or "")[:12]
        summary = (f"{variant}, {matched:.0%} of parameters loaded, sha256 {sha or 'n/a'}…"
                   if status == Status.PASS else findings[0].message)
        return self.result(status, summary, metrics, findings,
                           {"headline": ["matched_fraction", "init_fraction", "dprime"], "variant": variant,
                            "sha256": getattr(loaded, "sha256", None)})
