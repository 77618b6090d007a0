"""The embedding pass and the leakage test together decode each image once per run: the
leakage fingerprints are tapped from the embedding pass's decode; an image served from the
embedding cache is decoded once by the leakage test; only candidates are decoded again."""
import uuid
from collections import Counter

import pytest
import torch

import facediag.data.images as images
from facediag.checks.registry import get_check, run_check
from facediag.data.near_duplicates import candidate_pairs
from facediag.session import Session, SessionConfig
from helpers import loaded_model, write_demo_faces


@pytest.fixture
def faces(tmp_path):
    return write_demo_faces(tmp_path / "data", 12)


def _model():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 32))
    return loaded_model(module, sha256=uuid.uuid4().hex)  # a fresh cache namespace per test


def _session(data, cache, model, vlr_size):
    cfg = SessionConfig(data=data, vlr_size=vlr_size, cache_dir=cache, progress=False, device="cpu")
    return Session(cfg, models={"model": model})


def _overlap(session):
    res = run_check(get_check("subject-overlap")(), session, {"near_duplicate_correlation": 0.995,
                                                             "max_open_set_share": 0.5}, session.available)
    assert res.status.name == "PASS", res.summary
    return res


def _candidate_files(session):
    g, p = session.pixel_fingerprints("gallery"), session.pixel_fingerprints("probe_hr")
    ra, rb, _ = candidate_pairs(g.thumbs, p.thumbs)
    return Counter([g.paths[i] for i in set(ra.tolist())] + [p.paths[j] for j in set(rb.tolist())])


def _all_files(data):
    return {str(p) for p in data.rglob("*.png")}


@pytest.mark.parametrize("warm", [False, True])
def test_each_image_is_decoded_once_per_run_besides_candidates(faces, tmp_path, decodes, warm):
    model = _model()
    if warm:  # a first run fills the cache; the second embeds nothing and decodes for leakage only
        _session(faces, tmp_path / "cache", model, None).evaluation("model")
        decodes.clear()
    session = _session(faces, tmp_path / "cache", model, None)  # HR probes: one view per image
    session.evaluation("model")
    _overlap(session)
    again = _candidate_files(session)
    assert sum(again.values()) < len(_all_files(faces)) / 4  # the exact test re-reads few
    assert {p: decodes[p] - (p in again) for p in _all_files(faces)} == {p: 1 for p in _all_files(faces)}


def test_low_resolution_probes_decode_each_hr_file_once(faces, tmp_path, decodes):
    """With 16 px probes a probe's HR view and its DSR input come from one decode of its file
    (the HR pass hands the downsampled image to the DSR pass), whichever view is asked first."""
    session = _session(faces, tmp_path / "cache", _model(), 16)
    session.embeddings("model", "probe_dsr")
    session.evaluation("model")
    assert dict(decodes) == {p: 1 for p in _all_files(faces)}
    assert session.pixels.dsr_images == len(session.protocol.probes)  # every probe super-resolved


def test_the_leakage_test_adds_no_decode_to_a_run_with_low_resolution_probes(faces, tmp_path, decodes):
    """With 16 px probes subject-overlap adds no decode to the embedding pass's beyond the candidates."""
    session = _session(faces, tmp_path / "cache", _model(), 16)
    session.evaluation("model")
    before = Counter(decodes)
    _overlap(session)
    again = _candidate_files(session)
    assert {p: decodes[p] - before[p] for p in _all_files(faces) if decodes[p] != before[p]} == \
        {p: 1 for p in again}


def test_training_images_are_decoded_once_then_served_by_the_cache(faces, tmp_path, decodes):
    """--train-root: one streaming pass decodes each training image once (and the exact test its
    candidates); a second run with the same cache decodes only those candidates again."""
    train = write_demo_faces(tmp_path / "train", 6, images=4, seed=7, prefix="t")
    train_files = {str(p) for p in train.rglob("*.png")}

    def run_once():
        cfg = SessionConfig(data=faces, train_root=train, cache_dir=tmp_path / "cache", progress=False, device="cpu")
        session = Session(cfg, models={"model": _model()})
        _overlap_with_train(session)
        return {p: decodes[p] for p in train_files}

    first = run_once()
    decodes.clear()
    second = run_once()
    assert all(first[p] >= 1 for p in train_files)
    assert second == {p: first[p] - 1 for p in train_files}  # the candidates' re-reads, nothing else


def _overlap_with_train(session):
    res = run_check(get_check("subject-overlap")(), session, {"near_duplicate_correlation": 0.995,
                                                             "max_open_set_share": 0.5}, session.available)
    assert res.metrics["train_eval_identical"] == 0 and res.metrics["train_eval_near_duplicate"] == 0, res.summary
    return res


@pytest.mark.parametrize("warm", [False, True])
def test_the_pixel_sample_decodes_no_image_again(faces, tmp_path, decodes, warm):
    # The preprocessing check's sample (and the alignment check's smaller one, sampled after it)
    # takes the pixels the embedding pass decoded; from a warm cache it decodes each image once.
    model = _model()
    if warm:
        _session(faces, tmp_path / "cache", model, None).evaluation("model")
        decodes.clear()
    session = _session(faces, tmp_path / "cache", model, None)
    session.evaluation("model")
    res = run_check(get_check("preprocessing")(), session, dict(get_check("preprocessing").params), session.available)
    assert res.metrics["sample_images"] == 12 * 3
    small = session.sample_pixels(4, 2)
    big = session.sample_pixels(12, 3)
    assert decodes and max(decodes.values()) == 1
    decoded = set(decodes) if warm else _all_files(faces)
    assert {str(r.path) for r in big.records} <= decoded
    assert len(small) == 8 and torch.equal(small.pixels[0], big.pixels[0])
    fresh = images.load_face(big.records[5].path)  # what a second decode would give, bit for bit
    assert torch.equal(big.pixels[5], fresh)


def test_subject_overlap_says_when_the_leak_search_was_capped(tmp_path):
    """A person filmed: 30 frames of one picture with independent noise, so every probe frame has
    more near-identical gallery candidates than the exact test looks at. No frame is a copy of
    another (no leak), and the report says the search was capped instead of a bare "no leak"."""
    import numpy as np
    from PIL import Image
    from facediag.demo.faces import draw_subject

    rng = np.random.default_rng(0)
    for person in range(2):
        face = np.asarray(draw_subject(1, "train", person, 1)[0].convert("RGB")).astype(np.float64)
        (tmp_path / "data" / f"p{person}").mkdir(parents=True)
        for k in range(30):
            noisy = np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(tmp_path / "data" / f"p{person}" / f"{k:02d}.png")
    cfg = SessionConfig(data=tmp_path / "data", gallery_per_subject=20, cache_dir=tmp_path / "cache",
                        progress=False, device="cpu")
    res = _overlap(Session(cfg, models={"model": _model()}))
    assert res.metrics["leaked_near_duplicate"] == 0 and res.metrics["leak_search_capped"] == 20
    assert "nearest candidates" in res.summary
    assert any("near-identical candidates" in f.message for f in res.findings)
