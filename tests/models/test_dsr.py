"""DSR stage: bicubic default, TorchScript files, factory + weights, output validation."""
import hashlib
import textwrap

import pytest
import torch
import torch.nn.functional as F

from facediag.errors import CheckpointError
from facediag.models import BicubicDSR, load_dsr

# Building TorchScript test files uses APIs torch now marks deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


class Scale(torch.nn.Module):
    """Upsample to 112, then a * x + b: a=2, b=-1 gives the [-1, 1] convention."""

    def __init__(self, a: float = 1.0, b: float = 0.0, size: int = 112):
        super().__init__()
        self.a, self.b, self.size = a, b, size

    def forward(self, x):
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear") * self.a + self.b


def script(tmp_path, module, name="dsr.pt"):
    path = tmp_path / name
    torch.jit.save(torch.jit.script(module), path)
    return path


@pytest.fixture
def lr():
    torch.manual_seed(0)
    return torch.rand(2, 3, 16, 16)


def test_bicubic_is_the_default(lr):
    dsr = load_dsr(None)
    assert isinstance(dsr, BicubicDSR) and dsr.fingerprint == "bicubic-112"
    out = dsr(lr)
    assert out.shape == (2, 3, 112, 112) and 0 <= out.min() and out.max() <= 1
    expected = F.interpolate(lr, size=(112, 112), mode="bicubic", align_corners=False)
    assert torch.equal(out, expected.clamp(0, 1))


def test_bicubic_overshoot_is_clamped_not_refused():
    edge = torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1.0
    raw = F.interpolate(edge, size=(112, 112), mode="bicubic", align_corners=False)
    assert raw.min() < 0 and raw.max() > 1
    out = BicubicDSR()(edge)
    assert out.min() == 0 and out.max() == 1


def test_input_must_be_rgb_in_unit_range(lr):
    with pytest.raises(CheckpointError, match=r"\[N, 3, h, w\]"):
        BicubicDSR()(lr[:, :1])
    with pytest.raises(CheckpointError, match=r"in \[0, 1\], got values in \[0.02, 254.96\]"):
        BicubicDSR()(lr * 255)


def test_torchscript_dsr_fingerprint_is_file_hash(tmp_path, lr):
    path = script(tmp_path, Scale())
    dsr = load_dsr(str(path))
    assert dsr.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError, match="carries its own weights"):
        load_dsr(str(path), str(path))
    assert torch.allclose(dsr(lr), F.interpolate(lr, size=(112, 112), mode="bilinear"))


@pytest.mark.parametrize("module,message", [
    (Scale(size=64), r"returned \[2, 3, 64, 64\], expected \[2, 3, 112, 112\]"),
    (Scale(a=2.0, b=-1.0), r"returned values in \[-1.00, 1.00\], expected RGB in \[0, 1\]"),
], ids=["shape", "range"])
def test_wrong_dsr_output_is_refused(tmp_path, lr, module, message):
    dsr = load_dsr(str(script(tmp_path, module)))
    with pytest.raises(CheckpointError, match=message):
        dsr(lr)


def test_torchscript_dsr_zip_bomb_is_refused_before_loading(tmp_path):
    import zipfile

    path = script(tmp_path, Scale())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dsr/extra/padding", bytes(64 * 2**20))
    with pytest.raises(CheckpointError, match=r"inflate to 64\.\d MiB .*\(zip bomb\?\)"):
        load_dsr(str(path))


def test_state_dict_file_is_not_torchscript(tmp_path):
    path = tmp_path / "dsr.pth"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not TorchScript"):
        load_dsr(str(path))
    with pytest.raises(CheckpointError, match="no such file"):
        load_dsr(str(tmp_path / "missing.pt"))


def test_factory_with_weights_loads_strictly(tmp_path, monkeypatch, lr):
    (tmp_path / "tiny_dsr_pkg.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mix = torch.nn.Conv2d(3, 3, 1)

            def forward(self, x):
                return torch.sigmoid(self.mix(F.interpolate(x, size=(112, 112))))

        def build():
            return Tiny()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import tiny_dsr_pkg

    torch.manual_seed(3)
    net = tiny_dsr_pkg.build()
    torch.save({"state_dict": net.state_dict(), "epoch": 4}, tmp_path / "a.pth")
    dsr = load_dsr("tiny_dsr_pkg:build", str(tmp_path / "a.pth"), trust_code=True)  # the user's own code
    with torch.no_grad():
        assert torch.allclose(dsr(lr), net(lr))
    other = tiny_dsr_pkg.build()
    torch.save(other.state_dict(), tmp_path / "b.pth")
    assert load_dsr("tiny_dsr_pkg:build", str(tmp_path / "b.pth"), trust_code=True).fingerprint != dsr.fingerprint

    torch.save({"mix.weight": net.mix.weight}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="do not fit 'tiny_dsr_pkg:build'.*mix.bias"):
        load_dsr("tiny_dsr_pkg:build", str(tmp_path / "partial.pth"), trust_code=True)
    with pytest.raises(CheckpointError, match="cannot import factory"):
        load_dsr("tiny_dsr_pkg:nope", trust_code=True)


# --- ONNX DSRs: graph operators only, run by onnxruntime; no trust needed ---------------------------

def _onnx(tmp_path, module, name="dsr.onnx", dynamic_hw=True):
    import warnings

    path = tmp_path / name
    axes = {"lr": {0: "batch", 2: "h", 3: "w"} if dynamic_hw else {0: "batch"}, "sr": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(module, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                          input_names=["lr"], output_names=["sr"], dynamic_axes=axes)
    return path


class _Bicubic(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=(112, 112), mode="bicubic", align_corners=False)


def test_an_onnx_dsr_runs_without_trust_and_matches_its_torch_source(tmp_path, lr):
    pytest.importorskip("onnxruntime", reason="ONNX DSRs need the onnx extra")
    path = _onnx(tmp_path, _Bicubic())
    dsr = load_dsr(str(path), trust_code=False)
    assert dsr.name == "dsr.onnx" and dsr.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    out = dsr(lr)
    assert out.shape == (lr.shape[0], 3, 112, 112)
    assert torch.allclose(out, BicubicDSR()(lr), atol=1e-4)


@pytest.mark.parametrize("module, message", [
    (torch.nn.Flatten(), "returns"),                              # [N, 768]: not an image batch
    (torch.nn.Upsample(size=(64, 64), mode="bilinear"), "64"),     # the wrong size
])
def test_an_onnx_dsr_of_the_wrong_shape_is_one_line(tmp_path, lr, module, message):
    pytest.importorskip("onnxruntime", reason="ONNX DSRs need the onnx extra")
    dsr = load_dsr(str(_onnx(tmp_path, module)))
    with pytest.raises(CheckpointError, match=message) as info:
        dsr(lr)
    assert "\n" not in str(info.value)


def test_an_onnx_embedder_is_not_a_dsr(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX DSRs need the onnx extra")
    path = tmp_path / "two_inputs.onnx"

    class TwoInputs(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    import warnings
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(TwoInputs(), (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)), str(path),
                          dynamo=False, opset_version=17)
    with pytest.raises(CheckpointError, match="takes 2 inputs"):
        load_dsr(str(path))
