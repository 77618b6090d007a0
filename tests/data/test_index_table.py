"""The columnar index: Records made on access equal the ones packed in, and a manifest listed in
any order gives the protocol a folder listing gives (the natural sort runs where it must)."""
import numpy as np
from helpers import write_folders_dataset

from facediag.data.index import DatasetIndex, index_dataset
from facediag.data.protocol import build_protocol
from facediag.data.table import Record, RecordTable


def test_records_round_trip_through_the_table_and_take(tmp_path):
    recs = [Record(tmp_path / "a" / "x\udcff.png", "a", "hr", "c1"),  # a name that is not UTF-8
            Record(tmp_path / "b" / "2.png", "b", "vlr", "c1", 16), Record(tmp_path / "a" / "10.png", "a")]
    table = RecordTable.from_records(recs)
    assert [table.record(i) for i in range(3)] == recs
    taken = table.take(np.array([2, 0]))
    assert [taken.record(i) for i in range(2)] == [recs[2], recs[0]]
    index = DatasetIndex(tmp_path, "manifest", recs)
    assert index.records == recs and index.vlr == [recs[1]] and index.subjects == ["a", "b"]


def test_shuffled_manifest_gives_the_folder_protocol(tmp_path):
    root = write_folders_dataset(tmp_path / "faces", subjects=3, images=12)
    folders = index_dataset(root)
    rows = [f"{r.path.relative_to(tmp_path)},{r.subject}" for r in folders.records]
    rng = np.random.default_rng(0)
    csv = tmp_path / "m.csv"
    csv.write_text("path,subject\n" + "\n".join(rows[i] for i in rng.permutation(len(rows))) + "\n")
    manifest = index_dataset(csv)
    assert not manifest.table.names_in_natural_order
    a, b = (build_protocol(i, gallery_per_subject=3, vlr_size=16) for i in (folders, manifest))
    assert [r.path for r in a.gallery] == [r.path for r in b.gallery]
    assert [p.hr.path for p in a.probes] == [p.hr.path for p in b.probes]
    assert a.probe_subjects == b.probe_subjects and a.gallery_subjects == b.gallery_subjects


def test_manifest_paths_resolve_as_path_resolve_does(tmp_path):
    """The folder-at-a-time resolution (and its inline fast path) gives what Path.resolve() and
    is_file() give row by row: symlinked folders and files, '..', '//', './', a folder named
    like an image, a missing file; two spellings of one file are one file."""
    from PIL import Image

    p1 = tmp_path / "faces" / "p1"
    p1.mkdir(parents=True)
    for name in ("1.png", "2.png", "3.png"):
        Image.new("RGB", (8, 8)).save(p1 / name)
    (p1 / "ln.png").symlink_to("3.png")
    (p1 / "dir.png").mkdir()
    (tmp_path / "link_dir").symlink_to(p1, target_is_directory=True)
    raws = ["faces/p1/1.png", "link_dir/2.png", "faces/p1/ln.png", "faces//p1/dir.png", "./faces/p1/missing.png",
            "faces/p1/../p1/1.png", "link_dir/../p1/2.png", "faces/p1/3.png"]
    (tmp_path / "m.csv").write_text("path,subject\n" + "".join(f"{r},a\n" for r in raws))
    index = index_dataset(tmp_path / "m.csv")
    expected, seen = [], set()
    for raw in raws:
        path = (tmp_path / raw).resolve()
        if path.is_file() and path not in seen:
            seen.add(path)
            expected.append(path)
    assert [r.path for r in index.records] == expected
    why = [w.split(": ", 1)[1] for _, w in index.problems]
    assert why == ["no such file", "no such file"] + [f"listed again (first on line {n}); the repeat is ignored"
                                                      for n in (2, 3, 4)]
