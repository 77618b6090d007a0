"""--degrade bicubic|realistic where low-resolution probes are made: bench accuracy (CLI, ORL, real
EdgeFace-xxs), bench verification (and the refusal of its old --degrade second|both), the Session
behind run-all and compare; caches never serve one mode's probes to the other."""
import json

import pytest
import torch
import torch.nn.functional as F

from cli_helpers import invoke, one_line_exit_2
from facediag.bench import bench_accuracy
from facediag.bench.verification import bench_verification
from facediag.data.degradation import degrade, describe, key_token
from facediag.errors import FacediagError
from facediag.render import render
from facediag.results import BenchReport
from facediag.session import Session, SessionConfig
from helpers import copy_orl_subset, orl_pairs, write_orl_bin


@pytest.fixture(scope="module")
def orl10(orl_root, tmp_path_factory):
    """ORL's first 10 people: 30 gallery images, 70 probes."""
    return copy_orl_subset(orl_root, tmp_path_factory.mktemp("orl10") / "orl")


def _accuracy(weights, data, cache, *extra):
    res = invoke("bench", "accuracy", "-w", weights, "--data", data, "--resolutions", "16", "--n-boot", "100",
                 "--cache-dir", cache, "--quiet", "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_cli_bench_accuracy_realistic_on_orl(float_weights, orl10, tmp_path):
    cache = tmp_path / "cache"
    bicubic = _accuracy(float_weights, orl10, cache)  # the default: bicubic, as before
    assert bicubic["settings"]["degrade"] == "bicubic"
    assert "probes area-downsampled to each resolution" in bicubic["dataset"]["protocol"]
    realistic = _accuracy(float_weights, orl10, cache, "--degrade", "realistic")
    assert realistic["settings"]["degradation"] == describe("realistic")
    assert "realistic chain" in realistic["dataset"]["protocol"]
    # The gallery and the probes' own HR images came from the cache; the 70 realistic probes did not
    # (no bicubic entry served them): exactly two batches of 64 reached the model.
    assert list(realistic["settings"]["model_forward_batches"].values()) == [2]
    (rb,), (rr,) = bicubic["rows"], realistic["rows"]
    assert rr["n_probes"] == rb["n_probes"] == 70
    assert rr["rank1"] < rb["rank1"] - 0.1, (rr["rank1"], rb["rank1"])  # blur, noise and JPEG cost recognition
    # A second run draws the same degradations: the cache serves every probe, the figures are equal.
    again = _accuracy(float_weights, orl10, cache, "--degrade", "realistic")
    assert list(again["settings"]["model_forward_batches"].values()) == [0]
    assert again["rows"][0]["rank1"] == rr["rank1"]
    explicit = _accuracy(float_weights, orl10, cache, "--degrade", "bicubic")
    assert list(explicit["settings"]["model_forward_batches"].values()) == [0]
    assert explicit["rows"][0]["rank1"] == rb["rank1"]
    # Every format states the realistic ranges under the table; a bicubic report says nothing new.
    for fmt in ("md", "html"):
        assert "realistic degradation v1" in render(BenchReport.from_dict(realistic), fmt)
        assert "realistic degradation" not in render(BenchReport.from_dict(bicubic), fmt)


def test_session_makes_keys_and_pixels_by_the_mode(orl10):
    sessions = {m: Session(SessionConfig(data=orl10, degrade=m, vlr_size=16, use_cache=False, progress=False))
                for m in ("bicubic", "realistic")}
    items = {m: s.pixels.items("probe_dsr") for m, s in sessions.items()}
    assert all(f":{key_token('bicubic', 16)}:" in it.key for it in items["bicubic"])
    assert all(f":{key_token('realistic', 16)}:" in it.key for it in items["realistic"])
    assert not {it.key for it in items["bicubic"]} & {it.key for it in items["realistic"]}
    # The probe the model sees: its HR face degraded by the mode, brought back by bicubic (float16).
    probe = sessions["realistic"].protocol.probes[0]
    hr = sessions["realistic"].pixels.face(probe.hr.path)()
    want = F.interpolate(degrade(hr, 16, "realistic")[None], size=(112, 112), mode="bicubic",
                         align_corners=False).clamp(0, 1)[0]
    got = items["realistic"][0].load()
    assert torch.allclose(got, want, atol=1e-3)
    bic = items["bicubic"][0].load()
    assert (got - bic).abs().mean() > 0.01
    # Reports: the degradation and its ranges; realistic probes are other data (their own fingerprint).
    info = {m: s.dataset_info() for m, s in sessions.items()}
    assert info["realistic"]["degradation"] == describe("realistic")
    assert info["bicubic"]["degradation"] == describe("bicubic")
    assert info["realistic"]["fingerprint"] != info["bicubic"]["fingerprint"]
    default = Session(SessionConfig(data=orl10, vlr_size=16, use_cache=False, progress=False)).dataset_info()
    assert default["fingerprint"] == info["bicubic"]["fingerprint"]  # bicubic reports unchanged
    assert any("realistic degradation" in n for n in info["realistic"]["notes"])


def test_bench_verification_realistic_keys_its_own_views(float_weights, orl_root, tmp_path):
    pairs = write_orl_bin(orl_root, tmp_path / "orl40.bin", orl_pairs(40, seed=3))
    run = {}
    for mode in ("bicubic", "realistic", "realistic"):
        run[mode] = bench_verification([float_weights], [pairs], flip=False, resolutions="16", degrade=mode,
                                       cache_dir=tmp_path / "cache", progress=False)
        if mode == "realistic" and "first" not in run:
            run["first"] = run[mode]
    first, again = run["first"], run["realistic"]
    (embedded,) = first.settings["images_embedded"].values()
    assert embedded > 0  # the bicubic run's 16 px views were not served to the realistic run
    assert again.settings["images_embedded"] == {k: 0 for k in first.settings["images_embedded"]}
    assert again.rows[0]["fold_accuracies"] == first.rows[0]["fold_accuracies"]
    assert first.settings["degrade"] == "realistic" and first.settings["degrade_side"] == "second"
    assert first.settings["degradation"] == describe("realistic")
    assert "realistic chain" in first.dataset["protocol"]
    assert run["bicubic"].rows[0]["auc"] != first.rows[0]["auc"]


@pytest.mark.parametrize("old", ["second", "both"])
def test_old_degrade_values_of_bench_verification_are_refused(old, tmp_path):
    res = invoke("bench", "verification", "-w", tmp_path / "none.pt", "--pairs", tmp_path / "none.bin",
                 "--degrade", old)
    one_line_exit_2(res, f"--degrade-side {old}")
    with pytest.raises(FacediagError, match="degrade_side"):
        bench_verification([tmp_path / "none.pt"], [tmp_path / "none.bin"], resolutions="16", degrade=old)


def test_unknown_degradations_are_one_line(float_weights, orl10, tmp_path):
    one_line_exit_2(invoke("bench", "accuracy", "-w", float_weights, "--data", orl10, "--degrade", "lanczos"),
                    "choose bicubic or realistic")
    one_line_exit_2(invoke("run-all", "-w", float_weights, "--data", orl10, "--degrade", "both"),
                    "choose bicubic or realistic")
    # Checked before any checkpoint is read: the weights here do not exist.
    with pytest.raises(FacediagError, match="unknown degradation"):
        bench_accuracy([tmp_path / "missing.pt"], orl10, degrade="gaussian")
    with pytest.raises(FacediagError, match="unknown degradation"):
        Session(SessionConfig(data=orl10, degrade="area"))


def test_train_contrastive_degrades_training_and_validation_by_the_mode(tmp_path):
    from facediag.train.data import TrainPixels, split_data
    from facediag.train.trainer import TrainConfig, train_contrastive
    from helpers import write_folders_dataset

    data = write_folders_dataset(tmp_path / "d", subjects=4, images=5)
    cfg = dict(data=data, arch="xxs", val_split="images", val_fraction=0.4, gallery_per_subject=2,
               batch_subjects=3, images_per_subject=2, epochs=1, steps_per_epoch=1, lr=1e-4, progress=False,
               device="cpu")
    with pytest.raises(FacediagError, match="unknown degradation"):
        TrainConfig(out=tmp_path / "x.pth", degrade="second", **cfg).check()
    split = split_data(TrainConfig(out=tmp_path / "x.pth", **cfg).check())
    items = split.train.items
    # The training pair's low-resolution view is the mode's; the fingerprint names the mode (bicubic's
    # is unchanged, so existing runs resume).
    hr, lr = TrainPixels(items[:1], 16, None, "cpu", need_lr=True, mode="realistic")._decode(0)
    assert torch.equal(lr, degrade(hr, 16, "realistic"))
    fp = split.train.fingerprint
    assert fp(16, "bicubic-112") == fp(16, "bicubic-112", None, "bicubic") != fp(16, "bicubic-112", None, "realistic")
    result = train_contrastive(TrainConfig(out=tmp_path / "run" / "r.pth", degrade="realistic", **cfg))
    side = json.loads(result.sidecar_path.read_text())
    assert side["config"]["degrade"] == "realistic"
    state = torch.load(result.resume_path, weights_only=True)
    assert state["identity"]["degrade"] == "realistic"
