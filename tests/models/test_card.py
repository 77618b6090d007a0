"""Model cards: parsing and strict validation, the input adapter's known answers, the cache key, and
a small non-EdgeFace network exported to ONNX (and traced to TorchScript) with a card beside it,
run through run-all with its card honoured and the EdgeFace-only checks skipped."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facediag.errors import FacediagError
from facediag.models.adapter import PresetInput, with_preset
from facediag.models.card import card_beside, read_card, resolve_card
from facediag.models.presets import EDGEFACE, ModelPreset
from facediag.models.loaded import embedding_fingerprint

from cli_helpers import invoke, one_line_exit_2
from helpers import CARD, IMAGENET_MEAN, IMAGENET_STD, card_pixels, tiny_net


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ parsing
def test_a_valid_card_gives_its_preset(tmp_path):
    preset = read_card(write(tmp_path / "m.onnx.toml", CARD))
    assert preset == ModelPreset(input_size=(3, 96, 96), mean=tuple(IMAGENET_MEAN), std=tuple(IMAGENET_STD),
                                 channel_order="BGR", embedding_dim=512, threshold=0.3, flip=False,
                                 name="tiny-bgr", family="tinynet")
    assert not preset.is_edgeface


def test_left_out_fields_take_edgeface_values_and_name_defaults_to_family(tmp_path):
    preset = read_card(write(tmp_path / "c.toml", 'family = "arcface"\nchannel_order = "BGR"\n'))
    assert preset.name == "arcface" and preset.channel_order == "BGR"
    assert preset.preprocessing[:3] == EDGEFACE.preprocessing[:3] and preset.threshold == EDGEFACE.threshold


def test_the_card_beside_the_model_is_found_and_card_wins(tmp_path):
    model = write(tmp_path / "m.onnx", "")
    assert card_beside(model) is None and resolve_card(model) == (EDGEFACE, None)
    beside = write(tmp_path / "m.onnx.toml", CARD)
    write(tmp_path / "m.toml", 'family = "stem-rule-is-not-ours"\n')  # only <model file>.toml counts
    assert card_beside(model) == beside and resolve_card(model)[0].name == "tiny-bgr"
    other = write(tmp_path / "other.toml", 'family = "x"\nname = "given"\n')
    assert resolve_card(model, other) == (read_card(other), other)


BAD = [
    ('family = "x"\ncolour = "RGB"\n', "unknown field 'colour'"),
    ('name = "x"\n', "family is missing"),
    ('family = ""\n', "family = ''"),
    ('family = "x"\ninput_size = [3, 112]\n', "input_size = [3, 112]"),
    ('family = "x"\ninput_size = [1, 112, 112]\n', "channels must be 3"),
    ('family = "x"\ninput_size = [3, 112.0, 112]\n', "input_size"),
    ('family = "x"\nmean = [0.5, 0.5]\n', "mean = [0.5, 0.5]"),
    ('family = "x"\nmean = [127.5, 127.5, 127.5]\n', "127.5 -> 0.5"),
    ('family = "x"\nstd = [0.5, 0, 0.5]\n', "std = [0.5, 0, 0.5]: a std must be above 0"),
    ('family = "x"\nstd = [0.5, -0.1, 0.5]\n', "a std must be above 0"),
    ('family = "x"\nchannel_order = "GBR"\n', "channel_order = 'GBR': must be RGB or BGR"),
    ('family = "x"\nchannel_order = 1\n', "channel_order = 1"),
    ('family = "x"\nembedding_dim = 0\n', "embedding_dim = 0"),
    ('family = "x"\nembedding_dim = "512"\n', "embedding_dim = '512'"),
    ('family = "x"\nthreshold = 1.5\n', "threshold = 1.5: a cosine"),
    ('family = "x"\nthreshold = true\n', "threshold = True"),
    ('family = "x"\nflip = "yes"\n', "flip = 'yes': must be true or false"),
    ('family = "x\n', "not valid TOML"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_each_invalid_field_is_refused_naming_file_and_field(tmp_path, text, needle):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(FacediagError) as info:
        read_card(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and needle in message, message


def test_a_bad_card_on_the_command_line_is_one_line_exit_2(tmp_path):
    bad = write(tmp_path / "bad.toml", 'family = "x"\nstd = [0.5, 0.0, 0.5]\n')
    for args in (("inspect", tmp_path / "missing.onnx", "--card", bad),
                 ("run-all", "-w", tmp_path / "missing.onnx", "--card", bad, "--data", tmp_path)):
        one_line_exit_2(invoke(*args), "bad.toml", "std")
    one_line_exit_2(invoke("inspect", tmp_path / "x.onnx", "--card", tmp_path / "none.toml"), "none.toml")


# ------------------------------------------------------------------------ the input adapter
class Recorder(torch.nn.Module):
    """Returns a 512-d zero embedding and keeps what it was fed."""

    def forward(self, x):
        self.seen = x.clone()
        return torch.zeros(len(x), 512)


def _edgeface_input(pixels01):
    return (pixels01 - 0.5) / 0.5


def test_a_bgr_card_feeds_channel_swapped_pixels():
    rec = Recorder()
    pixels = torch.rand(2, 3, 112, 112)
    PresetInput(rec, ModelPreset(channel_order="BGR", family="x"))(_edgeface_input(pixels))
    expected = (pixels.flip(1) - 0.5) / 0.5
    assert torch.allclose(rec.seen, expected, atol=1e-6)
    assert torch.allclose(rec.seen[:, 0], (pixels[:, 2] - 0.5) / 0.5, atol=1e-6)  # blue first


def test_mean_and_std_are_applied_exactly():
    rec = Recorder()
    pixels = torch.rand(2, 3, 112, 112)
    PresetInput(rec, ModelPreset(mean=tuple(IMAGENET_MEAN), std=tuple(IMAGENET_STD), family="x"))(
        _edgeface_input(pixels))
    for c in range(3):
        want = (pixels[:, c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(rec.seen[:, c], want, atol=1e-5)


def test_input_size_resizes_to_96():
    rec = Recorder()
    pixels = torch.rand(2, 3, 112, 112)
    PresetInput(rec, ModelPreset(input_size=(3, 96, 96), family="x"))(_edgeface_input(pixels))
    assert tuple(rec.seen.shape) == (2, 3, 96, 96)
    want = torch.nn.functional.interpolate(pixels, size=(96, 96), mode="bilinear", antialias=True)
    assert torch.allclose(rec.seen, (want - 0.5) / 0.5, atol=1e-5)
    flat = torch.full((1, 3, 112, 112), 0.25)  # a flat image stays flat whatever the resampling
    PresetInput(rec, ModelPreset(input_size=(3, 96, 96), family="x"))(_edgeface_input(flat))
    assert torch.allclose(rec.seen, torch.full_like(rec.seen, -0.5), atol=1e-6)


def test_edgeface_preset_is_not_wrapped_and_a_wrong_width_is_one_line():
    rec = Recorder()
    assert with_preset(rec, EDGEFACE) is rec
    wrapped = with_preset(rec, ModelPreset(embedding_dim=256, family="x", name="x256"))
    with pytest.raises(FacediagError, match=r"returns \[1, 512\] embeddings, but its card \(x256\) says "
                                            r"embedding_dim = 256"):
        wrapped(torch.zeros(1, 3, 112, 112))


def test_the_cache_key_changes_with_the_cards_preprocessing_only():
    from types import SimpleNamespace

    def key(preset):
        return embedding_fingerprint(SimpleNamespace(sha256="ab" * 32, preset=preset))

    assert key(EDGEFACE) == "ab" * 32
    assert key(ModelPreset(family="x", threshold=0.2, flip=False)) == "ab" * 32  # same pixels, same embeddings
    bgr, size = key(ModelPreset(channel_order="BGR")), key(ModelPreset(input_size=(3, 96, 96)))
    assert len({bgr, size, "ab" * 32}) == 3
    assert embedding_fingerprint(SimpleNamespace(sha256=None, preset=ModelPreset(channel_order="BGR"))) is None


# ------------------------------------------------------- the must-show: a non-EdgeFace network (tiny_net)
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import warnings

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny_net(), (torch.zeros(2, 3, 96, 96),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
    write(Path(str(path) + ".toml"), CARD)
    return path


def _session_embeddings(weights, data, cache_dir):
    from facediag.session import Session, SessionConfig

    session = Session(SessionConfig(weights=weights, data=data, vlr_size=None, device="cpu", progress=False,
                                    cache_dir=cache_dir))
    return session, session.embeddings("model", "gallery").raw


def _direct(module, session) -> np.ndarray:
    """The module itself on the card-preprocessed pixels of the gallery."""
    from facediag.data.images import load_face

    pixels = torch.stack([load_face(r.path) for r in session.protocol.gallery])
    with torch.no_grad():
        return module(card_pixels(pixels)).numpy()


@pytest.mark.slow
def test_a_carded_onnx_embedder_runs_through_run_all(tiny_onnx, card_faces, tmp_path):
    out = tmp_path / "report"
    res = invoke("run-all", "-w", tiny_onnx, "--data", card_faces, "--vlr-size", "hr", "--device", "cpu", "-q",
                 "--out", out, "--cache-dir", tmp_path / "cache")
    assert res.exit_code in (0, 1), res.output  # completes: a random tiny net may fail checks, never error
    report = json.loads((out / "report.json").read_text())
    results = {r["name"]: r for r in report["results"]}
    assert "ERROR" not in {r["status"] for r in results.values()}, res.output
    # The EdgeFace part of weights-integrity (keys, init constants) does not apply; separation does.
    integrity = results["weights-integrity"]
    assert integrity["metrics"]["init_fraction"] is None and integrity["metrics"]["dprime"] is not None
    assert any("not an EdgeFace model (card: tiny-bgr)" in f["message"] for f in integrity["findings"]), integrity
    ckpt = report["checkpoints"]["model"]
    assert ckpt["card"] == str(tiny_onnx) + ".toml" and ckpt["preset"]["channel_order"] == "BGR"
    assert results["gallery-enrollment"]["metrics"]["embedding_dim"] == 512
    # The card's threshold is the operating point where the suite sets none, and the run says so.
    assert report["suite"]["checks"]["identification"]["threshold"] == 0.3
    assert any("threshold 0.3 is the model card's (tiny-bgr)" in n for n in report["dataset"]["notes"])

    # The card is honoured: the run's embeddings are the module's own on the card's pixels.
    session, raw = _session_embeddings(tiny_onnx, card_faces, tmp_path / "cache")
    np.testing.assert_allclose(raw, _direct(tiny_net(), session), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_carded_torchscript_embedder_is_fed_the_same_way(card_faces, tmp_path):
    net = tiny_net()
    path = tmp_path / "tiny.pt"
    with pytest.warns(FutureWarning):  # torch's deprecation notice for jit.trace
        torch.jit.trace(net, torch.zeros(1, 3, 96, 96)).save(str(path))
    write(Path(str(path) + ".toml"), CARD)
    session, raw = _session_embeddings(path, card_faces, tmp_path / "cache")
    assert session.model().variant == "custom" and session.model().card == str(path) + ".toml"
    np.testing.assert_allclose(raw, _direct(net, session), atol=1e-5)
    assert session.available("state_dict").startswith("not an EdgeFace model (card: tiny-bgr)")


def test_the_same_graph_under_another_card_does_not_reuse_embeddings(tiny_onnx, card_faces, tmp_path):
    from facediag.models.checkpoint import load_checkpoint

    rgb = write(tmp_path / "rgb.toml", CARD.replace('"BGR"', '"RGB"'))
    a, b = load_checkpoint(tiny_onnx), load_checkpoint(tiny_onnx, card=rgb)
    assert a.sha256 == b.sha256 and embedding_fingerprint(a) != embedding_fingerprint(b)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    assert not torch.allclose(a.model(x), b.model(x))


def test_inspect_json_shows_the_card(tiny_onnx, tmp_path):
    res = invoke("inspect", tiny_onnx, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["variant"] == "custom" and info["card"] == str(tiny_onnx) + ".toml"
    assert info["preset"]["name"] == "tiny-bgr" and info["preset"]["input_size"] == [3, 96, 96]
    assert "note" not in info


class Tiny112(torch.nn.Module):
    """Not an EdgeFace either, for EdgeFace's 3×112×112 input."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 7, stride=4)  # 112 -> 27
        self.fc = torch.nn.Linear(16 * 3 * 3, 512)

    def forward(self, x):
        return self.fc(torch.nn.functional.avg_pool2d(torch.relu(self.conv(x)), 9).flatten(1))


