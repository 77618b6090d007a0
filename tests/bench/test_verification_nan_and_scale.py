"""bench verification: a model that returns NaN is named as the fault (not the images); and a set of
many pairs over few distinct images costs what its distinct images cost (embedded once each, memory
bounded by the distinct images, not the pairs)."""
import io
import pickle
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from cli_helpers import invoke, one_line_exit_2
from helpers import CARD, face_like, traced_tiny_net


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
def tiny_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return traced_tiny_net(d / "tiny.pt")


def test_a_model_that_returns_nan_is_named_not_the_images(tiny_model, tmp_path):
    images = _faces(tmp_path / "faces", 6)
    pairs = _csv(images / "pairs.csv", 6, 40)
    card = tmp_path / "nan-card.toml"
    card.write_text(CARD.replace("std = [", "std = [1e-40, 1e-40, 1e-40] #["))
    common = ("bench", "verification", "-w", tiny_model, "--pairs", pairs, "--device", "cpu", "--no-cache", "--quiet",
              "--json")
    line = one_line_exit_2(invoke(*common, "--card", card), "the model returned NaN or Inf for 6 of 6 readable images",
                           "not of the images")
    assert "readable images (first: " in line and "pairs with readable images" not in line
    good = tmp_path / "tiny-card.toml"
    good.write_text(CARD)
    res = invoke(*common, "--card", good)
    assert res.exit_code == 0, res.output


N_PAIRS = 100_000
MIB = 2**20


def _lfw_root(root):
    for person, number, seed in (("A", 1, 1), ("A", 2, 2), ("B", 1, 3)):
        (root / person).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face_like(seed)).save(root / person / f"{person}_{number:04d}.png")
    return root


def _bench(tiny_model, card, pairs, *more):
    from facediag.bench.verification import bench_verification

    return bench_verification([tiny_model], [pairs], cards=[card], device="cpu", progress=False, **dict(more))


def _traced(run):
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    path = tmp_path_factory.mktemp("card") / "tiny-card.toml"
    path.write_text(CARD)
    return path


@pytest.mark.slow  # 100,000 pairs under tracemalloc
@pytest.mark.parametrize("use_cache", [False, True], ids=["no-cache", "cache"])
def test_a_pairs_txt_of_100000_pairs_over_3_images_embeds_3_in_bounded_memory(tiny_model, card, tmp_path, use_cache):
    """Memory is bounded by the distinct images: [pairs x 512] float64 gathers would be 400 MB each here."""
    root = _lfw_root(tmp_path / "lfw")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join("A 1 2\n" if i % 2 == 0 else "A 1 B 1\n" for i in range(N_PAIRS)))
    report, peak = _traced(lambda: _bench(tiny_model, card, pairs, ("images_root", root), ("use_cache", use_cache),
                                          ("cache_dir", tmp_path / "cache")))
    row = report.rows[0]
    assert report.settings["images_embedded"] == {"tiny": 3}
    assert row["n_pairs"] == N_PAIRS and row["n_genuine"] == N_PAIRS // 2
    assert peak < 150 * MIB, f"peak traced memory {peak / MIB:.0f} MiB"


@pytest.mark.slow
def test_a_bin_of_100000_pairs_of_one_image_embeds_it_once(tiny_model, card, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(face_like(7)).save(buf, "PNG")
    one = buf.getvalue()
    path = tmp_path / "one.bin"
    path.write_bytes(pickle.dumps(([one] * (2 * N_PAIRS), [bool(i % 2) for i in range(N_PAIRS)]), protocol=4))
    report, peak = _traced(lambda: _bench(tiny_model, card, path, ("use_cache", False)))
    row = report.rows[0]
    assert report.settings["images_embedded"] == {"tiny": 1}
    assert row["n_pairs"] == N_PAIRS and row["accuracy"] == pytest.approx(0.5)
    assert peak < 250 * MIB, f"peak traced memory {peak / MIB:.0f} MiB"


def test_low_resolution_rows_degrade_each_distinct_image_once(tiny_model, card, tmp_path):
    root = _lfw_root(tmp_path / "lfw")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join("A 1 2\n" if i % 2 == 0 else "A 1 B 1\n" for i in range(20_000)))
    report, peak = _traced(lambda: _bench(tiny_model, card, pairs, ("images_root", root), ("use_cache", False),
                                          ("resolutions", "hr,16")))
    # 3 HR images, then the distinct second images (A 2, B 1) at 16 px: 5 embedded, not 20,000
    assert report.settings["images_embedded"] == {"tiny": 5}
    assert [r["n_pairs"] for r in report.rows] == [20_000, 20_000]
    assert peak < 150 * MIB, f"peak traced memory {peak / MIB:.0f} MiB"
    assert np.isfinite(report.rows[1]["accuracy"])
