"""The trainer on real faces (ORL, credit: AT&T Laboratories Cambridge) and the float
EdgeFace-xxs: train on s1–s30, validate on s31–s40 with 16 px probes. Few, small steps
so it fits a CPU test budget; the long run is in the README/issue note."""
import json

import pytest
from click.testing import CliRunner

from facediag.cli import cli
from facediag.errors import FacediagError
from facediag.models.checkpoint import load_checkpoint, sha256_file
from facediag.train import loop
from facediag.train.config import parse_subjects
from facediag.train.trainer import TrainConfig, train_contrastive

pytestmark = pytest.mark.slow


def orl_config(orl_root, weights, out, **kw):
    base = dict(data=orl_root, weights=weights, out=out, train_subjects=parse_subjects("s1-s30"),
                val_subjects=parse_subjects("s31-s40"), vlr_size=16, batch_subjects=8,
                images_per_subject=2, warmup_steps=0, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_paired_only_objective_is_caught_at_the_first_epoch(tmp_path, orl_root, float_weights):
    cfg = orl_config(orl_root, float_weights, tmp_path / "paired.pth", objective="paired",
                     lr=1e-3, epochs=3, steps_per_epoch=4)
    result = train_contrastive(cfg)
    start, first = result.history
    # What the paired recipe reports: every DSR output matches its own HR image.
    assert first["train_paired_last"] > 0.95
    assert first["val_paired_mean"] > 0.95
    # What gallery matching on held-out people shows at the same epoch: everyone matches everyone.
    assert start["val_impostor_mean"] < 0.2 and start["val_far_at_threshold"] < 0.05
    assert first["val_impostor_mean"] > 0.9
    assert first["val_far_at_threshold"] > 0.5
    assert first["val_rank1"] < start["val_rank1"]
    # The Monitor's diagnosis, as run-all names it, flags the epoch and stops the run there.
    assert start["val_diagnoses"] == [] and not start["should_stop"]
    assert "embedding-collapse" in first["val_diagnoses"]
    assert any(f.startswith("embedding-collapse: ") for f in first["flags"])
    assert first["should_stop"] and result.stopped_early


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, orl_root, float_weights):
    """supcon: 1 epoch; then --resume to 2 epochs, killed mid-epoch 2; then --resume again."""
    out = tmp_path_factory.mktemp("supcon") / "ft.pth"
    weights_sha = sha256_file(float_weights)
    kw = dict(lr=5e-5, steps_per_epoch=2, seen_holdout=3, batch_subjects=16)
    first = train_contrastive(orl_config(orl_root, float_weights, out, epochs=1, **kw))

    calls = {"n": 0}
    step = loop.TrainingRun.step

    def killed_on_second_step(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return step(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop.TrainingRun, "step", killed_on_second_step)
        with pytest.raises(KeyboardInterrupt):
            train_contrastive(orl_config(orl_root, float_weights, out, epochs=2, resume=True,
                                         save_every=1, **kw))
    final = train_contrastive(orl_config(orl_root, float_weights, out, epochs=2, resume=True, **kw))
    return dict(out=out, first=first, final=final, weights_sha=weights_sha, kw=kw)


def test_resume_after_a_kill_finishes_the_run(resumed_run):
    first, final = resumed_run["first"], resumed_run["final"]
    assert [r["epoch"] for r in first.history] == [0, 1]
    assert [r["epoch"] for r in final.history] == [0, 1, 2]
    assert final.history[2]["steps"] == 2  # one step before the kill, one after
    assert final.history[:2] == json.loads(json.dumps(first.history))  # epochs 0-1 kept as they were
    saved = json.loads(final.history_path.read_text())
    assert [r["epoch"] for r in saved] == [0, 1, 2]
    side = json.loads(final.sidecar_path.read_text())
    assert side["best_epoch"] == final.best_epoch and len(side["history"]) == 3
    assert side["data"]["train"]["fingerprint"] and side["data"]["val"]["fingerprint"]
    assert side["input_weights"]["sha256"] == resumed_run["weights_sha"]
    assert not [p for p in resumed_run["out"].parent.iterdir() if p.name.endswith(".tmp")]


def test_output_is_a_strict_official_state_dict_and_input_is_untouched(resumed_run, float_weights):
    out = resumed_run["out"]
    loaded = load_checkpoint(out)
    assert loaded.variant == "edgeface_xxs" and loaded.format == "state_dict"
    assert loaded.sha256 == json.loads(resumed_run["final"].sidecar_path.read_text())["output"]["sha256"]
    assert sha256_file(float_weights) == resumed_run["weights_sha"]
    res = CliRunner().invoke(cli, ["inspect", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["variant"] == "edgeface_xxs"


def test_short_supcon_run_does_not_lower_held_out_rank1(resumed_run):
    final = resumed_run["final"]
    start, best = final.history[0], final.best_metrics
    assert 0.85 <= start["val_rank1"] <= 0.92  # pretrained xxs, 16 px, s31–s40: ≈0.89
    assert best["val_rank1"] >= start["val_rank1"]     # unseen people
    assert best["seen_rank1"] >= start["seen_rank1"]   # held-out images of the training people


def test_resume_with_other_settings_is_refused(resumed_run, orl_root, float_weights):
    kw = {**resumed_run["kw"], "lr": 1e-3}
    with pytest.raises(FacediagError, match="differs in lr"):
        train_contrastive(orl_config(orl_root, float_weights, resumed_run["out"], epochs=3,
                                     resume=True, **kw))
