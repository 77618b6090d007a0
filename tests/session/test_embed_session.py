"""The embedding engine, its cache and the Session: each image embedded once, DSR shared."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from facediag.embed import EmbeddingCache
from facediag.errors import FacediagError
from facediag.session import Session, SessionConfig
from helpers import write_folders_dataset


class Projector(torch.nn.Module):
    """A stand-in embedder: a fixed random projection of 8×8 pooled pixels to 512-d."""

    def __init__(self, seed=0, explode=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(3 * 64, 512, generator=g))
        self.explode = explode
        self.calls = 0

    def forward(self, x):
        if self.explode:
            raise AssertionError("the model was called although everything was cached")
        self.calls += 1
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.w


def fake_checkpoint(module, sha="f" * 64):
    return SimpleNamespace(model=module, variant="test", sha256=sha, head=None, label_map=None,
                           matched_fraction=1.0, missing_keys=[], unexpected_keys=[], parameters=1, path="mem")


@pytest.fixture
def data(tmp_path):
    return write_folders_dataset(tmp_path / "faces", subjects=4, images=5)


def make_session(data, tmp_path, module, **kw):
    cfg = SessionConfig(data=data, cache_dir=tmp_path / "cache", progress=False, device="cpu",
                        gallery_per_subject=2, **kw)
    return Session(cfg, models={"model": fake_checkpoint(module)})


def test_second_pass_is_served_from_the_cache(data, tmp_path):
    first = make_session(data, tmp_path, Projector())
    ev1 = first.evaluation("model")
    assert first.embedder("model").forward_calls > 0
    second = make_session(data, tmp_path, Projector(explode=True))  # same fingerprint, must not be called
    ev2 = second.evaluation("model")
    assert second.embedder("model").forward_calls == 0
    np.testing.assert_array_equal(ev1.probe_emb, ev2.probe_emb)
    np.testing.assert_array_equal(ev1.templates, ev2.templates)


def test_each_image_embedded_once_per_run_without_disk_cache(data, tmp_path):
    module = Projector()
    s = make_session(data, tmp_path, module, vlr_size=None, use_cache=False)
    s.evaluation("model")
    # HR probes: probe_hr and probe_dsr are the same images; gallery 8 + probes 12 = 20 images
    s.embeddings("model", "probe_hr")
    assert s.embedder("model").images_embedded == 20  # gallery 8 + probes 12, each once


def test_corrupt_cache_entry_is_recomputed(data, tmp_path):
    import sqlite3

    make_session(data, tmp_path, Projector()).evaluation("model")
    db = sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite3")
    ids = [r for (r,) in db.execute("SELECT id FROM vectors ORDER BY id LIMIT 2")]
    count = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    with db:
        db.execute("UPDATE vectors SET vec = substr(vec, 1, 20) WHERE id = ?", (ids[0],))  # truncated
        db.execute("UPDATE vectors SET vec = zeroblob(length(vec)) WHERE id = ?", (ids[1],))  # bad checksum
    db.close()
    again = make_session(data, tmp_path, Projector())
    again.evaluation("model")
    assert again.embedder("model").images_embedded == 2  # only the two bad entries were recomputed
    db = sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == count  # overwritten, not added
    db.close()


def test_cache_key_depends_on_model_fingerprint(tmp_path):
    cache = EmbeddingCache(tmp_path)
    ns_a, ns_b = EmbeddingCache.namespace("a"), EmbeddingCache.namespace("b")
    cache.put(ns_a, "k", np.ones(4, np.float32))
    assert cache.get(ns_a, "k") is not None
    assert cache.get(ns_b, "k") is None


def test_unreadable_image_is_reported_not_fatal(data, tmp_path):
    (data / "p1" / "9.png").write_bytes(b"")  # empty file among the probes
    (data / "p2" / "8.png").write_text("not a png")
    s = make_session(data, tmp_path, Projector())
    ev = s.evaluation("model")
    assert len(ev.probe_subjects) == 12  # the two bad probes are out, the rest scored
    problems = dict(s.problems)
    assert any(p.endswith("p1/9.png") for p in problems) and any(p.endswith("p2/8.png") for p in problems)
    assert s.dataset_info()["problems"]


def test_dsr_outputs_are_computed_once_and_shared_between_models(data, tmp_path):
    calls = []

    class CountingDSR:
        name, fingerprint = "counting", "counting-v1"

        def __call__(self, lr):
            calls.append(len(lr))
            return torch.nn.functional.interpolate(lr, size=(112, 112), mode="bicubic").clamp(0, 1)

    cfg = SessionConfig(data=data, use_cache=False, progress=False, device="cpu", gallery_per_subject=2)
    s = Session(cfg, models={"model": fake_checkpoint(Projector(0), "a" * 64),
                             "baseline": fake_checkpoint(Projector(1), "b" * 64)}, dsr=CountingDSR())
    s.evaluation("model")
    s.evaluation("baseline")
    assert sum(calls) == 12  # every probe super-resolved once, for both models


def test_session_needs_data():
    with pytest.raises(FacediagError, match="no data"):
        Session(SessionConfig(weights="x"))


def test_unknown_device_is_bad_input(data, tmp_path):
    s = make_session(data, tmp_path, Projector())
    s.config.device = "tpu"
    with pytest.raises(FacediagError, match="device"):
        s.device


def test_preprocessing_scores_the_expected_input_with_the_gallery_embeddings(data, tmp_path):
    """The preprocessing check's normal view is the gallery's own embedding: only the altered
    inputs ([0, 1], swapped channels, ImageNet mean/std) are new forwards, and the AUC is the one a
    new forward gives."""
    from facediag.checks.preprocessing import Preprocessing, pair_auc
    from facediag.checks.registry import run_check

    s = make_session(data, tmp_path, Projector())
    s.evaluation("model")
    before = s.embedder("model").images_embedded
    params = dict(Preprocessing.params)
    res = run_check(Preprocessing(), s, params, s.available)
    altered = [k for k in res.metrics if k.startswith("auc_") and k != "auc_expected" and not k.endswith("_gain_low")]
    assert sorted(altered) == ["auc_channels_swapped", "auc_imagenet", "auc_range_0_1"]  # colour faces
    assert s.embedder("model").images_embedded - before == len(altered) * res.metrics["sample_images"]
    sample = s.sample_pixels(params["max_subjects"], params["per_subject"])
    fresh = pair_auc(s.embed_pixels("model", sample.pixels), sample.subjects)
    assert res.metrics["auc_expected"] == round(fresh, 4)
