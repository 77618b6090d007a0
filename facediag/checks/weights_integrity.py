"""weights-integrity: did the weights load completely, are they finite, were they ever trained?

Two parts that run apart. The weights' own evidence (keys matched, NaN, parameters still at
EdgeFace's init constants) needs an EdgeFace state_dict; separation (d′ of genuine against
impostor scores at full resolution) needs only embeddings, so an ONNX graph or a carded model of
another family is judged by it alone, and the finding says which part did not run.
"""
from __future__ import annotations

import numpy as np
import torch

from facediag.checks._plotdata import r
from facediag.metrics.distribution import dprime_from_moments
from facediag.checks.base import Check, Condition, Finding, Severity
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
    conditions = (
        Condition("not-loaded", Severity.FAILURE,
                  "only {matched_fraction:.1%} of the parameters came from the checkpoint ({missing_keys} missing, "
                  "{unexpected_keys} unexpected keys)", [("matched_fraction", "<", 1.0)]),
        Condition("keys-mismatch", Severity.FAILURE,
                  "the checkpoint's keys do not match the model ({missing_keys} missing, {unexpected_keys} "
                  "unexpected keys)", [("missing_keys", ">", 0), ("unexpected_keys", ">", 0)], match="any",
                  unless=("not-loaded",)),
        Condition("nonfinite-weights", Severity.FAILURE, "{nonfinite_tensors} weight tensor(s) hold NaN or Inf: "
                  "the model returns NaN", [("nonfinite_tensors", ">", 0)]),
        Condition("at-init", Severity.FAILURE,
                  "{init_fraction:.0%} of the {init_tensors} layer-scale/norm tensors still hold their initial "
                  "constants: these weights were never trained", [("init_fraction", ">", "max_init_fraction")],
                  evidence=("init_fraction",)),
        Condition("no-separation", Severity.WARNING,
                  "genuine and impostor scores barely separate (d′ {dprime:.2f} < {min_dprime}): the model behaves "
                  "as untrained on this data", [("dprime", "<", "min_dprime")]),
    )

    def run(self, ctx, params):
        loaded = ctx.model("model")
        # Key matching and init constants read an EdgeFace state_dict: not another family, not an ONNX graph.
        no_state_dict = ctx.available("state_dict")
        findings = []
        if no_state_dict is None:
            missing, unexpected = list(loaded.missing_keys), list(loaded.unexpected_keys)
            init_frac, n_init_tensors = init_signature(loaded.model)
            bad = nonfinite_parameters(loaded.model)
            metrics = {"matched_fraction": float(loaded.matched_fraction), "missing_keys": len(missing),
                       "unexpected_keys": len(unexpected), "parameters": int(loaded.parameters),
                       "nonfinite_tensors": len(bad), "init_fraction": r(init_frac)}
            if missing or unexpected:
                findings.append(Finding(Severity.INFO, "keys the checkpoint and the model disagree on",
                                        {"missing": missing[:10], "unexpected": unexpected[:10]}))
            if bad:
                findings.append(Finding(Severity.INFO, "tensors with NaN or Inf", {"tensors": bad[:10]}))
        else:
            bad, n_init_tensors = [], 0
            metrics = {"matched_fraction": None, "missing_keys": None, "unexpected_keys": None,
                       "parameters": getattr(loaded, "parameters", None), "nonfinite_tensors": None,
                       "init_fraction": None}
            findings.append(Finding(Severity.INFO, f"the weights' own evidence (keys, NaN, init constants) was not "
                                    f"read: {no_state_dict}; judged by separation alone"))
        genuine, impostor = np.zeros(0), None
        if not bad:  # NaN weights give NaN embeddings: nothing to score
            ev = ctx.evaluation("model")
            # Judge the weights on full-resolution probes when there are any: at 8 px even the
            # pretrained model barely separates people, which is resolution loss, not untrained weights.
            ev = ev.hr_probes() if ev.has_pairs.any() else ev
            genuine, impostor = ev.genuine_scores(), ev.impostors
        scored = len(genuine) and impostor is not None and impostor.n
        dp = dprime_from_moments(genuine.mean(), genuine.var(), impostor.mean, impostor.var) if scored else None
        metrics["dprime"] = r(dp)
        if dp is not None:
            findings.append(Finding(Severity.INFO, "mean scores at full resolution",
                                    {"genuine_mean": r(np.mean(genuine)), "impostor_mean": r(impostor.mean)}))
        variant = loaded.variant
        if no_state_dict is None:
            sha = (loaded.sha256 or "")[:12]
            summary = f"{variant}, {metrics['matched_fraction']:.0%} of parameters loaded, sha256 {sha or 'n/a'}…"
        else:
            summary = f"{no_state_dict}; separation d′ " + ("n/a" if dp is None else f"{dp:.2f}")
        return self.conclude(metrics, params, summary=summary, findings=findings,
                             data={"headline": ["matched_fraction", "init_fraction", "dprime"], "variant": variant,
                                   "sha256": loaded.sha256},
                             context={"init_tensors": n_init_tensors})
