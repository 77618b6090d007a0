"""Planted failures: each must be caught by its check and named by its diagnosis."""
from pathlib import Path
from types import SimpleNamespace

import torch

from facediag.checks.base import Status
from facediag.runner import exit_code
from helpers import leaky_copy


def ids(report):
    return {d.id for d in report.diagnoses}


def status(report, check):
    return report.result(check).status


# --- the original failure: a paired-only fine-tune ---------------------------------------

def test_paired_only_finetune_is_caught_as_collapse(paired_only_report):
    rep = paired_only_report
    assert status(rep, "pair-gap") == Status.FAIL
    assert status(rep, "norm-sanity") == Status.FAIL
    assert "embedding-collapse" in ids(rep)
    assert "pair-memorization" not in ids(rep)  # collapse explains the gap better
    assert "preprocessing-mismatch" not in ids(rep)  # a collapsed model has no preferred input
    assert rep.metric("pair-gap", "collapsed") is True
    assert exit_code(rep) == 1


def test_paired_only_accuracy_at_threshold_looks_fine_but_false_accepts_are_total(paired_only_report):
    ident = paired_only_report.result("identification")
    assert ident.status == Status.FAIL
    assert ident.metrics["accuracy_at_threshold"] > 0.4  # the misleading number
    assert ident.metrics["far_at_threshold"] > 0.9  # what it hides


def test_paired_only_regresses_against_the_pretrained_baseline(paired_only_report):
    assert status(paired_only_report, "pretrained-baseline") == Status.FAIL
    assert "regression-vs-pretrained" in ids(paired_only_report)


# --- instance InfoNCE: memorises pairs ------------------------------------------------------

def test_instance_infonce_is_diagnosed_as_pair_memorization(run, instance_infonce_weights, orl_root):
    rep = run(instance_infonce_weights, orl_root, vlr_size=16)
    pg = rep.result("pair-gap")
    assert pg.status == Status.FAIL
    assert pg.metrics["paired_mean"] > pg.metrics["genuine_mean"] + 0.3
    assert "pair-memorization" in ids(rep)
    assert "embedding-collapse" not in ids(rep)


# --- untrained and unloaded weights -----------------------------------------------------

def test_random_init_with_right_keys_is_untrained(run, random_init_weights, orl_root):
    rep = run(random_init_weights, orl_root, vlr_size=16)
    assert status(rep, "weights-integrity") == Status.FAIL
    assert rep.metric("weights-integrity", "init_fraction") == 1.0
    assert "untrained-weights" in ids(rep)
    assert "pair-memorization" not in ids(rep)


def test_module_loaded_with_mismatched_keys_is_weights_not_loaded(run, float_weights, orl10):
    """The original project's bug: strict=False into a module whose keys did not match.
    A notebook user hands facediag such a module; the load report says what happened."""
    from facediag.models.checkpoint import load_checkpoint
    from facediag.models.edgeface import build_edgeface

    torch.manual_seed(0)
    module = build_edgeface("edgeface_xxs")
    official = load_checkpoint(float_weights)
    wrapped = {f"core.{k}": v for k, v in official.model.state_dict().items()}
    result = module.load_state_dict(wrapped, strict=False)  # what the user did
    loaded = SimpleNamespace(model=module.eval(), variant="edgeface_xxs", sha256=None, head=None, label_map=None,
                             path="notebook", format="module", parameters=official.parameters,
                             matched_fraction=0.0, missing_keys=result.missing_keys,
                             unexpected_keys=result.unexpected_keys)
    rep = run(data=orl10, model=loaded, vlr_size=16, checks=["weights-integrity", "pair-gap"])
    assert status(rep, "weights-integrity") == Status.FAIL
    assert rep.metric("weights-integrity", "missing_keys") == 160
    assert "weights-not-loaded" in ids(rep)


# --- data problems --------------------------------------------------------------------------

def test_leaked_images_are_found_at_pixel_level(run, float_weights, orl_root, tmp_path):
    data = leaky_copy(orl_root, tmp_path / "leaky")
    rep = run(float_weights, data, vlr_size=16, checks=["subject-overlap"])
    res = rep.result("subject-overlap")
    assert res.status == Status.FAIL
    assert res.metrics["leaked_identical"] == 1
    assert res.metrics["leaked_near_duplicate"] >= 1  # the 1-px shifted JPEG
    assert "data-leakage" in ids(rep)


