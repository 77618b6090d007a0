"""TorchScript archives: an EdgeFace layout is read into our EdgeFace; any other scripted
model needs an EdgeFace's size and a 512-wide last layer, or the caller's arch="custom".
Loading (and so `facediag inspect`) never runs a model, nor the archive's __setstate__."""
import json
import zipfile

import pytest
import torch
from torch import nn

from facediag.inspect import inspect_dict
from facediag.models import build_edgeface, load_checkpoint
from facediag.models.checkpoint import variant_parameter_counts
from cli_helpers import invoke, one_line_exit_2
from helpers import refused

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

XXS_PARAMETERS = 1_244_744


class Sized(nn.Module):
    """Not an EdgeFace, but with ``total`` parameters and an ``out``-wide last layer."""

    def __init__(self, total=XXS_PARAMETERS, out=512):
        super().__init__()
        self.pad = nn.Parameter(torch.zeros(total - 3 * out))
        self.fc = nn.Linear(2, out)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3))[:, :2])


def script(module, path):
    torch.jit.save(torch.jit.script(module), path)
    return path


def forbid_running_modules(monkeypatch):
    """From here on, any nn.Module called (EdgeFace, a scripted model, a wrapper) fails."""
    def called(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was run")

    monkeypatch.setattr(nn.Module, "__call__", called)


@pytest.fixture
def nothing_runs(monkeypatch):
    forbid_running_modules(monkeypatch)


def test_a_scripted_linear_is_not_an_embedder(tmp_path, nothing_runs):
    path = script(nn.Linear(3, 512), tmp_path / "linear.pt")
    message = refused(path)
    assert "2,048 parameters" in message and "pass --arch custom" in message


def test_custom_arch_accepts_it_unrun_and_labels_it(tmp_path, nothing_runs):
    path = script(nn.Linear(3, 512), tmp_path / "linear.pt")
    ckpt = load_checkpoint(path, arch="custom")
    assert (ckpt.variant, ckpt.format, ckpt.parameters) == ("custom", "torchscript", 2048)
    info = inspect_dict(ckpt)
    assert info["variant"] == "custom" and info["meta"]["arch"].startswith("custom")


def test_custom_arch_is_for_torchscript_only(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(2)}, path)
    assert "arch 'custom'" in refused(path, arch="custom")


def test_scripted_model_sized_like_an_edgeface_is_accepted_unrun(tmp_path, nothing_runs):
    assert variant_parameter_counts()["edgeface_xxs"] == XXS_PARAMETERS
    ckpt = load_checkpoint(script(Sized(), tmp_path / "sized.pt"))
    assert (ckpt.variant, ckpt.parameters) == ("torchscript", XXS_PARAMETERS)
    assert ckpt.meta == {"parameter_count_of": "edgeface_xxs"}
    assert inspect_dict(ckpt)["variant"] == "torchscript"


def test_right_size_but_wrong_width_is_refused(tmp_path, nothing_runs):
    message = refused(script(Sized(out=100), tmp_path / "narrow.pt"))
    assert "sized like edgeface_xxs" in message and "last layer is 100 wide, not 512" in message


def test_sized_model_embeds_when_run(tmp_path):
    ckpt = load_checkpoint(script(Sized(), tmp_path / "sized.pt"))
    with torch.no_grad():
        assert ckpt.model(torch.zeros(3, 3, 112, 112)).shape == (3, 512)


def test_inspect_runs_no_model_whatever_the_format(tmp_path, monkeypatch):
    torch.manual_seed(0)
    xxs = build_edgeface("edgeface_xxs")
    torch.save(xxs.state_dict(), tmp_path / "sd.pth")
    torch.save(xxs, tmp_path / "module.pth")
    torch.jit.save(torch.jit.trace(xxs, torch.zeros(1, 3, 112, 112), check_trace=False),
                   tmp_path / "traced.pt")
    script(Sized(), tmp_path / "sized.pt")
    forbid_running_modules(monkeypatch)
    for name in ("sd.pth", "module.pth", "traced.pt", "sized.pt"):
        info = inspect_dict(load_checkpoint(tmp_path / name))
        assert info["matched_fraction"] == 1.0


class WithSetstate(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(512, 2))

    def forward(self, x):
        return x @ self.w.t()

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        print("SETSTATE RAN")
        self.w = state[0]
        self.training = state[1]


def test_archive_whose_code_runs_on_load_is_refused_unloaded(tmp_path, capfd):
    path = script(WithSetstate(), tmp_path / "setstate.pt")
    for arch in (None, "custom"):
        assert "defines __setstate__, which loading would run" in refused(path, arch=arch)
    assert "SETSTATE RAN" not in capfd.readouterr().out


def test_torchscript_zip_bomb_is_refused(tmp_path):
    path = script(nn.Linear(3, 512), tmp_path / "bomb.pt")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("linear/extra/padding", bytes(64 * 2**20))
    assert "(zip bomb?)" in refused(path, arch="custom")


def test_cli_inspect_refuses_or_accepts_on_custom(tmp_path):
    path = script(nn.Linear(3, 512), tmp_path / "linear.pt")
    one_line_exit_2(invoke("inspect", path), "--arch custom")
    res = invoke("inspect", path, "--arch", "custom", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["variant"] == "custom"
