"""dev → eval on ORL with the real float xxs: people 1–20 the development set, 21–40 the evaluation
set. Thresholds fixed on dev by each criterion, applied to eval and recomputed here from the
embeddings with numpy; a planted evaluation set the dev threshold does not hold on must WARN; a
compare at each side's dev threshold; bad options one line, exit 2, before any embedding."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from cli_helpers import invoke, one_line_exit_2

from facediag.checks.base import Status
from facediag.metrics.identification import build_templates, l2_normalize
from facediag.runner import run_suite
from facediag.session import Session, SessionConfig
from facediag.suites import load_suite

pytestmark = pytest.mark.slow
CHECKS = ["identification", "verification", "operating-point"]


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst, target_is_directory=True)


@pytest.fixture(scope="module")
def split(orl_root, tmp_path_factory):
    """ORL people 1–20 (dev/) and 21–40 (eval/), and eval_split/: each of 21–40 filed under two ids
    (images 1–5 and 6–10): every probe has a template of its own person among its "impostors"."""
    root = tmp_path_factory.mktemp("orl-split")
    for i in range(1, 41):
        _link(orl_root / f"s{i}", root / ("dev" if i <= 20 else "eval") / f"s{i}")
    for i in range(21, 41):
        for half, images in (("a", range(1, 6)), ("b", range(6, 11))):
            folder = root / "eval_split" / f"s{i}{half}"
            folder.mkdir(parents=True)
            for k in images:
                os.symlink(orl_root / f"s{i}" / f"{k}.pgm", folder / f"{k}.pgm")
    return root


@pytest.fixture(scope="module")
def split_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("split-cache")  # this module's own: it counts what a run embeds


def _session(weights, data, dev, cache, **kw):
    return Session(SessionConfig(weights=weights, data=data, dev_data=dev, vlr_size=16, progress=False,
                                 device="cpu", cache_dir=cache, **kw))


@pytest.fixture(scope="module")
def dev_eval(float_weights, split, split_cache):
    session = _session(float_weights, split / "eval", split / "dev", split_cache)
    report = run_suite(session, load_suite("default").only(CHECKS), command="test")
    return session, report


def _scores(session, role="model"):
    """Genuine and impostor scores (probe vs every template) from the raw embeddings, in numpy."""
    gal, probe = session.embeddings(role, "gallery"), session.embeddings(role, "probe_dsr")
    subjects, templates = build_templates(l2_normalize(gal.raw), gal.subjects)
    scores = l2_normalize(probe.raw) @ templates.T
    same = probe.subjects[:, None] == subjects[None, :]
    return scores[same], scores[~same]


def _threshold_at_fmr(impostor, target):
    """The lowest threshold letting at most floor(target * n) impostors pass, written out here."""
    desc = np.sort(impostor)[::-1]
    return np.nextafter(desc[int(np.floor(target * len(desc)))], np.inf)


def test_dev_thresholds_applied_to_eval_match_an_independent_computation(dev_eval):
    session, report = dev_eval
    res = report.result("operating-point")
    assert res.status == Status.PASS, res.summary
    # each dev image was embedded once for the model: gallery, probes' HR images and 16 px probes, dev and eval
    assert session.embedder("model").images_embedded == 2 * (60 + 140 + 140)
    dev_g, dev_i = _scores(session.dev)
    ev_g, ev_i = _scores(session)
    assert len(dev_i) == len(ev_i) == 2660 and len(dev_g) == len(ev_g) == 140
    m = res.metrics
    t = _threshold_at_fmr(dev_i, 0.01)
    assert m["threshold_dev_fmr_0.01"] == pytest.approx(t, abs=1e-6)
    assert m["eval_fmr_at_dev_fmr_0.01"] == pytest.approx((ev_i >= t).mean(), abs=1e-6)
    assert m["eval_fnmr_at_dev_fmr_0.01"] == pytest.approx((ev_g < t).mean(), abs=1e-4)
    assert m["dev_fmr_at_dev_fmr_0.01"] <= 0.01
    # EER on dev: the threshold minimising max(FMR, FNMR) over every score
    cand = np.unique(np.r_[dev_g, np.nextafter(dev_i, np.inf)])
    cost = np.maximum((dev_i[None, :] >= cand[:, None]).mean(1), (dev_g[None, :] < cand[:, None]).mean(1))
    t_eer = cand[np.argmin(cost)]
    assert m["threshold_dev_eer"] == pytest.approx(t_eer, abs=1e-6)
    assert m["eval_hter_at_dev_eer"] == pytest.approx(((ev_i >= t_eer).mean() + (ev_g < t_eer).mean()) / 2, abs=1e-4)
    # FMR 0.001 needs 10,000 dev impostor pairs: refused, with the reason, never a number
    assert "threshold_dev_fmr_0.001" not in m
    refused = next(p for p in res.data["operating_points"] if p["key"] == "fmr=0.001")
    assert refused["threshold"] is None and "10,000 impostor pairs" in refused["reason"]
    assert any("fmr=0.001: no threshold" in f.message for f in res.findings)
    # every threshold says where it came from
    for p in res.data["operating_points"]:
        assert p["set"] == "dev" and p["criterion"] in ("eer", "min-hter", "fmr")
    assert report.suite["operating_threshold"]["source"] == "preset"
    assert report.dataset["dev"]["counts"]["probes"] == 140 and report.dataset["dev"]["shared_subjects"] == 0
    # calibration fitted on dev beats the cosine read as a probability, and the report says a cosine is none
    assert m["ece_isotonic"] < m["ece_cosine"] and m["brier_logistic"] < m["brier_cosine"]
    assert any("a cosine is not a probability" in f.message for f in res.findings)
    print(f"\nORL dev 1-20 -> eval 21-40, float xxs, 16 px: dev FMR 0.01 -> threshold {t:.4f}, eval FMR "
          f"{m['eval_fmr_at_dev_fmr_0.01']} FNMR {m['eval_fnmr_at_dev_fmr_0.01']}; FMR 0.001: {refused['reason']}")


def test_the_contract_other_checks_read(dev_eval):
    session, _ = dev_eval
    view = session.for_role("model")
    points = view.dev_thresholds()
    assert set(points) == {"eer", "min-hter", "fmr=0.01", "fmr=0.001"}
    assert points["fmr=0.01"]["criterion"] == "fmr" and points["fmr=0.01"]["fmr_target"] == 0.01
    assert points["eer"]["set"] == "dev" and points["eer"]["threshold"] is not None
    assert view.dev_thresholds("model", ["fmr=0.02"])["fmr=0.02"]["threshold"] < points["fmr=0.01"]["threshold"]
    assert Session(SessionConfig(data=session.config.data)).dev_thresholds() is None


def test_a_dev_threshold_that_does_not_hold_on_eval_warns(float_weights, split, split_cache, dev_eval):
    """Each eval person filed under two ids: pairs of one person count as impostors there, so the
    FMR 0.01 threshold fixed on clean dev lets far more through on eval; the clean split does not."""
    suite = load_suite("default").only(CHECKS)
    suite.checks["operating-point"] = {"max_fmr_ratio": 1.5}
    clean = run_suite(_session(float_weights, split / "eval", split / "dev", split_cache), suite, command="test")
    planted = run_suite(_session(float_weights, split / "eval_split", split / "dev", split_cache), suite,
                        command="test")
    ok, bad = clean.result("operating-point"), planted.result("operating-point")
    assert ok.status == Status.PASS and not ok.met("dev-threshold-does-not-hold")
    assert bad.status == Status.WARN and bad.met("dev-threshold-does-not-hold"), bad.summary
    assert bad.metrics["worst_fmr_ratio"] > 1.5 > ok.metrics["worst_fmr_ratio"]
    assert "does not represent the evaluation data" in bad.summary


def test_compare_at_each_sides_dev_threshold(float_weights, dequantized_weights, split, split_cache):
    from facediag.compare import compare_session

    session = _session(float_weights, split / "eval", split / "dev", split_cache, baseline_weights=dequantized_weights)
    rep = compare_session(session, load_suite("default").only(CHECKS), max_drop={"identification.rank1": 0.02},
                          n_boot=100, command="test", threshold_from="dev:fmr=0.01")
    a, b = rep.settings["thresholds"]["A"], rep.settings["thresholds"]["B"]
    assert a["source"] == b["source"] == "dev" and a["criterion"] == "fmr" and a["fmr_target"] == 0.01
    # each model at its own threshold, fixed on its own dev scores
    assert a["threshold"] == session.dev_thresholds("model")["fmr=0.01"]["threshold"]
    assert b["threshold"] == session.dev_thresholds("baseline")["fmr=0.01"]["threshold"]
    assert rep.a.metric("identification", "threshold") == a["threshold"]
    assert rep.b.metric("identification", "threshold") == b["threshold"]
    _, ev_b_imp = _scores(session, "baseline")
    far = rep.row("identification.far_at_threshold")  # B's eval FMR at B's dev threshold, with an interval
    assert far.b == pytest.approx((ev_b_imp >= b["threshold"]).mean(), abs=1e-9) and far.delta_ci is not None
    assert rep.b.metric("operating-point", "eval_fmr_at_dev_fmr_0.01") == pytest.approx(far.b, abs=1e-6)
    assert [n for n in rep.shift["notes"] if "operating threshold" in n][0].endswith("(--threshold-from dev:fmr=0.01)")
    assert rep.passed


def test_run_all_at_the_dev_threshold_writes_its_provenance(float_weights, split, split_cache, tmp_path):
    out = tmp_path / "out"
    res = invoke("run", "identification", "operating-point", "-w", float_weights, "--data", split / "eval",
                 "--dev-data", split / "dev", "--threshold-from", "dev:fmr=0.01", "--cache-dir", split_cache, "-q",
                 "--device", "cpu", "--out", out)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    used = report["suite"]["operating_threshold"]
    assert used["source"] == "dev" and used["set"] == "dev" and used["fmr_target"] == 0.01
    ident = next(r for r in report["results"] if r["name"] == "identification")
    assert ident["metrics"]["threshold"] == used["threshold"]
    md = (out / "report.md").read_text()
    assert "source dev, fixed on the development set at FMR 0.01" in md and "development set " in md


def test_bad_options_are_one_line_before_any_work(float_weights, split, tmp_path):
    base = ["run-all", "-w", float_weights, "--data", split / "eval", "--cache-dir", tmp_path / "c", "-q"]
    one_line_exit_2(invoke(*base, "--dev-data", split / "dev", "--threshold-from", "dev:fmr=2"), "--threshold-from",
                    "between 0 and 1")
    one_line_exit_2(invoke(*base, "--dev-data", split / "dev", "--threshold-from", "eval:eer"), "dev:CRITERION")
    one_line_exit_2(invoke(*base, "--threshold-from", "dev:eer"), "needs a development set")
    one_line_exit_2(invoke(*base, "--dev-data", split / "dev", "--threshold-from", "dev:fmr=1e-3"),
                    "cannot fix a threshold at FMR 0.001", "10,000", "2,660")
    one_line_exit_2(invoke(*base, "--dev-data", split / "eval"), "the development set is the evaluation data")
    one_line_exit_2(invoke(*base, "--dev-gallery-root", split / "dev"), "--dev-gallery-root and --dev-probe-root")
    one_line_exit_2(invoke(*base, "--dev-data", tmp_path / "nowhere"), "--dev-data")
    one_line_exit_2(invoke("compare", float_weights, float_weights, "--data", split / "eval", "--threshold-from",
                           "dev:min-hter", "-q"), "needs a development set")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # nothing was embedded
