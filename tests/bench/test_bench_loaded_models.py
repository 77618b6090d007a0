"""One loaded-model type: a module wrapped in memory, an ONNX graph and a TorchScript checkpoint of
the same network go through bench accuracy alike (same Session path, same numbers), and bench
verification / speed take the wrapped module as they take a loaded checkpoint."""
import warnings

import pytest
import torch
from torch import nn

from facediag.bench import bench_accuracy
from facediag.models.checkpoint import load_checkpoint
from facediag.models.loaded import LoadedModel
from facediag.models.presets import ModelPreset
from helpers import write_folders_dataset


class PooledProjection(nn.Module):
    """A fixed random projection of 4×4-pooled pixels to 512-d: a network every format can hold."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(48, 512)

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_folders_dataset(tmp_path_factory.mktemp("faces"), subjects=4, images=5)


def _scripted(module: nn.Module, path):
    with warnings.catch_warnings():  # torch.jit's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(module).save(str(path))
    return load_checkpoint(path, arch="custom")


def _onnx(module: nn.Module, path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (torch.zeros(2, 3, 112, 112),), str(path), dynamo=False,
                          input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
    return load_checkpoint(path)


def test_wrapped_onnx_and_checkpoint_take_one_path_through_bench_accuracy(faces, tmp_path):
    module = PooledProjection().eval()
    models = {"memory": LoadedModel.from_module(PooledProjection().eval(), name="student"),
              "torchscript": _scripted(module, tmp_path / "net.torchscript"),
              "onnx": _onnx(module, tmp_path / "net.onnx")}
    assert all(isinstance(m, LoadedModel) for m in models.values())
    report = bench_accuracy(list(models.values()), faces, resolutions="16,hr", labels=list(models),
                            use_cache=False, progress=False, n_boot=50, device="cpu")
    assert {label: info["format"] for label, info in report.checkpoints.items()} == {
        "memory": "module", "torchscript": "torchscript", "onnx": "onnx"}
    assert report.checkpoints["memory"]["sha256"] is None
    # the same batches reached each model: one Session path for all three
    batches = report.settings["model_forward_batches"]
    assert batches["memory"] == batches["torchscript"] == batches["onnx"] > 0
    by_label = {}
    for row in report.rows:
        by_label.setdefault(row["checkpoint"], []).append(row)
    for label in ("torchscript", "onnx"):
        for mine, theirs in zip(by_label["memory"], by_label[label], strict=True):
            assert (mine["resolution"], mine["n_probes"], mine["rank1"]) == \
                (theirs["resolution"], theirs["n_probes"], theirs["rank1"])
            assert mine["genuine_mean"] == pytest.approx(theirs["genuine_mean"], abs=1e-5)


def test_from_module_wraps_a_module_of_another_preset_and_does_not_cache():
    bgr = ModelPreset(channel_order="BGR", name="bgr-net", family="bgr-net")
    module = PooledProjection()
    loaded = LoadedModel.from_module(module, name="bgr", preset=bgr)
    assert loaded.preset == bgr and loaded.sha256 is None and loaded.format == "module"
    assert loaded.parameters == sum(p.numel() for p in module.parameters())
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    # fed EdgeFace's RGB input, the wrapped module sees the same pixels in BGR order
    assert torch.allclose(loaded.model(x), module(x.flip(1)), atol=1e-6)
    assert LoadedModel.from_module(module).model is module  # EdgeFace's preset: nothing to convert


def test_from_module_reads_a_model_card(tmp_path):
    card = tmp_path / "net.toml"
    card.write_text('family = "pooled"\nthreshold = 0.3\n')
    loaded = LoadedModel.from_module(PooledProjection(), name="net", card=card)
    assert loaded.card == str(card) and loaded.preset.threshold == 0.3 and loaded.preset.name == "pooled"


def test_bench_speed_takes_a_wrapped_module():
    from facediag.bench import bench_speed
    from facediag.models import build_edgeface

    loaded = LoadedModel.from_module(build_edgeface("edgeface_xxs"), name="student", variant="edgeface_xxs")
    report = bench_speed([loaded], timing=False, device="cpu")
    row = report.rows[0]
    assert row["checkpoint"] == "student" and row["variant"] == "edgeface_xxs"
    assert row["parameters"] == loaded.parameters and row["flops"] > 0
