"""bench verification: a model that returns NaN is named as the fault (not the images); and a set of
many pairs over few distinct images costs what its distinct images cost (embedded once each, memory
bounded by the distinct images, not the pairs)."""
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import invoke, one_line_exit_2  # noqa: E402
from helpers import CARD, face_like, traced_tiny_net  # noqa: E402


def _faces(root, n):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(face_like(500 + i)).save(root / f"{i}.png")
    return root


def _csv(path, n_images, n_pairs):
    lines = ["path1,path2,same"] + [f"{i % n_images}.png,{(i + 1 + i // n_images) % n_images}.png,{i % 2}"
                                     for i in range(n_pairs)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return traced_tiny_net(d / "tiny.pt")


def test_a_model_that_returns_nan_is_named_not_the_images(tiny, tmp_path):
    images = _faces(tmp_path / "faces", 6)
    pairs = _csv(images / "pairs.csv", 6, 40)
    card = tmp_path / "nan-card.toml"
    card.write_text(CARD.replace("std = [", "std = [1e-40, 1e-40, 1e-40] #["))
    common = ("bench", "verification", "-w", tiny, "--pairs", pairs, "--device", "cpu", "--no-cache", "--quiet",
              "--json")
    line = one_line_exit_2(invoke(*common, "--card", card), "the model returned NaN or Inf for 6 of 6 readable images",
                           "not of the images")
    assert "readable images (first: " in line and "pairs with readable images" not in line
    good = tmp_path / "tiny-card.toml"
    good.write_text(CARD)
    res = invoke(*common, "--card", good)
    assert res.exit_code == 0, res.output
