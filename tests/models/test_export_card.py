"""facediag export of a model with a model card: the export is the model itself (it takes the
model's own input, here 96 px BGR with ImageNet mean/std, not the engine's EdgeFace input), the
card travels beside it as <out>.toml, and run-all on the export runs under that card."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import invoke, one_line_exit_2
from helpers import CARD, card_pixels, tiny_net, traced_tiny_net


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    """(tiny_net traced to TorchScript, its card given apart: --card)."""
    d = tmp_path_factory.mktemp("carded")
    card = d / "tiny-card.toml"
    card.write_text(CARD)
    return traced_tiny_net(d / "tiny.pt"), card


def _pixels(faces: Path, n: int = 8) -> torch.Tensor:
    from facediag.data.images import load_face

    return torch.stack([load_face(p) for p in sorted(faces.rglob("*.png"))[:n]])


def _export(carded, faces, out: Path, *args):
    model, card = carded
    res = invoke("export", model, "--card", card, "--out", out, "--data", faces, "--json", "-q", *args)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["kept"] and result["parity"]["cosine_min"] > 0.99999, result
    # the card sits beside the export, byte for byte the one given, and the result names it
    assert result["card"] == str(out) + ".toml" and Path(result["card"]).read_bytes() == card.read_bytes()
    return result


def test_an_onnx_export_takes_the_models_own_input_and_its_card_travels(carded, card_faces, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    _export(carded, card_faces, out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 96, 96]
    own = card_pixels(_pixels(card_faces))  # the model's own input, made by hand
    got = session.run(None, {session.get_inputs()[0].name: own.numpy()})[0]
    with torch.no_grad():
        want = tiny_net()(own).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_torchscript_export_takes_the_models_own_input(carded, card_faces, tmp_path):
    out = tmp_path / "tiny.ts"
    _export(carded, card_faces, out, "--format", "torchscript")
    own = card_pixels(_pixels(card_faces))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's deprecation notice for jit.load
        got, want = torch.jit.load(str(out))(own), tiny_net()(own)  # the file this test just wrote
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    again = tmp_path / "again.ts"  # the terminal names the card written
    res = invoke("export", carded[0], "--card", carded[1], "--out", again, "--format", "torchscript", "--data",
                 card_faces, "-q")
    assert f"model card written beside it: {again}.toml" in " ".join(res.stdout.split()), res.output


@pytest.mark.slow
def test_run_all_on_the_export_runs_under_its_card(carded, card_faces, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    _export(carded, card_faces, out)
    report_dir = tmp_path / "report"
    res = invoke("run-all", "-w", out, "--data", card_faces, "--vlr-size", "hr", "--device", "cpu", "-q",
                 "--out", report_dir, "--cache-dir", tmp_path / "cache")
    assert res.exit_code in (0, 1), res.output  # a random tiny net may fail checks, never error
    report = json.loads((report_dir / "report.json").read_text())
    assert report["checkpoints"]["model"]["card"] == str(out) + ".toml"
    assert report["suite"]["checks"]["identification"]["threshold"] == 0.3
    assert any("threshold 0.3 is the model card's (tiny-bgr)" in n for n in report["dataset"]["notes"])
    integrity = next(r for r in report["results"] if r["name"] == "weights-integrity")
    assert integrity["metrics"]["init_fraction"] is None and integrity["metrics"]["dprime"] is not None
    assert any("not an EdgeFace model (card: tiny-bgr)" in f["message"] for f in integrity["findings"])


def test_an_export_whose_card_would_overwrite_the_given_card_is_exit_2(carded, tmp_path):
    model, _ = carded
    card = tmp_path / "tiny.onnx.toml"
    card.write_text(CARD)
    one_line_exit_2(invoke("export", model, "--card", card, "--out", tmp_path / "tiny.onnx", "-q"),
                    "--out's card", "would overwrite the input card", "(--card)")
    assert card.read_text() == CARD and not (tmp_path / "tiny.onnx").exists()


def test_an_export_without_a_card_beside_an_old_card_is_exit_2(float_weights, tmp_path):
    # The old card would be read as the new export's (its input, threshold, family): refused, both kept.
    out = tmp_path / "xxs.onnx"
    old_card = tmp_path / "xxs.onnx.toml"
    old_card.write_text(CARD)
    one_line_exit_2(invoke("export", float_weights, "--out", out, "-q"), "xxs.onnx.toml",
                    "would be read as the export's", "choose another --out")
    assert old_card.read_text() == CARD and not out.exists()
