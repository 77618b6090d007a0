"""Shared fixtures. Real assets come from $FACEDIAG_TEST_ASSETS (CI: ../shared/assets)."""
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps a cache folder; keep it out of the working tree (every property test).
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="facediag-hypothesis-"))


def _assets_dir():
    root = os.environ.get("FACEDIAG_TEST_ASSETS")
    return Path(root).resolve() if root else None


@pytest.fixture(scope="session")
def assets():
    """Folder with edgeface_xxs_q.pt, edgeface_xxs_fp32_dequantized.pt, orl_faces/ ..."""
    root = _assets_dir()
    if root is None:
        pytest.skip("FACEDIAG_TEST_ASSETS is not set: real-asset tests need ../shared/assets")
    if not root.is_dir():
        pytest.skip(f"FACEDIAG_TEST_ASSETS={root} is not a folder")
    return root


@pytest.fixture(scope="session")
def float_weights(assets):
    return assets / "edgeface_xxs_fp32_dequantized.pt"


@pytest.fixture(scope="session")
def quant_weights(assets):
    return assets / "edgeface_xxs_q.pt"


@pytest.fixture(scope="session")
def dequantized_weights(quant_weights, tmp_path_factory):
    """The official int8 checkpoint's weights as a float xxs: a second, different float model.
    Its figures, unlike the int8 model's, do not depend on the CPU's int8 kernels (the int8 model's
    ORL rank-1 at 16 px is 0.739 on one x86 CPU and 0.711 on another, same torch)."""
    from facediag.models import build_edgeface, load_checkpoint, save_state_dict
    from facediag.models.checkpoint import dequantize_state_dict

    model = build_edgeface("edgeface_xxs", quantized=False)
    model.load_state_dict(dequantize_state_dict(load_checkpoint(quant_weights).model.state_dict()))
    out = tmp_path_factory.mktemp("dequantized") / "edgeface_xxs_dequantized.pt"
    save_state_dict(model, out)
    return out


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One embedding cache for the whole run: a model is embedded once on a set of images, however
    many tests run it there (as CI's $FACEDIAG_CACHE serves the runs that name no cache)."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def orl_root(assets):
    return assets / "orl_faces"


@pytest.fixture(scope="session")
def layouts(assets):
    import json
    return json.loads((assets / "edgeface_state_dict_layouts.json").read_text())


@pytest.fixture(scope="session")
def paired_only_weights(float_weights, orl_root, tmp_path_factory):
    """The original failure, planted: the float model fine-tuned for 30 CPU steps on
    1 − cos(f(DSR_i), f(HR_i)) over ORL (HR vs 16 px bicubic). It collapses."""
    from helpers import finetune

    out = tmp_path_factory.mktemp("paired-only") / "paired_only.pt"
    return finetune(float_weights, orl_root, out, "paired", steps=30, lr=1e-4)


@pytest.fixture(scope="session")
def card_faces(tmp_path_factory):
    """The demo's synthetic colour faces, 6 people × 5 images (no assets needed): the sample the
    model-card tests run a small non-EdgeFace embedder on."""
    from facediag.demo.faces import FaceSetSpec, generate_faces

    return generate_faces(tmp_path_factory.mktemp("faces") / "set", FaceSetSpec(1, 1, 6, 5, seed=3),
                          workers=1).root / "heldout"


@pytest.fixture
def patterns(tmp_path):
    """10 people × 7 colour-pattern images (helpers.write_pattern_faces): no assets needed."""
    from helpers import write_pattern_faces

    return write_pattern_faces(tmp_path / "faces")


@pytest.fixture
def decodes(monkeypatch):
    """Every file decode, by path (load_face and load_lowres both read through read_rgb)."""
    from collections import Counter

    import facediag.data.images as images

    counts = Counter()
    real = images.read_rgb

    def counting(path):
        counts[str(path)] += 1
        return real(path)
    monkeypatch.setattr(images, "read_rgb", counting)
    return counts
