"""dsr-vs-bicubic and the dsr-hurts diagnosis: a DSR that makes faces worse than plain bicubic is
named (planted: bicubic then a 9×9 Gaussian blur, σ 2.5, as TorchScript), one as good as bicubic
passes, a run without --dsr skips; the bicubic view is cached and decodes nothing again."""
import uuid

import pytest
import torch
from torch import nn

from facediag.checks.base import CheckResult, ConditionOutcome, Severity, Status
from facediag.checks.dsr import DsrVsBicubic
from facediag.checks.registry import run_check
from facediag.diagnosis import diagnose
from facediag.models.dsr import ModuleDSR
from facediag.session import Session, SessionConfig
from helpers import BicubicNet, BlurDSR, loaded_model, script_dsr, write_demo_faces


@pytest.fixture(scope="module")
def blur_dsr(tmp_path_factory):
    return script_dsr(BlurDSR(), tmp_path_factory.mktemp("dsr") / "blur_dsr.pt")


@pytest.fixture(scope="module")
def bicubic_dsr(tmp_path_factory):
    return script_dsr(BicubicNet(), tmp_path_factory.mktemp("dsr") / "bicubic_net.pt")


@pytest.fixture(scope="module")
def blur_report(run, float_weights, orl_root, blur_dsr):
    """The official float xxs on ORL, 16 px probes through the blur DSR: the whole default suite."""
    return run(float_weights, orl_root, vlr_size=16, dsr=str(blur_dsr))


def ids(report):
    return {d.id for d in report.diagnoses}


# --- on ORL with the official weights -------------------------------------------------------

def test_a_dsr_worse_than_bicubic_fails_and_is_diagnosed_dsr_hurts(blur_report):
    res = blur_report.result("dsr-vs-bicubic")
    m = res.metrics
    assert res.status == Status.FAIL and res.met("dsr-worse"), res.summary
    assert m["rank1_dsr"] < m["rank1_bicubic"] and m["mcnemar_p"] < 0.05
    assert m["dsr_lost"] > m["dsr_won"] and m["n_probes"] == 280
    assert m["rank1_bicubic"] == pytest.approx(0.79, abs=0.03)  # DESIGN: ORL at 16 px through bicubic
    # The blur's pixels are further from the HR images, on every probe (ORL: each has its HR image).
    assert m["n_quality"] == 280
    assert m["psnr_dsr"] < m["psnr_bicubic"] and m["ssim_dsr"] < m["ssim_bicubic"]
    assert res.met("pixels-worse")
    assert res.data["dsr"] == "blur_dsr.pt" and "blur_dsr.pt" in res.summary

    assert ids(blur_report) == {"dsr-hurts"}  # not hr-dsr-domain-gap (the wrong remedy), nothing else
    d = next(d for d in blur_report.diagnoses if d.id == "dsr-hurts")
    assert d.severity == "failure" and "blur_dsr.pt" in d.summary
    text = " ".join(d.evidence)
    assert f"{m['rank1_dsr']:.1%}" in text and f"{m['rank1_bicubic']:.1%}" in text and "McNemar" in text
    assert "PSNR" in text and "SSIM" in text
    assert "bicubic" in d.remedy and "identity" in d.remedy
    assert "dsr-vs-bicubic: dsr-worse" in d.explains


def test_a_dsr_as_good_as_bicubic_passes(run, float_weights, orl_root, bicubic_dsr):
    rep = run(float_weights, orl_root, vlr_size=16, dsr=str(bicubic_dsr))
    res = rep.result("dsr-vs-bicubic")
    assert res.status == Status.PASS, res.summary
    assert res.metrics["rank1_dsr"] == res.metrics["rank1_bicubic"] and res.metrics["mcnemar_p"] == 1.0
    assert res.metrics["psnr_dsr"] == pytest.approx(res.metrics["psnr_bicubic"], abs=0.01)
    assert not ids(rep) & {"dsr-hurts", "hr-dsr-domain-gap"}


def test_without_a_dsr_the_check_skips(pretrained_report, run, float_weights, orl_root):
    res = pretrained_report.result("dsr-vs-bicubic")  # 16 px probes through plain bicubic
    assert res.status == Status.SKIP and "bicubic" in res.summary
    assert "dsr-hurts" not in ids(pretrained_report)
    hr = run(float_weights, orl_root, vlr_size=None, checks=["dsr-vs-bicubic"]).result("dsr-vs-bicubic")
    assert hr.status == Status.SKIP and "full resolution" in hr.summary


def test_a_second_run_embeds_and_super_resolves_nothing(blur_report, cache, float_weights, orl_root, blur_dsr):
    """The run above filled the cache: the check's bicubic view, its evaluation and PSNR/SSIM are
    all served from it; no DSR or bicubic pass runs, the model embeds nothing."""
    s = Session(SessionConfig(weights=float_weights, data=orl_root, vlr_size=16, dsr=str(blur_dsr),
                              cache_dir=cache, progress=False, device="cpu"))
    res = run_check(DsrVsBicubic(), s, DsrVsBicubic.params, s.available)
    assert res.metrics == blur_report.result("dsr-vs-bicubic").metrics
    assert s.embedder("model").images_embedded == 0
    assert s.pixels.dsr_out is None and s.pixels.bicubic_out is None and not s.pixels.quality_hr


# --- each image decoded once, on synthetic faces with a small model --------------------------

@pytest.fixture
def faces(tmp_path):
    return write_demo_faces(tmp_path / "data", 8)


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.images = inner, 0

    def forward(self, x):
        self.images += len(x)
        return self.inner(x)


