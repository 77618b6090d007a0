"""One --data root holding split folders (the seed project's dataset/train + dataset/val):
the first split enrols, the second probes, as if --gallery-root/--probe-root were given."""
import shutil

import pytest
from helpers import write_folders_dataset, write_paired_dataset
from PIL import Image

from facediag.data.index import find_split_roots, index_dataset
from facediag.errors import DataError
from facediag.session import Session, SessionConfig

SUBJECTS = (1, 2, 3)


def orl_paired_split(orl, root, split, images):
    """root/<split>/hr_images/sN_I.png + vlr_images_16x16/ (ORL faces, paired by filename)."""
    hr, lr = root / split / "hr_images", root / split / "vlr_images_16x16"
    hr.mkdir(parents=True)
    lr.mkdir()
    for s in SUBJECTS:
        for i in images:
            with Image.open(orl / f"s{s}" / f"{i}.pgm") as img:
                img.save(hr / f"s{s}_{i}.png")
                img.resize((16, 16), Image.BOX).save(lr / f"s{s}_{i}.png")


def orl_folders_split(orl, root, split, images):
    for s in SUBJECTS:
        (root / split / f"s{s}").mkdir(parents=True)
        for i in images:
            shutil.copy(orl / f"s{s}" / f"{i}.pgm", root / split / f"s{s}" / f"{i}.pgm")


def session(root, **kw):
    return Session(SessionConfig(data=root, progress=False, device="cpu", **kw))


@pytest.mark.parametrize("layout", ["paired", "folders"])
def test_seed_layout_train_val_under_one_root(orl_root, tmp_path, layout):
    root = tmp_path / "dataset"
    make = orl_paired_split if layout == "paired" else orl_folders_split
    make(orl_root, root, "train", range(1, 6))
    make(orl_root, root, "val", range(6, 11))
    s = session(root)
    assert s.index.root == root / "train" and s.probe_index.root == root / "val"
    assert s.index.layout == s.probe_index.layout == layout
    proto = s.protocol
    assert proto.gallery_subjects == sorted(set(proto.probe_subjects)) == ["s1", "s2", "s3"]  # same people
    assert all(root / "train" in r.path.parents for r in proto.gallery)
    assert all(root / "val" in p.source.path.parents for p in proto.probes)
    assert len(proto.gallery) == 15 and len(proto.probes) == 15
    if layout == "paired":
        assert all(p.vlr is not None and p.vlr.path.name == p.hr.path.name for p in proto.probes)
    assert proto.notes[0] == "split folders: gallery from train/, probes from val/"
    assert "closed-set identification of people it has seen" in proto.notes[1]
    info = s.dataset_info()
    assert "split folders: gallery from train/, probes from val/" in info["protocol"]
    assert info["root"] == str(root / "train") and info["probe_root"] == str(root / "val")
    with pytest.raises(DataError, match="holds split folders train/ and val/"):
        index_dataset(root)  # a command that needs one dataset says why, not "no face images"


@pytest.mark.parametrize("names", [("train", "test"), ("gallery", "probe"), ("gallery", "probes"),
                                   ("Train", "Val")])
def test_split_pairs_detected(tmp_path, names):
    root = tmp_path / "ds"
    write_paired_dataset(root / names[0], subjects=2, images=2)
    write_folders_dataset(root / names[1], subjects=2, images=2)  # any layout inside each
    split = find_split_roots(root)
    assert (split.gallery.name, split.probe.name) == names
    proto = session(root).protocol
    assert proto.notes[0] == f"split folders: gallery from {names[0]}/, probes from {names[1]}/"
    assert any("closed-set" in n for n in proto.notes) == (names[0].lower() == "train")


def test_train_val_test_uses_val_and_says_test_is_unused(tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "val", "test"):
        write_paired_dataset(root / split, subjects=2, images=2)
    assert find_split_roots(root).probe == root / "val"
    assert session(root).protocol.notes[0] == "split folders: gallery from train/, probes from val/ (test/ not used)"


def test_explicit_two_roots_that_are_splits_get_the_same_notes(tmp_path):
    root = tmp_path / "ds"
    write_paired_dataset(root / "train", subjects=2, images=2)
    write_paired_dataset(root / "val", subjects=2, images=2)
    s = Session(SessionConfig(gallery_root=root / "train", probe_root=root / "val", progress=False))
    assert s.protocol.notes[0] == "split folders: gallery from train/, probes from val/"


def test_subjects_called_train_and_val_are_not_splits(tmp_path):
    root = write_folders_dataset(tmp_path / "faces", subjects=2, images=4)
    (root / "p1").rename(root / "train")
    (root / "p2").rename(root / "val")
    assert find_split_roots(root) is None
    s = session(root, gallery_per_subject=2)
    assert s.probe_index is None and s.index.subjects == ["train", "val"] and s.protocol.notes == []


def test_no_split_for_ordinary_roots(tmp_path):
    paired = write_paired_dataset(tmp_path / "p")
    (paired / "train").mkdir()  # a stray folder next to hr_images/
    assert find_split_roots(paired) is None
    assert find_split_roots(tmp_path / "missing") is None
    only_train = tmp_path / "o"
    write_paired_dataset(only_train / "train")
    (only_train / "val").mkdir()  # empty: not a dataset
    assert find_split_roots(only_train) is None
