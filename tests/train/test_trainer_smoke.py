"""End to end on synthetic faces, from scratch: runs without the real assets."""
import json

from facediag.models.checkpoint import load_checkpoint
from facediag.train.trainer import TrainConfig, train_contrastive


def test_from_scratch_run_writes_every_output(tmp_path, make_faces):
    make_faces(tmp_path / "d", subjects=4, per_subject=5)
    out = tmp_path / "run" / "scratch.pth"
    cfg = TrainConfig(data=tmp_path / "d", out=out, weights=None, arch="xxs", val_split="images",
                      val_fraction=0.4, gallery_per_subject=2, batch_subjects=3, images_per_subject=2,
                      epochs=1, steps_per_epoch=1, lr=1e-4, progress=False, device="cpu")
    result = train_contrastive(cfg)
    assert result.best_epoch == 1 and [r["epoch"] for r in result.history] == [0, 1]
    assert load_checkpoint(out).variant == "edgeface_xxs"  # strict, official keys
    side = json.loads(result.sidecar_path.read_text())
    assert side["input_weights"] is None and side["config"]["arch"] == "xxs"
    assert side["selection"].startswith("best validation gallery rank-1")
    assert result.plot_path.stat().st_size > 0 and result.resume_path.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_hr_only_views_and_early_stopping(tmp_path, make_faces):
    make_faces(tmp_path / "d", subjects=4, per_subject=5)
    # An lr too small to change rank-1: no epoch beats epoch 1, so patience 1 stops after 2.
    cfg = TrainConfig(data=tmp_path / "d", out=tmp_path / "hr.pth", arch="xxs", views="hr",
                      val_split="images", val_fraction=0.4, gallery_per_subject=2, batch_subjects=2,
                      images_per_subject=2, epochs=4, steps_per_epoch=1, lr=1e-12, patience=1,
                      progress=False, device="cpu")
    result = train_contrastive(cfg)
    assert result.stopped_early and [r["epoch"] for r in result.history] == [0, 1, 2]
    assert result.best_epoch == 1
    assert result.history[1]["train_paired_cos"] is None  # no DSR view, no paired cosine


def test_start_removes_temp_files_a_killed_run_left(tmp_path, make_faces):
    # What a SIGKILL during atomic_save leaves: `.<target>.<random>.tmp` beside the target.
    make_faces(tmp_path / "d", subjects=4, per_subject=5)
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".scratch.resume.pt.k3x9_q2a.tmp", run / ".scratch.pth.a1b2c3d4.tmp",
             run / ".scratch.json.zz9x8w7v.tmp"]
    keep = [run / "notes.tmp", run / ".scratch.resume.pt.old", run / ".scratch.pth.bak.a1b2c3d4.tmp",
            run / "scratch.resume.pt.a1b2c3d4.tmp"]
    for p in stale + keep:
        p.write_bytes(b"partial")
    cfg = TrainConfig(data=tmp_path / "d", out=run / "scratch.pth", arch="xxs", val_split="images",
                      val_fraction=0.4, gallery_per_subject=2, batch_subjects=3, images_per_subject=2,
                      epochs=1, steps_per_epoch=1, lr=1e-4, progress=False, device="cpu")
    train_contrastive(cfg)
    assert not [p for p in stale if p.exists()]
    assert all(p.read_bytes() == b"partial" for p in keep)