def test_a_custom_graph_without_a_card_says_so(tiny_onnx, tmp_path):
    import shutil

    from facediag.export import _export_onnx

    bare = tmp_path / "bare.onnx"
    shutil.copy(tiny_onnx, bare)
    # Its 96 px input does not fit EdgeFace's preset: refused in one line that names the size.
    one_line_exit_2(invoke("inspect", bare), "bare.onnx", "[batch, 3, 112, 112]")
    ok = write(tmp_path / "size.toml", 'family = "edgeface"\ninput_size = [3, 96, 96]\n')
    info = json.loads(invoke("inspect", bare, "--card", ok, "--json").stdout)
    assert info["card"] == str(ok) and "note" not in info
    plain = tmp_path / "plain.onnx"
    _export_onnx(Tiny112().eval(), plain, torch.zeros(2, 3, 112, 112), int8=False)
    info = json.loads(invoke("inspect", plain, "--json").stdout)
    assert info["variant"] == "custom" and info["card"] is None and "preset" not in info
    assert "no model card was given" in info["note"] and "plain.onnx.toml" in info["note"]
    res = invoke("inspect", plain)
    assert "no model card was given" in " ".join(res.stdout.split())


def test_a_card_that_contradicts_the_graph_is_one_line(tiny_onnx, tmp_path):
    wide = write(tmp_path / "wide.toml", CARD.replace("embedding_dim = 512", "embedding_dim = 128"))
    one_line_exit_2(invoke("inspect", tiny_onnx, "--card", wide), "tiny.onnx", "is 512-d", "embedding_dim = 128")
    small = write(tmp_path / "small.toml", CARD.replace("[3, 96, 96]", "[3, 112, 112]"))
    one_line_exit_2(invoke("inspect", tiny_onnx, "--card", small), "its card (tiny-bgr) says [batch, 3, 112, 112]")