def _session(data, cache, model, dsr):
    s = Session(SessionConfig(data=data, vlr_size=16, cache_dir=cache, progress=False, device="cpu"),
                models={"model": model}, dsr=dsr)
    return s


def test_the_bicubic_view_decodes_nothing_again_and_is_cached(faces, tmp_path, decodes):
    torch.manual_seed(0)
    module = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32))
    model = loaded_model(module, sha256=uuid.uuid4().hex)
    net = Counting(BlurDSR())
    s = _session(faces, tmp_path / "cache", model, ModuleDSR(net, "blur", "blur-v1"))
    res = run_check(DsrVsBicubic(), s, DsrVsBicubic.params, s.available)
    assert res.status in (Status.PASS, Status.FAIL) and res.metrics["n_quality"] == len(s.protocol.probes)
    files = {str(p) for p in faces.rglob("*.png")}
    assert dict(decodes) == {p: 1 for p in files}  # gallery, probes' HR, DSR and bicubic inputs, PSNR/SSIM
    probes = len(s.protocol.probes)
    assert net.images == probes and s.embedder("model").images_embedded == len(files) + 2 * probes

    decodes.clear()
    again = _session(faces, tmp_path / "cache", model, ModuleDSR(Counting(BlurDSR()), "blur", "blur-v1"))
    res2 = run_check(DsrVsBicubic(), again, DsrVsBicubic.params, again.available)
    assert res2.metrics == res.metrics
    assert again.embedder("model").images_embedded == 0 and again.dsr.module.images == 0
    assert not decodes


def test_psnr_ssim_are_left_out_without_scikit_image(faces, tmp_path, monkeypatch):
    import facediag.metrics.image_quality as iq

    monkeypatch.setattr(iq, "available", lambda: False)
    model = loaded_model(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32)),
                         sha256=uuid.uuid4().hex)
    s = _session(faces, tmp_path / "cache", model, ModuleDSR(BlurDSR(), "blur", "blur-v1"))
    res = run_check(DsrVsBicubic(), s, DsrVsBicubic.params, s.available)
    assert res.status != Status.ERROR and "rank1_dsr" in res.metrics and "psnr_dsr" not in res.metrics
    assert any("scikit-image" in f.message for f in res.findings)


# --- the condition logic and the diagnosis, on stated numbers ---------------------------------

def _metrics(rank1_dsr, rank1_bicubic, p):
    return {"rank1_dsr": rank1_dsr, "rank1_bicubic": rank1_bicubic, "rank1_delta": rank1_dsr - rank1_bicubic,
            "mcnemar_p": p, "dsr_lost": 17, "dsr_won": 4, "psnr_dsr": 22.0, "psnr_bicubic": 22.4,
            "psnr_delta": -0.4, "ssim_dsr": 0.52, "ssim_bicubic": 0.55, "ssim_delta": -0.03, "n_quality": 280,
            "genuine_mean_dsr": 0.33, "genuine_mean_bicubic": 0.34, "n_probes": 280}


@pytest.mark.parametrize("rank1_dsr, p, status, met", [
    (0.74, 0.007, Status.FAIL, {"dsr-worse", "pixels-worse"}),  # worse, significantly
    (0.77, 0.30, Status.PASS, {"dsr-worse-by-chance", "pixels-worse"}),  # worse within chance: said, not judged
    (0.82, 0.01, Status.PASS, {"pixels-worse"}),  # better identification, though its pixels are further from HR
    (0.79, 1.0, Status.PASS, {"pixels-worse"}),
])
def test_conditions(rank1_dsr, p, status, met):
    res = DsrVsBicubic().conclude(_metrics(rank1_dsr, 0.79, p), DsrVsBicubic.params, summary="ok",
                                  context={"dsr": "net.pt"})
    assert res.status == status
    assert {c.id for c in res.conditions if c.met} == met
    if status == Status.FAIL:
        assert res.summary.startswith("net.pt loses people plain bicubic keeps: rank-1 0.740 against 0.790")


def _result(name, status, metrics, met=(), data=None):
    return CheckResult(name, status, "", metrics, data=data or {},
                       conditions=[ConditionOutcome(c, Severity.WARNING, True) for c in met])


def _gap_results(dsr_worse: bool):
    """A DSR run whose probes lose people against their HR images (pair-gap's hr-dsr-rank1-gap) and
    whose DSR embeddings shift in norm; the DSR check says whether the DSR is to blame."""
    dsr = _result("dsr-vs-bicubic", Status.FAIL if dsr_worse else Status.PASS,
                  _metrics(0.55 if dsr_worse else 0.62, 0.62, 0.001 if dsr_worse else 1.0),
                  ["dsr-worse", "pixels-worse"] if dsr_worse else [], {"dsr": "blur.pt"})
    return [_result("pair-gap", Status.PASS, {"hr_rank1": 0.93, "rank1": 0.55}, ["hr-dsr-rank1-gap"]),
            _result("norm-sanity", Status.WARN, {"dsr_hr_norm_ratio": 0.6}, ["norm-shift"]), dsr]


def test_dsr_hurts_explains_the_domain_gap_it_causes():
    found = diagnose(_gap_results(dsr_worse=True))
    assert [d.id for d in found] == ["dsr-hurts"]
    assert set(found[0].explains) >= {"pair-gap: hr-dsr-rank1-gap", "norm-sanity: norm-shift",
                                      "dsr-vs-bicubic: dsr-worse"}
    assert "blur.pt" in found[0].summary


def test_a_dsr_no_worse_than_bicubic_leaves_the_domain_gap():
    assert [d.id for d in diagnose(_gap_results(dsr_worse=False))] == ["hr-dsr-domain-gap"]
