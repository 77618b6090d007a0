"""The Lightning callback in a real Trainer.fit: it calls the monitor on the live module at the
trainer's step, the trainer stops when the monitor says stop, and the metrics reach the trainer's
own loggers and the monitor's sinks (read back from the TensorBoard event file and the MLflow
store). The monitor here is a stand-in with the Monitor's call signature that says stop on its
third call; the real Monitor runs in the README test."""
import sys
from types import SimpleNamespace

import pytest
import torch

pl = pytest.importorskip("pytorch_lightning", reason="the lightning extra is not installed")

from facediag.errors import FacediagError  # noqa: E402
from facediag.integrations.lightning import MonitorCallback  # noqa: E402
from facediag.monitor.sinks import MlflowSink, TensorBoardSink  # noqa: E402


class ScriptedMonitor:
    """Called as ``monitor(model, step=...)``; says stop from call ``stop_at`` on, logs to its sinks."""

    def __init__(self, stop_at=3, sinks=()):
        self.stop_at, self.sinks, self.calls = stop_at, list(sinks), []

    def __call__(self, model, *, step):
        assert isinstance(model, torch.nn.Module)
        self.calls.append((model, step, model.training))
        n = len(self.calls)
        stop = n >= self.stop_at
        result = SimpleNamespace(step=step,
                                 metrics={"identification.rank1": 1.0 / n, "pair-gap.paired_mean": 0.5 + n / 10},
                                 statuses={}, diagnoses=["pair-memorization"] if stop else [], trends=[],
                                 should_stop=stop, reason="pair-memorization" if stop else None)
        for sink in self.sinks:
            sink.log(result)
        return result


class Embedder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(8, 4)

    def forward(self, x):
        return torch.nn.functional.normalize(self.backbone(x), dim=1)

    def training_step(self, batch, batch_idx):
        return (1 - self(batch[0]).sum(1)).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", (1 - self(batch[0]).sum(1)).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(32, 8, generator=g)), batch_size=8)


def trainer(tmp_path, callback, **kw):
    return pl.Trainer(max_epochs=20, accelerator="cpu", devices=1, callbacks=[callback], default_root_dir=tmp_path,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=1, **kw)


def _scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]


def test_the_trainer_stops_on_the_monitors_word_and_every_logger_holds_the_scalars(tmp_path):
    from mlflow.tracking import MlflowClient
    from pytorch_lightning.loggers import TensorBoardLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_sink = MlflowSink(tracking_uri=uri)
    monitor = ScriptedMonitor(stop_at=3, sinks=[TensorBoardSink(tmp_path / "monitor-tb"), mlflow_sink])
    callback = MonitorCallback(monitor)  # after each validation (the sanity check is not one)
    logger = TensorBoardLogger(tmp_path, name="lightning", version=0)
    module = Embedder()
    run = trainer(tmp_path, callback, logger=logger, limit_train_batches=4, limit_val_batches=1)
    run.fit(module, loader(), loader())
    for sink in monitor.sinks:
        sink.close()

    steps = [4, 8, 12]  # one validation per epoch of 4 steps; the third call says stop
    assert [step for _, step, _ in monitor.calls] == steps
    assert all(model is module for model, _, _ in monitor.calls)
    assert run.should_stop and run.current_epoch == 3 and run.global_step == 12  # not 20 epochs
    assert [r.should_stop for r in callback.results] == [False, False, True]

    expected = [(s, round(1.0 / n, 6)) for n, s in enumerate(steps, 1)]
    assert _scalars(tmp_path / "monitor-tb", "facediag/identification.rank1") == expected  # the monitor's sink
    assert _scalars(logger.log_dir, "facediag/identification.rank1") == expected  # the trainer's own logger
    history = MlflowClient(tracking_uri=uri).get_metric_history(mlflow_sink.run_id, "facediag/identification.rank1")
    assert [(m.step, round(m.value, 6)) for m in history] == expected


def test_every_n_steps_calls_the_named_network_and_stops_mid_epoch(tmp_path):
    monitor = ScriptedMonitor(stop_at=2)
    callback = MonitorCallback(monitor, every_n_steps=3, on_validation=False, model="backbone",
                               log_to_trainer=False)
    module = Embedder()
    run = trainer(tmp_path, callback, logger=False, limit_train_batches=4, limit_val_batches=0)
    run.fit(module, loader())
    assert [step for _, step, _ in monitor.calls] == [3, 6]
    assert all(model is module.backbone for model, _, _ in monitor.calls)
    assert run.global_step == 6  # stopped in the second epoch, at the step the monitor said so


@pytest.mark.parametrize("kw, message", [({"every_n_steps": 0}, "every_n_steps"),
                                         ({"every_n_steps": 2.5}, "every_n_steps"),
                                         ({"on_validation": False}, "never runs")])
def test_a_callback_that_would_never_run_or_cannot_count_is_refused(kw, message):
    with pytest.raises(FacediagError, match=message):
        MonitorCallback(ScriptedMonitor(), **kw)


def test_without_lightning_the_import_is_one_line_naming_the_extra(monkeypatch):
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "facediag.integrations.lightning", raising=False)
    with pytest.raises(FacediagError, match=r"^[^\n]*pip install 'facediag\[lightning\]'$"):
        import facediag.integrations.lightning  # noqa: F401
    monkeypatch.delitem(sys.modules, "facediag.integrations.lightning", raising=False)
