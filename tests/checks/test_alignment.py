"""alignment: misaligned versions of real faces WARN/FAIL and are diagnosed; the same faces
unmoved, and ORL as given with the pretrained model, pass."""
import pytest

from align_extra import INSTALL_ALIGN, make_broken, make_missing, needs_extra
from facediag.checks.base import Status
from facediag.checks.registry import get_check
from helpers import misaligned_copy


@pytest.fixture(scope="module")
def align_report(run, float_weights, orl_root, tmp_path_factory):
    def _report(how):
        data = misaligned_copy(orl_root, tmp_path_factory.mktemp(how), how)
        return run(float_weights, data, checks=["alignment"])
    return _report


@needs_extra
@pytest.mark.parametrize("how,condition", [("rotate", "rotated"), ("zoom", "wrong-scale"),
                                           ("shift", "far-from-template"), ("paste", "far-from-template")])
def test_misaligned_faces_are_caught(align_report, how, condition):
    rep = align_report(how)
    res = rep.result("alignment")
    assert res.status in (Status.WARN, Status.FAIL), res.summary
    assert res.met(condition), (how, res.metrics)
    diag = next(d for d in rep.diagnoses if d.id == "misaligned-faces")
    assert "facediag align" in diag.remedy and diag.evidence


@needs_extra
def test_the_same_faces_unmoved_pass(align_report):
    rep = align_report("none")
    res = rep.result("alignment")
    assert res.status == Status.PASS, res.summary
    assert res.metrics["not_found_share"] == 0
    assert "misaligned-faces" not in {d.id for d in rep.diagnoses}


@needs_extra
def test_orl_as_given_passes_with_the_pretrained_model(pretrained_report):
    res = pretrained_report.result("alignment")
    assert res.status == Status.PASS, res.summary
    params = get_check("alignment").params  # ORL has more subjects than the sample takes
    assert res.metrics["sample_images"] == params["max_subjects"] * params["per_subject"] == 32
    assert "misaligned-faces" not in {d.id for d in pretrained_report.diagnoses}


def test_skips_with_the_install_line_when_facenet_is_missing(run, float_weights, orl_root, monkeypatch):
    make_missing(monkeypatch)
    res = run(float_weights, orl_root, checks=["alignment"]).result("alignment")
    assert res.status == Status.SKIP
    assert "not installed" in res.summary and INSTALL_ALIGN in res.summary


def test_skips_with_the_install_line_when_facenet_is_broken(run, float_weights, orl_root, monkeypatch, tmp_path):
    # facenet-pytorch present, its import of requests failing: SKIP with the line that repairs it,
    # not ERROR (which would make every default run-all exit 1).
    make_broken(monkeypatch, tmp_path)
    rep = run(float_weights, orl_root, checks=["alignment"])
    res = rep.result("alignment")
    assert res.status == Status.SKIP, res.summary
    assert "requests" in res.summary and INSTALL_ALIGN in res.summary
    assert "\n" not in res.summary
