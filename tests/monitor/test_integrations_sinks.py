"""The monitor's sinks: what each tracker holds afterwards is read back with that tracker's own
reader (tensorboard's EventAccumulator, MLflow's client); a tracker asked for and not installed is
one line naming the extra to install."""
import sys
import types
from types import SimpleNamespace

import pytest

from facediag.errors import FacediagError
from facediag.monitor import MonitorResult
from facediag.monitor.sinks import MlflowSink, Sink, TensorBoardSink, WandbSink, resolve_sink, scalars


def result(step, rank1, paired, diagnoses=(), should_stop=False):
    return MonitorResult(step=step, metrics={"identification.rank1": rank1, "pair-gap.paired_mean": paired,
                                             "norm-sanity.effective_rank": None},
                         statuses={}, diagnoses=list(diagnoses), trends=[], should_stop=should_stop,
                         reason="collapse" if should_stop else None)


RESULTS = [result(0, 0.9, 0.7), result(50, 0.6, 0.9), result(100, 0.2, 0.99, ["embedding-collapse"], True)]


def test_scalars_are_the_finite_metrics_under_the_facediag_prefix():
    r = SimpleNamespace(step=1, metrics={"a.x": 1, "a.nan": float("nan"), "a.none": None, "a.inf": float("inf"),
                                         "a.flag": True, "a.text": "x"})
    assert scalars(r) == {"facediag/a.x": 1.0}


def test_tensorboard_event_file_holds_each_metric_at_its_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = resolve_sink(f"tensorboard:{tmp_path}")
    assert isinstance(sink, TensorBoardSink) and isinstance(sink, Sink)
    for r in RESULTS:
        sink.log(r)
    sink.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = events.Tags()
    assert sorted(tags["scalars"]) == ["facediag/identification.rank1", "facediag/pair-gap.paired_mean"]
    rank1 = events.Scalars("facediag/identification.rank1")
    assert [e.step for e in rank1] == [0, 50, 100]
    assert [e.value for e in rank1] == pytest.approx([0.9, 0.6, 0.2])
    assert tags["tensors"] == ["facediag/diagnoses/text_summary"]  # the call that had a diagnosis
    assert [e.step for e in events.Tensors("facediag/diagnoses/text_summary")] == [100]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """One local MLflow store for the module: making its tables is most of an MLflow test's time."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_mlflow_local_run_holds_each_metric_at_its_step(mlflow_uri):
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri
    sink = resolve_sink(f"mlflow:{uri}")
    assert isinstance(sink, MlflowSink)
    for r in RESULTS:
        sink.log(r)
    sink.close()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED"  # the sink started this run, so it ends it
    history = client.get_metric_history(sink.run_id, "facediag/pair-gap.paired_mean")
    assert [(m.step, m.value) for m in history] == [(0, 0.7), (50, 0.9), (100, 0.99)]
    assert "facediag/norm-sanity.effective_rank" not in run.data.metrics  # never computed: no point
    assert run.data.tags["facediag/diagnoses"] == "embedding-collapse"


def test_mlflow_logs_into_the_run_it_is_given_and_leaves_it_open(mlflow_uri):
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri
    client = MlflowClient(tracking_uri=uri)
    mine = client.create_run(client.create_experiment("mine"))
    sink = MlflowSink(tracking_uri=uri, run=mine)
    sink.log(RESULTS[0])
    sink.close()
    run = client.get_run(mine.info.run_id)
    assert run.info.status == "RUNNING"
    assert run.data.metrics["facediag/identification.rank1"] == 0.9


class _FakeWandbRun:
    def __init__(self):
        self.logged, self.defined, self.finished = [], [], False

    def define_metric(self, name, step_metric=None):
        self.defined.append((name, step_metric))

    def log(self, data):
        self.logged.append(data)

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in for the wandb package (not a test dependency): a module with ``run`` and ``init``."""
    module = types.ModuleType("wandb")
    module.run = None
    module.init = lambda project=None: _FakeWandbRun()
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_wandb_logs_on_its_own_step_axis_and_finishes_only_its_own_run(fake_wandb):
    sink = resolve_sink("wandb")
    for r in RESULTS[:2]:
        sink.log(r)
    sink.close()
    assert ("facediag/*", "facediag/step") in sink.run.defined
    assert sink.run.logged == [{"facediag/step": 0, "facediag/identification.rank1": 0.9,
                                "facediag/pair-gap.paired_mean": 0.7},
                               {"facediag/step": 50, "facediag/identification.rank1": 0.6,
                                "facediag/pair-gap.paired_mean": 0.9}]
    assert sink.run.finished

    fake_wandb.run = users = _FakeWandbRun()
    sink = WandbSink()
    sink.log(RESULTS[0])
    sink.close()
    assert sink.run is users and users.logged and not users.finished


@pytest.mark.parametrize("spec, blocked, extra", [
    ("tensorboard:runs", "torch.utils.tensorboard", "tensorboard"),
    ("mlflow", "mlflow", "mlflow"),
    ("mlflow:sqlite:///x.db", "mlflow", "mlflow"),
    ("wandb", "wandb", "wandb"),
])
def test_a_tracker_asked_for_and_missing_is_one_line_naming_the_extra(monkeypatch, spec, blocked, extra):
    monkeypatch.setitem(sys.modules, blocked, None)  # import of it fails, as when it is not installed
    with pytest.raises(FacediagError) as err:
        resolve_sink(spec)
    message = str(err.value)
    assert "\n" not in message and f"pip install 'facediag[{extra}]'" in message


@pytest.mark.parametrize("spec", ["tensorbored:runs", "wandb:project", "", 3])
def test_an_unknown_sink_is_one_line_naming_the_forms(spec):
    with pytest.raises(FacediagError, match="tensorboard:DIR, mlflow, mlflow:TRACKING_URI or wandb"):
        resolve_sink(spec)


def test_a_sink_object_is_taken_as_it_is():
    class Mine:
        def log(self, result):
            pass

        def close(self):
            pass

    mine = Mine()
    assert resolve_sink(mine) is mine
