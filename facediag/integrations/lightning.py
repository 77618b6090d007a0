"""A PyTorch Lightning callback that runs a :class:`facediag.Monitor` on the live model.

    from facediag import Monitor
    from facediag.integrations.lightning import MonitorCallback

    monitor = Monitor(gallery_root="held/gallery", probe_root="held/probe", vlr_size=16)
    trainer = Trainer(callbacks=[MonitorCallback(monitor)])          # after each validation
    trainer = Trainer(callbacks=[MonitorCallback(monitor, every_n_steps=500)])

Each call's metrics also go to the trainer's own loggers (TensorBoard, MLflow, W&B, CSV: whatever
the Trainer was given) as ``facediag/<check>.<metric>`` at the trainer's global step, and when the
monitor says stop, ``trainer.should_stop`` is set on every rank (any rank's stop stops them all,
as Lightning's EarlyStopping decides). Works with ``lightning`` (``lightning.pytorch``) or the older
``pytorch_lightning`` package, whichever is installed (``lightning`` first).
"""
from __future__ import annotations

from typing import Callable

import torch

from facediag.errors import FacediagError
from facediag.monitor.sinks import scalars

try:
    from lightning.pytorch import Callback
except ImportError:
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise FacediagError("facediag.integrations.lightning needs PyTorch Lightning, which is not installed: "
                            "pip install 'facediag[lightning]'") from None

__all__ = ["MonitorCallback"]


class MonitorCallback(Callback):
    """Call ``monitor(model, step=trainer.global_step)`` during ``Trainer.fit``.

    Parameters
    ----------
    monitor
        A :class:`facediag.Monitor` (anything called as ``monitor(model, step=...)`` that returns
        a ``MonitorResult``).
    every_n_steps
        Also call it every this many optimizer steps (None: not on steps).
    on_validation
        Call it at the end of each validation run (not the sanity check before training).
    model
        The embedding network the monitor evaluates: None for the LightningModule itself (its
        ``forward`` returns embeddings), an attribute name of it (``"backbone"``), or a function
        of the LightningModule returning the network.
    log_to_trainer
        Also log the metrics through ``trainer.loggers``.

    Attributes
    ----------
    results : list
        Each call's ``MonitorResult``, in order (the latest is ``results[-1]``).
    """

    def __init__(self, monitor, *, every_n_steps: int | None = None, on_validation: bool = True,
                 model: str | Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                 log_to_trainer: bool = True):
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int)
                                          or every_n_steps < 1):
            raise FacediagError(f"every_n_steps is a whole number of steps >= 1, not {every_n_steps!r}")
        if every_n_steps is None and not on_validation:
            raise FacediagError("MonitorCallback with on_validation=False needs every_n_steps, or it never runs")
        self.monitor = monitor
        self.every_n_steps = every_n_steps
        self.on_validation = on_validation
        self.model = model
        self.log_to_trainer = log_to_trainer
        self.results: list = []
        self._last_step: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self._run(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.on_validation and not trainer.sanity_checking:
            self._run(trainer, pl_module)

    def _network(self, pl_module) -> torch.nn.Module:
        if self.model is None:
            return pl_module
        if isinstance(self.model, str):
            return getattr(pl_module, self.model)
        return self.model(pl_module)

    def _run(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step == self._last_step:  # gradient accumulation, or validation on a step already seen
            return
        self._last_step = step
        result = self.monitor(self._network(pl_module), step=step)
        self.results.append(result)
        if self.log_to_trainer:
            metrics = scalars(result)
            for logger in trainer.loggers if metrics else ():
                logger.log_metrics(metrics, step=step)
        stop = trainer.strategy.reduce_boolean_decision(bool(result.should_stop), all=False)
        if stop:
            trainer.should_stop = True