def test_bench_defaults_come_from_the_cards_and_disagreement_needs_the_flag():
    from facediag.bench.accuracy import resolve_threshold
    from facediag.bench.verification import resolve_flip

    card = ModelPreset(family="x", threshold=0.3, flip=False)
    assert resolve_threshold(None, [EDGEFACE]) == 0.35 and resolve_threshold(None, [card, card]) == 0.3
    assert resolve_flip(None, [card]) is False and resolve_flip(None, [EDGEFACE]) is True
    assert resolve_threshold(0.5, [card, EDGEFACE]) == 0.5 and resolve_flip(False, [card, EDGEFACE]) is False
    with pytest.raises(FacediagError, match="disagree on the threshold: give --threshold"):
        resolve_threshold(None, [card, EDGEFACE])
    with pytest.raises(FacediagError, match="disagree on flip"):
        resolve_flip(None, [card, EDGEFACE])


def test_bench_takes_one_card_per_checkpoint(tmp_path):
    card = write(tmp_path / "c.toml", CARD)
    one_line_exit_2(invoke("bench", "accuracy", "-w", tmp_path / "a.onnx", "-w", tmp_path / "b.onnx",
                           "--card", card, "--data", tmp_path), "1 --card for 2 --weights")


@pytest.mark.parametrize("command", ["run-all", "bench"])
def test_a_custom_model_that_cannot_take_its_input_is_one_line_before_any_work(card_faces, tmp_path, command):
    # --arch custom, no card: EdgeFace's 112 px input, which tiny_net (96 px) cannot take.
    from helpers import traced_tiny_net

    net = traced_tiny_net(tmp_path / "tiny.pt")
    if command == "run-all":
        args = ["run-all", "-w", net, "--out", tmp_path / "out"]
    else:
        args = ["bench", "accuracy", "-w", net, "--resolutions", "hr"]
    res = invoke(*args, "--arch", "custom", "--data", card_faces, "--no-cache", "-q")
    one_line_exit_2(res, "tiny.pt", "the model fails on its input", "[3, 112, 112]", "--card")
    assert not (tmp_path / "out").exists()
