"""train-contrastive validates through facediag.Monitor: an epoch's history row holds what a
Monitor call of its own, on the kept checkpoint and the same held-out data, measures and
diagnoses."""
import dataclasses

import pytest

from facediag.models.checkpoint import load_checkpoint
from facediag.monitor import Monitor
from facediag.suites import load_suite
from facediag.train.data import split_data
from facediag.train.trainer import TrainConfig, train_contrastive
from facediag.train.validate import CATALOGUE

pytestmark = pytest.mark.slow


def test_an_epoch_row_is_a_monitor_call_on_its_checkpoint(tmp_path, make_faces):
    make_faces(tmp_path / "d", subjects=5, per_subject=6)
    cfg = TrainConfig(data=tmp_path / "d", out=tmp_path / "ft.pth", arch="xxs", val_split="images",
                      val_fraction=0.4, gallery_per_subject=2, batch_subjects=3, images_per_subject=2,
                      epochs=1, steps_per_epoch=2, lr=1e-3, threshold=0.3, progress=False, device="cpu")
    result = train_contrastive(cfg)
    row = result.history[1]
    assert result.best_epoch == 1 and row["best"]

    model = load_checkpoint(cfg.out).model
    split = split_data(dataclasses.replace(cfg).check())
    monitor = Monitor(data=split.val_root, protocol=split.val, vlr_size=cfg.vlr_size, gallery_per_subject=2,
                      suite=dataclasses.replace(load_suite("monitor"), threshold=0.3), device="cpu")
    own = monitor(model, step=cfg.steps_per_epoch)

    assert own.metrics["identification.threshold"] == 0.3  # the run's --threshold, not the default
    assert row["val_rank1"] is not None and row["val_n_probes"] > 0
    for key, metric in CATALOGUE.items():
        assert row[f"val_{key}"] == own.metrics.get(metric), key
    assert row["val_diagnoses"] == own.diagnoses
