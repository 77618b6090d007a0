"""Where a monitor's results go besides its history file: TensorBoard, MLflow, Weights & Biases.

A sink receives each :class:`MonitorResult` and logs its metrics as scalars named
``facediag/<check>.<metric>`` (the catalogue's names) at the result's step; a metric that could
not be computed (None, NaN, Inf) is left out rather than drawn as a point. Each tracker is an
optional extra: asking for one that is not installed is one line naming the extra to install.
The packages are imported when a sink is made, never when facediag is.
"""
from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

from facediag.errors import FacediagError

PREFIX = "facediag/"


@runtime_checkable
class Sink(Protocol):
    """Anything a Monitor can hand its results to."""

    def log(self, result) -> None: ...

    def close(self) -> None: ...


def scalars(result) -> dict[str, float]:
    """The result's finite metrics as ``{"facediag/<metric>": value}``."""
    out = {}
    for name, value in result.metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        out[PREFIX + name] = float(value)
    return out


def _missing(what: str, extra: str) -> FacediagError:
    return FacediagError(f"{what} is not installed: pip install 'facediag[{extra}]'")


class TensorBoardSink:
    """Scalars into a TensorBoard event file under ``log_dir`` (torch's SummaryWriter); the
    diagnoses of each call, when there are any, as text at its step."""

    def __init__(self, log_dir=None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("TensorBoard logging needs the tensorboard package, which", "tensorboard") from None
        self.writer = SummaryWriter(log_dir=None if log_dir is None else str(log_dir))

    def log(self, result) -> None:
        for tag, value in scalars(result).items():
            self.writer.add_scalar(tag, value, global_step=result.step)
        if result.diagnoses:
            self.writer.add_text(PREFIX + "diagnoses", ", ".join(result.diagnoses), global_step=result.step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MlflowSink:
    """Metrics into an MLflow run, at the result's step.

    ``tracking_uri`` is any MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``;
    None: MLflow's own default, ``MLFLOW_TRACKING_URI`` included). ``run`` is a run id or an
    ``mlflow.entities.Run``; without either the sink logs into the active run (``mlflow.start_run``
    in the training script) or, when there is none, starts a run of its own in the experiment
    ``facediag-monitor`` and ends it on close. A run the sink did not start is never ended by it.
    """

    EXPERIMENT = "facediag-monitor"

    def __init__(self, tracking_uri: str | None = None, run=None):
        try:
            import mlflow
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("MLflow logging needs mlflow (or mlflow-skinny), which", "mlflow") from None
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._own = False
        if run is None and tracking_uri is None:
            run = mlflow.active_run()
        if run is None:
            experiment = self.client.get_experiment_by_name(self.EXPERIMENT)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(self.EXPERIMENT)
            run = self.client.create_run(experiment_id)
            self._own = True
        self.run_id = run if isinstance(run, str) else run.info.run_id

    def log(self, result) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, int(result.step)) for key, value in scalars(result).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        if result.diagnoses:
            self.client.set_tag(self.run_id, PREFIX + "diagnoses", ", ".join(result.diagnoses))

    def close(self) -> None:
        if self._own:
            self.client.set_terminated(self.run_id)
            self._own = False


class WandbSink:
    """Metrics into a Weights & Biases run (``run``, else ``wandb.run``, else a new run of the
    project ``facediag-monitor``), against their own step axis ``facediag/step`` so that they never
    clash with the step counter of the training script's own ``wandb.log`` calls."""

    def __init__(self, run=None):
        try:
            import wandb
        except ImportError:
            raise _missing("Weights & Biases logging needs the wandb package, which", "wandb") from None
        self._own = run is None and wandb.run is None
        self.run = run or wandb.run or wandb.init(project="facediag-monitor")
        self.run.define_metric(PREFIX + "step")
        self.run.define_metric(PREFIX + "*", step_metric=PREFIX + "step")

    def log(self, result) -> None:
        self.run.log({PREFIX + "step": int(result.step), **scalars(result)})

    def close(self) -> None:
        if self._own:
            self.run.finish()
            self._own = False


SPECS = "tensorboard, tensorboard:DIR, mlflow, mlflow:TRACKING_URI or wandb"


def resolve_sink(spec) -> Sink:
    """A Sink from ``spec``: a Sink object as it is, or one of the strings ``tensorboard``,
    ``tensorboard:DIR``, ``mlflow``, ``mlflow:TRACKING_URI`` (``mlflow:sqlite:///mlflow.db``) or
    ``wandb``. Anything else is one line naming the forms."""
    if not isinstance(spec, str):
        if isinstance(spec, Sink):
            return spec
        raise FacediagError(f"a monitor sink is a Sink (with log and close) or one of {SPECS}, "
                            f"not a {type(spec).__name__}")
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "tensorboard":
        return TensorBoardSink(arg or None)
    if name == "mlflow":
        return MlflowSink(arg or None)
    if name == "wandb" and not arg:
        return WandbSink()
    raise FacediagError(f"unknown monitor sink {spec!r}; give {SPECS}")