def test_clean_orl_has_no_leak(pretrained_report):
    res = pretrained_report.result("subject-overlap")
    assert res.status == Status.PASS
    assert res.metrics["leaked_identical"] == 0 and res.metrics["leaked_near_duplicate"] == 0


def test_gallery_and_probe_ids_that_do_not_match(run, float_weights, orl_root, tmp_path):
    import shutil

    gallery, probes = tmp_path / "gallery", tmp_path / "probes"
    for s in range(1, 6):
        shutil.copytree(orl_root / f"s{s}", gallery / f"s{s:02d}")  # s01 ... zero padded
        shutil.copytree(orl_root / f"s{s}", probes / f"s{s}")
    rep = run(float_weights, gallery_root=gallery, probe_root=probes, vlr_size=16,
              checks=["subject-overlap", "identification"])
    assert status(rep, "subject-overlap") == Status.FAIL
    assert rep.metric("subject-overlap", "id_clashes") == 5
    assert "gallery-probe-mismatch" in ids(rep)


def _train_eval_split(orl_root, dest):
    """ORL s1–s10: images 1–5 evaluated, images 6–10 of the same people in train/ (distinct photos)."""
    import shutil

    for s in range(1, 11):
        for k in range(1, 11):
            side = dest / ("eval" if k <= 5 else "train") / f"s{s}"
            side.mkdir(parents=True, exist_ok=True)
            shutil.copy(orl_root / f"s{s}" / f"{k}.pgm", side / f"{k}.pgm")
    return dest / "eval", dest / "train"


def test_training_subjects_overlapping_evaluation_are_flagged(run, float_weights, orl_root, tmp_path):
    """Other photos of the evaluated people in training: the subjects are flagged, no image is."""
    evaluated, train = _train_eval_split(orl_root, tmp_path)
    rep = run(float_weights, evaluated, train_root=train, vlr_size=16, checks=["subject-overlap"])
    res = rep.result("subject-overlap")
    assert res.status == Status.WARN
    assert res.metrics["train_eval_shared_subjects"] == 10
    assert res.metrics["train_eval_identical"] == 0 and res.metrics["train_eval_near_duplicate"] == 0
    assert "data-leakage" not in ids(rep)


def test_evaluation_images_copied_into_training_are_found(run, float_weights, orl_root, tmp_path):
    """A byte copy and a 1-px shifted JPEG of two evaluation images planted in train/ are found,
    each against the one evaluation image it copies; the other photos of those people are not."""
    from PIL import Image
    import numpy as np

    evaluated, train = _train_eval_split(orl_root, tmp_path)
    (train / "s1" / "copy.pgm").write_bytes((evaluated / "s1" / "1.pgm").read_bytes())
    img = np.asarray(Image.open(evaluated / "s2" / "3.pgm"))
    shifted = img.copy()
    shifted[:, 1:] = img[:, :-1]  # one pixel to the right, edge column repeated
    Image.fromarray(shifted).save(train / "s2" / "shifted.jpg", quality=90)
    rep = run(float_weights, evaluated, train_root=train, vlr_size=16, checks=["subject-overlap"])
    res = rep.result("subject-overlap")
    assert res.status == Status.FAIL
    assert res.metrics["train_eval_identical"] == 1 and res.metrics["train_eval_near_duplicate"] == 1
    assert res.metrics["leaked_identical"] == 0 and res.metrics["leaked_near_duplicate"] == 0
    pairs = next(f.evidence["examples"] for f in res.findings if f.message.startswith("training images"))
    found = {(Path(x["train"]).name, Path(x.get("gallery") or x["probe"]).relative_to(evaluated).as_posix(), x["kind"])
             for x in pairs}
    assert found == {("copy.pgm", "s1/1.pgm", "identical"), ("shifted.jpg", "s2/3.pgm", "near-duplicate")}
    assert "data-leakage" in ids(rep)
    assert "training and in evaluation" in next(d.summary for d in rep.diagnoses if d.id == "data-leakage")


# --- preprocessing --------------------------------------------------------------------------

