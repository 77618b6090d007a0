"""The README's "In your training loop" examples run as printed: the plain loop on the pretrained
model (one call, nothing diagnosed, the TensorBoard sink holds its scalars), and the Lightning
Trainer on a module whose loss pulls every face together, which the monitor stops at its first
call with embedding-collapse, logged to the trainer's TensorBoard logger and an MLflow store.
Held-out data: ORL people 21-30 (two gallery and two probe images each); training faces: people 1-8."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- README test: training loop"


def readme_blocks() -> list[str]:
    """The python blocks the README marks as run by this test, in order."""
    text = README.read_text()
    return re.findall(re.escape(MARKER) + r"[^\n]*-->\n```python\n(.*?)```", text, re.S)


def run(block: str, namespace: dict) -> dict:
    exec(compile(block, "README training-loop example", "exec"), namespace)  # our own README
    return namespace


@pytest.fixture
def workdir(tmp_path, monkeypatch, orl_root):
    for person in range(21, 31):
        for part, images in (("gallery", (1, 2)), ("probe", (3, 4))):
            folder = tmp_path / "held" / part / f"s{person}"
            folder.mkdir(parents=True)
            for i in images:
                shutil.copy(orl_root / f"s{person}" / f"{i}.pgm", folder / f"{i}.pgm")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def edgeface(float_weights):
    from facediag.models import load_checkpoint

    return load_checkpoint(float_weights).model.train()


def training_faces(orl_root) -> torch.Tensor:
    """ORL people 1-8, two images each, as EdgeFace takes them (112 px RGB in [-1, 1])."""
    from PIL import Image

    x = [np.asarray(Image.open(orl_root / f"s{p}" / f"{i}.pgm").convert("RGB").resize((112, 112)), np.float32)
         for p in range(1, 9) for i in (1, 2)]
    return (torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2) / 255 - 0.5) / 0.5


def _scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_the_readme_marks_both_examples():
    blocks = readme_blocks()
    assert len(blocks) == 2
    assert "monitor(model, step=step)" in blocks[0] and "MonitorCallback" in blocks[1]


@pytest.mark.slow
def test_the_plain_loop_example_runs(workdir, edgeface, orl_root):
    faces = training_faces(orl_root)
    optimizer = torch.optim.SGD(edgeface.parameters(), lr=1e-5)

    def train_step(model, batch):  # the user's own step: here a small one of the seed's kind
        optimizer.zero_grad()
        e = torch.nn.functional.normalize(model(batch), dim=1)
        (1 - (e[0::2] * e[1::2]).sum(1)).mean().backward()
        optimizer.step()

    ns = run(readme_blocks()[0], {"model": edgeface, "loader": [faces[:8], faces[8:]], "train_step": train_step})
    result = ns["result"]
    assert result.step == 0 and not result.should_stop and result.diagnoses == []  # the pretrained model
    assert 0.5 < result.metrics["identification.rank1"] <= 1
    assert edgeface.training  # the call gave the model back in train mode
    lines = (workdir / "runs" / "monitor.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"step":0' in lines[0]
    assert _scalars(workdir / "runs" / "facediag", "facediag/identification.rank1") == [
        (0, pytest.approx(result.metrics["identification.rank1"]))]


@pytest.mark.slow
def test_the_lightning_example_stops_a_collapsing_run(workdir, edgeface, orl_root):
    pl = pytest.importorskip("pytorch_lightning")
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from facediag.cli import cli

    class Collapsing(pl.LightningModule):
        """A LightningModule whose loss pulls every embedding of a batch together."""

        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def forward(self, x):
            return self.backbone(x)

        def training_step(self, batch, batch_idx):
            e = torch.nn.functional.normalize(self(batch[0]), dim=1)
            return 1 - (e @ e.T).mean()

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    data = torch.utils.data.TensorDataset(training_faces(orl_root))
    ns = run(readme_blocks()[1], {"lit_module": Collapsing(edgeface),
                                  "train_loader": torch.utils.data.DataLoader(data, batch_size=8),
                                  "val_loader": torch.utils.data.DataLoader(data, batch_size=16)})
    trainer, monitor = ns["trainer"], ns["monitor"]
    last = monitor.history[-1]
    assert trainer.should_stop and trainer.current_epoch < 20 and last.should_stop
    assert "embedding-collapse" in last.diagnoses
    step, rank1 = last.step, last.metrics["identification.rank1"]
    assert step == trainer.global_step

    logged = _scalars(workdir / "runs" / "lightning_logs" / "version_0", "facediag/identification.rank1")
    assert logged[-1] == (step, pytest.approx(rank1))  # through the trainer's own logger
    client = MlflowClient(tracking_uri="sqlite:///runs/mlflow.db")
    (run_info,) = client.search_runs([client.get_experiment_by_name("facediag-monitor").experiment_id])
    history = client.get_metric_history(run_info.info.run_id, "facediag/identification.rank1")
    assert (history[-1].step, history[-1].value) == (step, pytest.approx(rank1))

    shown = CliRunner().invoke(cli, ["render", "runs/monitor.jsonl"])
    assert shown.exit_code == 0, shown.output
    assert f"stop at step {step}" in shown.output and "diagnosis embedding-collapse began" in shown.output
