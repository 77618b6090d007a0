"""Dataset discovery, decoding rules and the gallery/probe protocol."""
import numpy as np
import pytest
import torch
from PIL import Image

from facediag.data.images import DecodeError, downsample, fit_canvas, load_face, normalize
from facediag.data.index import index_dataset, natural_key
from facediag.data.protocol import build_protocol
from facediag.errors import DataError
from helpers import write_folders_dataset, write_paired_dataset


def test_folders_layout_detected_and_split_first_k(tmp_path):
    root = write_folders_dataset(tmp_path / "faces", subjects=3, images=12)
    index = index_dataset(root)
    assert index.layout == "folders"
    assert index.subjects == ["p1", "p2", "p3"]
    proto = build_protocol(index, gallery_per_subject=2, vlr_size=16)
    # natural order: 1.png, 2.png enrol (not 1.png, 10.png)
    assert [r.path.name for r in proto.gallery if r.subject == "p1"] == ["1.png", "2.png"]
    assert len(proto.probes) == 3 * 10
    assert all(p.hr is not None and p.vlr is None for p in proto.probes)


def test_paired_layout_pairs_by_filename_and_regex(tmp_path):
    root = write_paired_dataset(tmp_path / "split", subjects=3, images=4)
    index = index_dataset(root)
    assert index.layout == "paired"
    assert index.subjects == ["001", "002", "003"]
    assert {r.vlr_size for r in index.vlr} == {16}
    proto = build_protocol(index, gallery_per_subject=1, vlr_size=16)
    assert len(proto.probes) == 9
    for p in proto.probes:
        assert p.vlr is not None and p.vlr.path.name == p.hr.path.name  # paired by identical filename
    # a VLR file of an enrolled capture never becomes a probe of the same shot
    enrolled = {r.path.name for r in proto.gallery}
    assert not any(p.vlr.path.name in enrolled for p in proto.probes)


def test_two_roots_protocol(tmp_path):
    gallery = write_paired_dataset(tmp_path / "train", subjects=2, images=2)
    probes = write_paired_dataset(tmp_path / "val", subjects=2, images=3)
    proto = build_protocol(index_dataset(gallery), probe_index=index_dataset(probes), vlr_size=16)
    assert len(proto.gallery) == 4 and len(proto.probes) == 6


def test_manifest_layout_and_its_problems(tmp_path):
    write_folders_dataset(tmp_path / "faces", subjects=2, images=2)
    csv = tmp_path / "manifest.csv"
    csv.write_text("path,subject,role\nfaces/p1/1.png,alice,hr\nfaces/p1/2.png,alice,hr\n"
                   "faces/p2/1.png,bob,hr\nfaces/missing.png,bob,hr\nfaces/p2/2.png,bob,xx\n")
    index = index_dataset(csv)
    assert index.layout == "manifest"
    assert len(index.records) == 3
    assert len(index.problems) == 2  # reported, not silently dropped


def test_manifest_without_subject_column_is_refused(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("path\nx.png\n")
    with pytest.raises(DataError, match="subject"):
        index_dataset(csv)


def test_empty_or_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        index_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no face images"):
        index_dataset(tmp_path / "empty")


def test_bad_regex_is_a_clear_error(tmp_path):
    root = write_paired_dataset(tmp_path / "s")
    with pytest.raises(DataError, match="not a valid regex"):
        index_dataset(root, subject_regex="([")


def test_no_probes_is_a_clear_error(tmp_path):
    root = write_folders_dataset(tmp_path / "f", subjects=2, images=2)
    with pytest.raises(DataError, match="no probes"):
        build_protocol(index_dataset(root), gallery_per_subject=3)


def test_grey_pgm_padded_not_stretched(tmp_path):
    grey = np.tile(np.arange(92, dtype=np.uint8), (112, 1)) + 100
    Image.fromarray(grey, mode="L").save(tmp_path / "a.pgm")
    x = load_face(tmp_path / "a.pgm")
    assert x.shape == (3, 112, 112)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # greyscale -> three channels
    assert x[:, :, :10].max() == 0 and x[:, :, -10:].max() == 0  # 10 px black pad each side
    assert torch.allclose(x[0, 0, 10:102], torch.from_numpy(grey[0]).float() / 255)  # content untouched


def test_large_image_scaled_longer_side_then_padded():
    x = fit_canvas(torch.rand(3, 224, 112))
    assert x.shape == (3, 112, 112)
    assert x[:, :, :28].max() == 0 and x[:, :, -28:].max() == 0


def test_unreadable_files_raise_decode_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    png = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(png)
    (tmp_path / "trunc.png").write_bytes(png.read_bytes()[:30])
    for name in ("empty.png", "text.png", "trunc.png"):
        with pytest.raises(DecodeError):
            load_face(tmp_path / name)


def test_normalisation_is_edgeface_minus_one_to_one():
    x = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(normalize(x), torch.tensor([-1.0, 0.0, 1.0]))


def test_downsample_is_area_average():
    x = torch.zeros(3, 112, 112)
    x[:, :56] = 1.0
    y = downsample(x, 16)
    assert y.shape == (3, 16, 16) and torch.allclose(y[:, :8], torch.ones(3, 8, 16))


def test_natural_key_orders_numbers():
    assert sorted(["s10", "s2", "s1"], key=natural_key) == ["s1", "s2", "s10"]
