"""Colour order by the pixels: a colour set saved with red and blue swapped is diagnosed
preprocessing-mismatch; the same set saved correctly is not; a real colour photo behaves the same."""
import numpy as np
import pytest
from PIL import Image

from facediag.checks.base import Status
from facediag.checks.preprocessing import red_above_blue
from facediag.data.images import fit_canvas, to_tensor01
from facediag.demo.faces import draw_subject


def _demo_set(root, bgr: bool, subjects=12, per_subject=4):
    for s in range(subjects):
        (root / f"d{s:02d}").mkdir(parents=True)
        for i, img in enumerate(draw_subject(0, "train", s, per_subject)):
            arr = np.asarray(img.convert("RGB"))
            Image.fromarray(arr[..., ::-1].copy() if bgr else arr).save(root / f"d{s:02d}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def colour_report(run, float_weights, tmp_path_factory):
    def _report(bgr):
        return run(float_weights, _demo_set(tmp_path_factory.mktemp("bgr" if bgr else "rgb"), bgr),
                   checks=["preprocessing"])
    return _report


def test_bgr_saved_colour_faces_are_a_preprocessing_mismatch(colour_report):
    rep = colour_report(True)
    res = rep.result("preprocessing")
    assert res.status == Status.FAIL and res.met("pixels-bgr"), res.metrics
    assert res.metrics["red_above_blue_share"] < 0.1
    diag = next(d for d in rep.diagnoses if d.id == "preprocessing-mismatch")
    assert "BGR" in diag.summary and "COLOR_BGR2RGB" in diag.remedy


def test_the_same_faces_saved_as_rgb_are_not(colour_report):
    rep = colour_report(False)
    res = rep.result("preprocessing")
    assert not res.met("pixels-bgr") and res.metrics["red_above_blue_share"] > 0.9, res.metrics
    assert "auc_imagenet" in res.metrics and res.metrics["auc_imagenet"] is not None
    assert "preprocessing-mismatch" not in {d.id for d in rep.diagnoses}


def test_greyscale_faces_say_the_pixel_test_does_not_apply(pretrained_report):
    res = pretrained_report.result("preprocessing")  # ORL is greyscale
    assert res.metrics["red_above_blue_share"] is None and not res.met("pixels-bgr")
    assert any("greyscale" in f.message for f in res.findings)


def test_a_real_colour_photo_is_red_dominant_and_its_bgr_copy_is_not():
    data = pytest.importorskip("skimage.data", reason="scikit-image (the align extra) ships the photo")
    face = data.astronaut()[30:230, 140:340]  # Eileen Collins, NASA portrait (public domain)
    x = fit_canvas(to_tensor01(face))[None]
    assert red_above_blue(x)[0] > 0.1
    assert red_above_blue(x.flip(1))[0] < -0.1


def test_the_pretrained_model_does_not_prefer_imagenet_normalisation(pretrained_report):
    res = pretrained_report.result("preprocessing")
    assert res.metrics["auc_imagenet"] is not None  # scored beside [0, 1] and BGR ...
    assert not res.met("prefers-imagenet")  # ... and the healthy control is not flagged (ORL: +0.007 < 0.03)