class ExpectsZeroOne(torch.nn.Module):
    """A model trained on [0, 1] input: it maps [0,1] back to what EdgeFace expects internally."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x * 2 - 1)


def test_model_expecting_zero_one_input_is_a_preprocessing_mismatch(run, float_weights, orl_root):
    from facediag.models.checkpoint import load_checkpoint

    official = load_checkpoint(float_weights)
    loaded = SimpleNamespace(**{k: getattr(official, k) for k in (
        "variant", "head", "label_map", "path", "format", "parameters", "matched_fraction",
        "missing_keys", "unexpected_keys")}, sha256=None, model=ExpectsZeroOne(official.model).eval())
    rep = run(data=orl_root, model=loaded, vlr_size=16, checks=["preprocessing"])
    res = rep.result("preprocessing")
    assert res.status == Status.FAIL
    assert res.metrics["auc_range_0_1"] > res.metrics["auc_expected"]
    assert "preprocessing-mismatch" in ids(rep)


def test_pretrained_prefers_its_own_preprocessing(pretrained_report):
    res = pretrained_report.result("preprocessing")
    assert res.status == Status.PASS
    assert res.metrics["auc_expected"] >= res.metrics["auc_range_0_1"]


# --- low resolution -------------------------------------------------------------------------

def test_very_low_resolution_shows_the_domain_gap_as_a_warning(run, float_weights, orl_root):
    rep = run(float_weights, orl_root, vlr_size=8, checks=["weights-integrity", "pair-gap", "norm-sanity"])
    assert "untrained-weights" not in ids(rep)  # resolution loss, not bad weights
    assert "embedding-collapse" not in ids(rep)
    gap = [d for d in rep.diagnoses if d.id == "hr-dsr-domain-gap"]
    assert gap and gap[0].severity == "warning"
    assert rep.metric("pair-gap", "hr_rank1") - rep.metric("pair-gap", "rank1") > 0.25


def test_pretrained_at_16px_has_no_domain_gap_diagnosis(pretrained_report):
    assert "hr-dsr-domain-gap" not in ids(pretrained_report)


# --- ArcFace head -----------------------------------------------------------------------------

def _training_dict(float_weights, orl_root, path, label_map):
    """A training checkpoint in the wild: backbone + ArcFace head whose centres are the
    pretrained HR templates of ORL s1–s40, with a subject_to_id map."""
    import numpy as np

    from facediag.models.checkpoint import load_checkpoint
    from facediag.session import Session, SessionConfig

    loaded = load_checkpoint(float_weights)
    s = Session(SessionConfig(data=orl_root, use_cache=False, progress=False, device="cpu"),
                models={"model": loaded})
    ev = s.evaluation("model")
    order = np.argsort([label_map.get(t, 0) for t in ev.template_subjects])
    head = torch.from_numpy(ev.templates[order].astype(np.float32))
    torch.save({"backbone_state_dict": loaded.model.state_dict(), "arcface_state_dict": {"weight": head},
                "subject_to_id": label_map, "epoch": 3, "val_similarity": 0.9992}, path)
    return path


def test_arcface_head_scores_hr_and_dsr(run, float_weights, orl_root, tmp_path):
    label_map = {f"s{i}": i - 1 for i in range(1, 41)}
    ckpt = _training_dict(float_weights, orl_root, tmp_path / "train.pth", label_map)
    rep = run(ckpt, orl_root, vlr_size=16, checks=["arcface-head"])
    res = rep.result("arcface-head")
    assert res.status == Status.PASS, res.summary
    assert res.metrics["head_classes"] == 40 and res.metrics["label_coverage"] == 1.0
    assert res.metrics["hr_class_cosine"] > res.metrics["dsr_class_cosine"] > 0.2
    assert res.metrics["hr_head_top1"] > 0.9


def test_arcface_head_with_a_foreign_label_map(run, float_weights, orl_root, tmp_path):
    label_map = {f"{i:03d}": i - 1 for i in range(1, 41)}  # the training data named people 001..040
    ckpt = _training_dict(float_weights, orl_root, tmp_path / "foreign.pth", label_map)
    rep = run(ckpt, orl_root, vlr_size=16, checks=["arcface-head", "subject-overlap"])
    assert status(rep, "arcface-head") == Status.WARN
    assert rep.metric("arcface-head", "label_coverage") == 0.0
    assert "gallery-probe-mismatch" in ids(rep)


# --- a broken check does not stop the run ------------------------------------------------

def test_a_check_that_raises_is_error_and_the_run_goes_on(run, float_weights, orl10, monkeypatch):
    from facediag.checks.norm_sanity import NormSanity

    monkeypatch.setattr(NormSanity, "run", lambda self, ctx, params: 1 / 0)
    rep = run(float_weights, orl10, vlr_size=16, checks=["norm-sanity", "identification"])
    assert status(rep, "norm-sanity") == Status.ERROR
    assert "ZeroDivisionError" in rep.result("norm-sanity").summary
    assert status(rep, "identification") == Status.PASS
    assert exit_code(rep) == 1
