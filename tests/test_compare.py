"""compare: two checkpoints over one Session, paired significance, verdicts, renderers, exit codes."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from facediag.cli import cli
from facediag.compare import compare, compare_session, exit_code
from facediag.metrics.catalogue import higher_is_better
from facediag.metrics.verdict import BETTER, NO_CHANGE, WORSE, interval_verdict
from facediag.protocols.resampling import bootstrap_tests
from facediag.results import CompareReport
from facediag.errors import FacediagError
from facediag.protocols.gallery import build_evaluation
from facediag.render import render as render_compare, write_all as write_compare
from facediag.runner import run_suite
from facediag.suites import load_suite
from helpers import session_over, pooled


# ----------------------------------------------------------------- synthetic, no assets
def test_role_view_maps_model_to_the_chosen_role_and_hides_the_other(patterns):
    s = session_over(patterns, pooled(4), pooled(1))
    view = s.for_role("baseline")
    assert view.model() is s.model("baseline") and view.embedder("model") is s.embedder("baseline")
    assert view.evaluation("model") is s.evaluation("baseline")
    assert view.protocol is s.protocol  # data passes through: the same probes and DSR outputs
    assert view.has_role("model") and not view.has_role("baseline")
    assert view.available("baseline") is not None  # pretrained-baseline must not compare B with B
    with pytest.raises(FacediagError):
        view.embeddings("baseline", "gallery")


def test_compare_embeds_each_image_once_per_model(patterns, monkeypatch):
    """Compare costs two embedding passes: each role embeds exactly what one run-all embeds, and
    both read one set of DSR outputs (the probes are super-resolved as often as for one model)."""
    from facediag.models.dsr import DSR

    super_resolved = []
    real_call = DSR.__call__
    monkeypatch.setattr(DSR, "__call__", lambda self, lr: super_resolved.append(len(lr)) or real_call(self, lr))
    suite = load_suite("default")
    single = session_over(patterns, pooled(4))
    run_suite(single, suite, command="test")
    one_pass, one_dsr_pass = single.embedder("model").images_embedded, sum(super_resolved)
    super_resolved.clear()
    s = session_over(patterns, pooled(4), pooled(4))
    compare_session(s, suite, max_drop={"identification.rank1": 0.0}, n_boot=200)
    assert s.embedder("model").images_embedded == one_pass
    assert s.embedder("baseline").images_embedded == one_pass
    assert one_dsr_pass > 0 and sum(super_resolved) == one_dsr_pass


def test_identical_models_show_no_change_anywhere(patterns):
    rep = compare_session(session_over(patterns, pooled(4), pooled(4)), load_suite("default"),
                          max_drop={"identification.rank1": 0.0}, n_boot=200)
    assert rep.tested and all(r.verdict == NO_CHANGE for r in rep.tested)
    assert all(r.delta in (0, None) for r in rep.metrics)
    assert rep.passed and exit_code(rep) == 0
    assert rep.shift["cka"]["gallery"] == pytest.approx(1.0)


def test_a_model_that_sees_less_is_significantly_worse(patterns):
    rep = compare_session(session_over(patterns, pooled(4), pooled(1)), load_suite("default"),
                          max_drop={"identification.rank1": 0.02}, n_boot=500)
    rank1 = rep.row("identification.rank1")
    assert rank1.b < rank1.a and rank1.verdict == WORSE and rank1.p_value < 0.05
    assert not rep.passed and exit_code(rep) == 1
    assert rep.gate["failed"] == ["identification.rank1"]
    assert "worse on" in rep.summary() and "rank1" in rep.summary()
    # B − A intervals hold the point; A's and B's intervals hold their own points
    for r in rep.tested:
        assert r.delta_ci[0] <= r.delta <= r.delta_ci[1] + 1e-12
        assert r.a_ci[0] <= r.a <= r.a_ci[1] + 1e-12


def test_compare_report_round_trips_and_renders_every_format(patterns, tmp_path):
    rep = compare_session(session_over(patterns, pooled(4), pooled(1)), load_suite("default"),
                          max_drop={"identification.rank1": 0.02}, n_boot=200)
    back = CompareReport.from_dict(json.loads(rep.to_json()))
    assert back.to_json() == rep.to_json()
    paths = write_compare(back, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["junit.xml", "report.html", "report.json", "report.md"]
    page = paths["html"].read_text()
    assert "A and B on the same axes" in page and page.count("data:image/png;base64,") >= 3
    assert "http://" not in page and "https://" not in page  # self-contained
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["identification.rank1"]
    assert "| identification.rank1 |" in paths["md"].read_text()
    with pytest.raises(FacediagError):
        render_compare(rep, "pdf")
    # extra sections (the demo's sample faces) go in the HTML page, before its footer
    page = render_compare(back, "html", extra_sections=[("Faces & more", "<img>")])
    assert page.index("Faces &amp; more") < page.index("<footer>") and page.count("<img>") == 1
    assert "Faces" not in render_compare(back, "md", extra_sections=[("Faces", "<img>")])
    # `facediag render` knows a comparison from a run report
    from click.testing import CliRunner

    from facediag.cli import cli

    md = CliRunner().invoke(cli, ["render", str(paths["json"]), "--format", "md"])
    assert md.exit_code == 0 and md.output.strip() == paths["md"].read_text().strip()
    shown = CliRunner().invoke(cli, ["render", str(paths["json"])])
    assert shown.exit_code == 0 and "rank1" in shown.output


@pytest.mark.slow
def test_both_side_reports_say_whose_card_set_the_threshold(patterns):
    from dataclasses import replace

    from facediag.models.presets import ModelPreset

    def carded(threshold):
        return pooled(4, preset=ModelPreset(family="pixels", name=f"card-{threshold:g}", threshold=threshold),
                      card=f"card-{threshold:g}.toml")

    suite = load_suite("default").only(["identification"])
    rep = compare_session(session_over(patterns, carded(0.3), carded(0.5)), suite, max_drop={}, n_boot=50)
    assert rep.settings["threshold"] == 0.3
    for side in (rep.a, rep.b):
        notes = side.dataset["notes"]
        assert "threshold 0.3 is the model card's (card-0.3): the suite sets none" in notes, notes
        assert ("B's threshold is 0.5 (its model card's, card-0.5), A's 0.3 (its model card's, card-0.3): "
                "compare judged both at A's") in notes, notes
    # B without a card: EdgeFace's preset names 0.35
    notes = compare_session(session_over(patterns, carded(0.3), pooled(4)), suite, max_drop={},
                            n_boot=50).b.dataset["notes"]
    assert any(n.startswith("B's threshold is 0.35 (EdgeFace's preset's)") for n in notes), notes
    # the same card on both sides: the card's note only; a suite that sets the threshold: no note at all
    same = compare_session(session_over(patterns, carded(0.3), carded(0.3)), suite, max_drop={}, n_boot=50)
    assert [n for n in same.b.dataset["notes"] if "threshold" in n] == [
        "threshold 0.3 is the model card's (card-0.3): the suite sets none"]
    fixed = compare_session(session_over(patterns, carded(0.3), carded(0.5)), replace(suite, threshold=0.4),
                            max_drop={}, n_boot=50)
    assert fixed.settings["threshold"] == 0.4
    assert not [n for side in (fixed.a, fixed.b) for n in side.dataset["notes"] if "threshold" in n]


def test_verdicts_follow_the_metric_direction():
    assert higher_is_better("identification.rank1") and higher_is_better("verification.tar_at_far_0.01")
    assert higher_is_better("verification.eer") is False and higher_is_better("pair-gap.genuine_mean") is None
    assert interval_verdict(-0.1, -0.2, -0.01, True) == WORSE
    assert interval_verdict(-0.1, -0.2, -0.01, False) == BETTER
    assert interval_verdict(-0.1, -0.2, 0.05, True) == NO_CHANGE
    assert interval_verdict(0.3, 0.2, 0.4, None) == "higher"


def test_bootstrap_tests_pair_a_and_b_on_the_same_subjects():
    rng = np.random.default_rng(0)
    subjects = np.repeat([f"s{i}" for i in range(20)], 5)
    centres = rng.normal(size=(20, 32))
    gallery = np.repeat(centres, 3, axis=0) + 0.3 * rng.normal(size=(60, 32))
    probes = np.repeat(centres, 5, axis=0) + 0.6 * rng.normal(size=(100, 32))
    ev = build_evaluation(gallery, np.repeat(subjects[::5], 3), probes, subjects, probes)
    same = bootstrap_tests(ev, ev, n_boot=300)
    assert {"identification.rank1", "verification.eer", "verification.tar_at_far_0.1"} <= set(same)
    for t in same.values():
        assert t.delta.point == 0 and t.delta.low == 0 and t.delta.high == 0
    noisy = build_evaluation(gallery, np.repeat(subjects[::5], 3), probes + 1.5 * rng.normal(size=probes.shape),
                             subjects, probes)
    worse = bootstrap_tests(ev, noisy, n_boot=300)
    assert worse["identification.rank1"].delta.high < 0 and worse["identification.rank1"].p_value < 0.01
    assert worse["verification.eer"].delta.low > 0
    single = bootstrap_tests(ev, n_boot=300)  # one model: intervals of A only
    assert single["verification.eer"].b is None
    assert single["verification.eer"].a.point == pytest.approx(same["verification.eer"].a.point)


# -------------------------------------------------------------- real assets (ORL, EdgeFace)
@pytest.fixture(scope="module")
def finetune_vs_pretrained(float_weights, paired_only_weights, orl_root, cache):
    return compare(float_weights, paired_only_weights, orl_root, suite="ci", cache_dir=cache, progress=False)


def test_paired_only_finetune_is_significantly_worse_on_rank1(finetune_vs_pretrained):
    rank1 = finetune_vs_pretrained.row("identification.rank1")
    assert rank1.a == pytest.approx(0.786, abs=0.01) and rank1.b < rank1.a - 0.03
    assert rank1.verdict == WORSE and rank1.p_value < 0.05
    assert not finetune_vs_pretrained.passed and exit_code(finetune_vs_pretrained) == 1
    assert "identification.rank1" in finetune_vs_pretrained.gate["failed"]


def test_compare_shows_the_collapse(finetune_vs_pretrained):
    rep = finetune_vs_pretrained
    assert "embedding-collapse" in {d.id for d in rep.b.diagnoses}
    assert not any(d.severity == "failure" for d in rep.a.diagnoses)
    impostor = rep.row("pair-gap.impostor_mean")
    assert impostor.a < 0.1 and impostor.b > 0.9 and impostor.verdict == WORSE
    assert rep.row("identification.far_at_threshold").verdict == WORSE
    assert rep.row("verification.eer").verdict == WORSE
    assert rep.shift["cka"]["probe_dsr"] < 0.8  # B no longer has A's geometry
    assert any("accepts more of everyone" in n for n in rep.shift["notes"])  # accuracy at 0.35 rose, falsely


def test_compare_cli_exit_codes(float_weights, paired_only_weights, orl_root, cache, tmp_path, finetune_vs_pretrained):
    base = ["--data", str(orl_root), "--cache-dir", str(cache), "-q", "--suite", "ci"]
    worse = CliRunner().invoke(cli, ["compare", str(float_weights), str(paired_only_weights), *base,
                                     "--out", str(tmp_path / "worse")])
    assert worse.exit_code == 1, worse.output
    said = " ".join(worse.output.split())  # the terminal's line wrapping undone
    assert "Gate: FAILED" in said and "embedding-collapse" in said
    page = (tmp_path / "worse" / "report.html").read_text()
    assert "A and B on the same axes" in page
    same = CliRunner().invoke(cli, ["compare", str(float_weights), str(float_weights), *base,
                                    "--out", str(tmp_path / "same")])
    assert same.exit_code == 0, same.output
    rep = CompareReport.from_dict(json.loads((tmp_path / "same" / "report.json").read_text()))
    assert rep.tested and all(r.verdict == NO_CHANGE for r in rep.tested)
    assert "no significant change on any tested metric" in " ".join(same.output.split())


def test_compare_cli_bad_input_is_exit_2(float_weights, orl_root, tmp_path):
    res = CliRunner().invoke(cli, ["compare", str(float_weights), str(tmp_path / "missing.pt"),
                                   "--data", str(orl_root), "-q"])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["compare", str(float_weights), str(float_weights), "--data", str(orl_root),
                                   "-q", "--max-drop", "rank1"])
    assert res.exit_code == 2 and "--max-drop" in res.output
