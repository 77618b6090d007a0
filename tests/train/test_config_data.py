"""Trainer settings, the train/validation split and P×K batches: no model, no assets."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facediag.cli import cli
from facediag.errors import DataError, FacediagError
from facediag.train.config import TrainConfig, output_paths, parse_subjects
from facediag.train.data import TrainPixels, epoch_batches, split_data
from facediag.train.trainer import train_contrastive, warmup_cosine


def test_parse_subjects_ranges_and_literals():
    assert parse_subjects("s1-s3,s10") == ["s1", "s2", "s3", "s10"]
    assert parse_subjects("001-003") == ["001", "002", "003"]
    assert parse_subjects("Jean-Paul,Ann") == ["Jean-Paul", "Ann"]  # not a range: literal
    assert parse_subjects(None) is None and parse_subjects(" ") is None


def test_out_equal_to_weights_is_refused(tmp_path):
    weights = tmp_path / "pretrained.pt"
    weights.write_bytes(b"not read: refused before loading")
    with pytest.raises(FacediagError, match="overwrite the input weights"):
        train_contrastive(TrainConfig(data=tmp_path, weights=weights, out=weights))
    link = tmp_path / "alias.pt"
    link.symlink_to(weights)
    with pytest.raises(FacediagError, match="overwrite"):
        TrainConfig(data=tmp_path, weights=weights, out=link).check()
    assert weights.read_bytes() == b"not read: refused before loading"


def test_cli_refuses_out_equal_to_weights_with_exit_2(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    res = CliRunner().invoke(cli, ["train-contrastive", "-w", str(weights), "--data", str(tmp_path),
                                   "--out", str(weights)])
    assert res.exit_code == 2
    assert "overwrite the input weights" in res.output


@pytest.mark.parametrize("kw,match", [
    (dict(objective="paired", views="hr"), "needs --views hr\\+lr"),
    (dict(anchor_weight=0.5), "needs --weights"),
    (dict(objective="arcface"), "choose one of"),
    (dict(val_fraction=1.5), "val-fraction"),
])
def test_bad_settings_are_refused(tmp_path, kw, match):
    with pytest.raises(FacediagError, match=match):
        TrainConfig(data=tmp_path, out=tmp_path / "o.pt", **kw).check()


def test_output_paths_sit_beside_out(tmp_path):
    p = output_paths(tmp_path / "ft.pth")
    assert [p[k].name for k in ("out", "sidecar", "history", "plot", "resume")] == [
        "ft.pth", "ft.json", "ft.history.json", "ft.curves.png", "ft.resume.pt"]


def test_warmup_then_cosine():
    f = [warmup_cosine(s, 4, 20) for s in range(21)]
    assert f[0] == pytest.approx(0.25) and f[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[4:], f[5:])) and f[20] == pytest.approx(0.0)


def test_epoch_batches_are_pk_reproducible_and_leave_numpy_alone():
    labels = np.repeat(np.arange(10), 5)
    state = np.random.get_state()[1].copy()
    a = epoch_batches(labels, 4, 3, 5, seed=1, epoch=2)
    assert np.array_equal(np.random.get_state()[1], state)
    assert a == epoch_batches(labels, 4, 3, 5, seed=1, epoch=2)
    assert a != epoch_batches(labels, 4, 3, 5, seed=1, epoch=3)
    assert len(a) == 5
    for batch in a:
        _, counts = np.unique(labels[batch], return_counts=True)
        assert len(batch) == 12 and sorted(counts) == [3, 3, 3, 3]


def test_subject_split_is_disjoint_and_seen_holdout_never_trains(tmp_path, make_faces):
    make_faces(tmp_path / "d")
    cfg = TrainConfig(data=tmp_path / "d", out=tmp_path / "o.pt", train_subjects=["p0", "p1", "p2", "p3"],
                      val_subjects=["p4", "p5"], seen_holdout=2, gallery_per_subject=2)
    split = split_data(cfg)
    train_paths = {it.hr.path for it in split.train.items}
    assert split.train.subjects == ["p0", "p1", "p2", "p3"]
    assert split.val.gallery_subjects == ["p4", "p5"] and split.val_kind == "subjects"
    assert len(train_paths) == 4 * 4  # 6 images each, the last 2 held out
    assert not train_paths & {p.hr.path for p in split.seen.probes}
    assert {r.path for r in split.seen.gallery} <= train_paths  # enrolled HR photos may train
    assert not train_paths & {r.path for r in split.val.gallery}
    with pytest.raises(DataError, match="both train and validate"):
        split_data(TrainConfig(data=tmp_path / "d", out=tmp_path / "o.pt",
                               train_subjects=["p0", "p1"], val_subjects=["p1"]))
    with pytest.raises(DataError, match="not in"):
        split_data(TrainConfig(data=tmp_path / "d", out=tmp_path / "o.pt", val_subjects=["nobody"]))


def test_image_split_holds_out_the_last_images_of_each_subject(tmp_path, make_faces):
    make_faces(tmp_path / "d")
    split = split_data(TrainConfig(data=tmp_path / "d", out=tmp_path / "o.pt", val_split="images",
                                   val_fraction=0.34, gallery_per_subject=2))
    probes = {p.hr.path for p in split.val.probes}
    assert len(probes) == 6 * 3 and split.val_kind == "images"
    assert not probes & {it.hr.path for it in split.train.items}
    assert len(split.train.items) == 6 * 3


def test_paired_layout_trains_on_the_real_vlr_twin(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("hr_images", "vlr_images_16x16"):
        (tmp_path / sub).mkdir()
    for s in range(3):
        for j in range(5):
            name = f"{s:03d}_{j:02d}.png"
            Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(tmp_path / "hr_images" / name)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "vlr_images_16x16" / name)
    split = split_data(TrainConfig(data=tmp_path, out=tmp_path / "o.pt", val_split="images",
                                   val_fraction=0.2, gallery_per_subject=2))
    assert all(it.vlr is not None and it.vlr.path.name == it.hr.path.name for it in split.train.items)
    from facediag.models.dsr import load_dsr

    pixels = TrainPixels(split.train.items, 16, load_dsr(None), "cpu", need_lr=True)
    hr, lr, kept = pixels.batch([0, 1, 0])
    assert hr.shape == lr.shape == (3, 3, 112, 112) and kept == [0, 1, 2]
    assert 0 <= float(lr.min()) and float(lr.max()) <= 1
