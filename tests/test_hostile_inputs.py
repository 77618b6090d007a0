"""Hostile, careless and faulty inputs (issue 32): every reader and writer refuses what it cannot
use in one line with the project's bad-input error (exit 2), writes nothing half-way and runs
nothing. Property tests throw random bytes, Unicode digits and huge integers at the pairs.txt,
CSV and IJB readers."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facediag.cli import cli
from facediag.data.ijb import read_ijb
from facediag.errors import DataError
from facediag.protocols.pairs import load_pair_set

PROPERTIES = settings(max_examples=50, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Digits that str.isdigit() admits and int() refuses ('²') or reads ('٣'), and plain ones.
UNICODE_DIGITS = "²³¹⁰⁴٣۴७০௫๒၃០᠑０𝟗" + string.digits
HUGE = [2**63, 2**64 + 5, -(2**63) - 1, 10**30, int("9" * 400)]


def one_line(message: str) -> bool:
    return "\n" not in message and len(message) < 600


def one_line_exit_2(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ pairs readers
@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """ROOT/s1/1.png, s1/2.png, s2/1.png, s2/2.png: LFW-style person folders (ORL-style names)."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for person in ("s1", "s2"):
        (root / person).mkdir()
        for n in (1, 2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / person / f"{n}.png")
    return root


def _pairs_file(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return path


def _pair_set_refusal(faces, folder: Path, name: str, text: str) -> str:
    """The DataError message load_pair_set gives for a pairs file holding ``text``."""
    with pytest.raises(DataError) as e:
        load_pair_set(_pairs_file(folder, name, text), faces)
    return str(e.value)


@pytest.mark.parametrize("text,needle", [
    ("s1 1 ²\n", "line 1: s1 ² is not a person's name and image number"),
    ("s1 ² 2\n", "line 1: s1 ² is not"),
    ("s1 1 s2 ٣\n", "line 1: s2 ٣ is not"),
    ("² 1\ns1 1 2\n", "line 1: the header '² 1' is not whole numbers in ASCII digits"),
    ("1 ²\ns1 1 2\n", "the header '1 ²'"),
    ("²\ns1 1 2\n", "the header '²'"),
    ("s1 1 " + "9" * 5000 + "\n", "is not a person's name and image number"),
    ("s\x001 1 2\n", "s\\x001 1 is not"),
])
def test_pairs_txt_non_ascii_digits_and_odd_names_are_one_line(faces, tmp_path, text, needle):
    message = _pair_set_refusal(faces, tmp_path, "pairs.txt", text)
    assert needle in message and one_line(message), message


def test_pairs_txt_name_of_100000_characters_is_clipped_in_the_message(faces, tmp_path):
    for text in ("a" * 100_000 + " 1 2\n", "s1 1 " + "b" * 100_000 + " 2\n"):
        message = _pair_set_refusal(faces, tmp_path, "pairs.txt", text)
        assert "is not a person's name" in message and len(message) < 300, len(message)


def test_pairs_txt_cli_exit_2_one_line(faces, tmp_path):
    path = _pairs_file(tmp_path, "pairs.txt", "² 1\ns1 1 2\n")
    res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(tmp_path / "none.pt"), "--pairs", str(path),
                                   "--images", str(faces)])
    one_line_exit_2(res, "ASCII digits")


@pytest.mark.parametrize("text,needle", [
    ("s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,0\n", "the fold column names 1 fold (0)"),
    ("path1,path2,same,fold\ns1/1.png,s1/2.png,1,7\ns2/1.png,s2/2.png,1,7\n", "names 1 fold (7)"),
    (f"s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,{2**63}\n", "line 2: fold '9223372036854775808' is not a whole"),
    (f"s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,{-2**64}\n", "line 2: fold '-1844674407370955...' is not"),
    (f"s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,{'9' * 5000}\n", "line 2: fold '99999999999999999...' is not"),
    ("s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,²\n", "fold '²' is not a whole number"),
    ("s1/1.png,s1/\x002.png,1\n", "line 1: 's1/\\\\x002.png' is not a path"),
    ("s1/1.png," + "a" * 100_000 + ",1\n", "is not a path"),
    ("s1/1.png," + "a/" * 10_000 + "b.png,1\n", "line 1:"),
    ("s1/1.png," + "a" * 200_000 + ",1\n", "field larger than field limit"),
    ('s1/1.png,"' + "a" * 200_000 + '",1\n', "field larger than field limit"),
])
def test_pairs_csv_folds_huge_numbers_nul_and_long_fields_are_one_line(faces, tmp_path, text, needle):
    message = _pair_set_refusal(faces, tmp_path, "pairs.csv", text)
    assert needle in message and one_line(message), message


def test_pairs_csv_two_folds_still_read(faces, tmp_path):
    path = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1,-3\ns1/1.png,s2/1.png,0,9223372036854775807\n")
    assert load_pair_set(path, faces).fold_ids.tolist() == [-3, 2**63 - 1]


def test_pairs_csv_cli_exit_2_one_line(faces, tmp_path):
    path = _pairs_file(tmp_path, "pairs.csv", f"s1/1.png,s1/2.png,1,0\ns1/1.png,s2/1.png,0,{2**70}\n")
    res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(tmp_path / "none.pt"), "--pairs", str(path),
                                   "--images", str(faces)])
    one_line_exit_2(res, "within 64 bits")


def _valid_or_refused(call):
    """The reader's contract: a result, or DataError in one line; never anything else."""
    try:
        return call()
    except DataError as exc:
        assert one_line(str(exc)), str(exc)
        return None


_token = st.one_of(st.sampled_from(["s1", "s2", "1", "2", "0", "..", "", "s1/1.png", "s2/2.png", "fold", "same"]),
                   st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=6),
                   st.sampled_from(HUGE).map(str),
                   st.text(max_size=8))


@PROPERTIES
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.lists(_token, min_size=1, max_size=5).map(" ".join), max_size=6).map("\n".join)))
def test_property_pairs_txt_valid_or_one_line(faces, tmp_path_factory, data):
    path = _pairs_file(tmp_path_factory.mktemp("ptxt"), "pairs.txt", data)
    ps = _valid_or_refused(lambda: load_pair_set(path, faces))
    if ps is not None:
        assert ps.n_pairs >= 1 and all(img.name.startswith(("s1/", "s2/")) for img in ps.images)


@PROPERTIES
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.lists(_token, min_size=1, max_size=5).map(",".join), max_size=6).map("\n".join)))
def test_property_pairs_csv_valid_or_one_line(faces, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("pcsv")
    path = _pairs_file(folder, "pairs.csv", data)
    ps = _valid_or_refused(lambda: load_pair_set(path, faces))
    if ps is not None:
        assert ps.n_pairs >= 1
        assert ps.fold_ids is None or (ps.fold_ids.dtype == np.int64 and len(np.unique(ps.fold_ids)) >= 2)


# ------------------------------------------------------------------------------ IJB meta
def _ijb_tree(root: Path, tid_mid: str | None = None, pairs: str | None = None, gallery: str | None = None) -> Path:
    """A minimal IJB-C release: two crops (bytes only: the reader decodes nothing), one pair."""
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    for n in ("a.jpg", "b.jpg"):
        (root / "loose_crop" / n).write_bytes(b"x")
    meta = root / "meta"
    (meta / "ijbc_face_tid_mid.txt").write_text(tid_mid or "a.jpg 1 10\nb.jpg 2 20\n", "utf-8", "surrogatepass")
    (meta / "ijbc_name_5pts_score.txt").write_text("".join(f"{n} " + "1 " * 10 + "0.9\n" for n in ("a.jpg", "b.jpg")))
    (meta / "ijbc_template_pair_label.txt").write_text(pairs or "1 2 0\n", "utf-8", "surrogatepass")
    if gallery is not None:
        (meta / "ijbc_1N_gallery_G1.csv").write_text(gallery, "utf-8", "surrogatepass")
        (meta / "ijbc_1N_gallery_G2.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n1,1\n")
        (meta / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n2,2\n")
    return root


@pytest.mark.parametrize("where,text,needle", [
    ("tid_mid", f"a.jpg {2**63} 10\nb.jpg 2 20\n", ":1: template id '9223372036854775808' is not a whole number"),
    ("tid_mid", f"a.jpg 1 {2**64}\nb.jpg 2 20\n", ":1: media id '18446744073709551616'"),
    ("tid_mid", f"a.jpg 1 {-2**63 - 1}\nb.jpg 2 20\n", ":1: media id '-9223372036854775809'"),
    ("tid_mid", "a.jpg ² 10\nb.jpg 2 20\n", ":1: template id '²'"),
    ("tid_mid", "a.jpg 1_0 10\nb.jpg 2 20\n", ":1: template id '1_0'"),
    ("tid_mid", "a.jpg 1 " + "9" * 5000 + "\nb.jpg 2 20\n", ":1: media id '999999999999999999999999999999'"),
    ("tid_mid", "a" * 1000 + ".jpg 1 10\nb.jpg 2 20\n", "must be a path inside loose_crop/"),
    ("pairs", f"1 {2**63} 0\n", ":1: template id '9223372036854775808'"),
    ("gallery", f"TEMPLATE_ID,SUBJECT_ID\n1,{2**64}\n", ":2: subject id '18446744073709551616'"),
    ("gallery", f"TEMPLATE_ID,SUBJECT_ID\n{2**64},1\n", ":2: template id '18446744073709551616'"),
])
def test_ijb_meta_ids_beyond_int64_are_one_line(tmp_path, where, text, needle):
    root = _ijb_tree(tmp_path / "IJBC", **{where: text})
    with pytest.raises(DataError) as e:
        read_ijb(root, "IJBC")
    assert needle in str(e.value) and one_line(str(e.value)), str(e.value)


def test_ijb_meta_largest_int64_ids_still_read(tmp_path):
    big = 2**63 - 1
    root = _ijb_tree(tmp_path / "IJBC", tid_mid=f"a.jpg {big} -{big}\nb.jpg 2 20\n", pairs=f"{big} 2 0\n")
    meta = read_ijb(root, "IJBC")
    assert meta.templates.tolist() == [big, 2] and meta.medias.tolist() == [-big, 20]


def test_ijb_cli_exit_2_one_line(tmp_path):
    root = _ijb_tree(tmp_path / "IJBC", tid_mid=f"a.jpg {2**70} 10\nb.jpg 2 20\n")
    res = CliRunner().invoke(cli, ["bench", "ijb", "-w", str(tmp_path / "none.pt"), "--root", str(root)])
    one_line_exit_2(res, "within 64 bits")


_ijb_field = st.one_of(st.sampled_from(["1", "2", "10", "20", "0", "-1", "a.jpg", "b.jpg"]),
                       st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=5),
                       st.sampled_from(HUGE).map(str), st.text(max_size=6))


@PROPERTIES
@given(tid_mid=st.one_of(st.binary(max_size=200),
                         st.lists(st.lists(_ijb_field, min_size=1, max_size=4).map(" ".join),
                                  max_size=3).map("\n".join)),
       pairs=st.lists(st.lists(_ijb_field, min_size=1, max_size=4).map(" ".join), max_size=3).map("\n".join),
       gallery=st.none() | st.lists(st.lists(_ijb_field, min_size=1, max_size=3).map(",".join),
                                     max_size=3).map("\n".join))
def test_property_ijb_meta_valid_or_one_line(tmp_path_factory, tid_mid, pairs, gallery):
    root = tmp_path_factory.mktemp("ijb") / "IJBC"
    _ijb_tree(root, pairs=pairs or None, gallery=gallery)
    (root / "meta" / "ijbc_face_tid_mid.txt").write_bytes(
        tid_mid if isinstance(tid_mid, bytes) else tid_mid.encode("utf-8", "surrogatepass"))
    meta = _valid_or_refused(lambda: read_ijb(root, "IJBC"))
    if meta is not None:
        assert meta.templates.dtype == np.int64 and len(meta.names) == 2


# ------------------------------------------------------------------------------ ONNX output
def _scalar_onnx(path: Path) -> Path:
    """A graph that declares [N, 512] and returns a 0-d scalar (the sum of its input)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)], "scalar",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 512])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_graph_returning_a_scalar_is_one_line_exit_2(faces, tmp_path):
    import torch

    from facediag.errors import CheckpointError
    from facediag.models.checkpoint import load_checkpoint

    model = _scalar_onnx(tmp_path / "scalar.onnx")
    with pytest.raises(CheckpointError, match=r"the graph returns \[\] for a \[2, 3, 112, 112\] input"):
        load_checkpoint(model).model(torch.zeros(2, 3, 112, 112))
    pairs = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(model), "--pairs", str(pairs), "--images",
                                   str(faces), "--no-cache", "--quiet", "--device", "cpu"])
    one_line_exit_2(res, "scalar.onnx: the graph returns []")


# ------------------------------------------------------------------------------ TOML depth
DEEP_TOML = {
    "inline tables": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    "arrays": "x = " + "[" * 3000 + "]" * 3000 + "\n",
    "table headers": "[" + ".".join(["a"] * 3000) + "]\nb = 1\n",
    "dotted keys": ".".join(["a"] * 3000) + " = 1\n",
    "just over the bound": "[" + ".".join(["a"] * 101) + "]\nb = 1\n",
}


@pytest.mark.parametrize("case", sorted(DEEP_TOML))
def test_a_card_or_suite_nested_thousands_deep_is_one_line(tmp_path, case):
    from facediag.errors import FacediagError
    from facediag.models.card import read_card
    from facediag.suites import load_suite

    path = tmp_path / "deep.toml"
    path.write_text(DEEP_TOML[case])
    for read, what in ((read_card, "model card"), (load_suite, "suite")):
        with pytest.raises(FacediagError) as e:
            read(path)
        assert str(e.value).startswith(f"{path}: refused, the {what} nests deeper than"), str(e.value)
        assert one_line(str(e.value))


def test_deep_card_and_suite_on_the_command_line_exit_2(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text(DEEP_TOML["table headers"])
    missing = tmp_path / "missing.onnx"
    for args in (("inspect", missing, "--card", path), ("run-all", "-w", missing, "--card", path, "--data", tmp_path),
                 ("run-all", "-w", missing, "--suite", path, "--data", tmp_path)):
        one_line_exit_2(CliRunner().invoke(cli, [str(a) for a in args]), "deep.toml", "nests deeper than")


# ------------------------------------------------------------------------------ a full disk
def _no_room(monkeypatch, code=None, where="write"):
    """Make durable writes fail as a full disk does: ``write``: the temp file gets half its bytes,
    then ENOSPC (or ``code``); ``fsync``: the whole temp file is written, the sync fails."""
    import errno
    import os

    code = code or errno.ENOSPC
    if where == "write":
        real = Path.write_bytes

        def write_bytes(self, data):
            real(self, data[: len(data) // 2])
            raise OSError(code, os.strerror(code), str(self))

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    else:
        def fsync(fd):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", fsync)


def _report_json(path: Path) -> Path:
    from facediag.checks.base import CheckResult, Status
    from facediag.results import Report

    Report(command="facediag run-all", checkpoints={}, dataset={}, suite={"name": "t", "checks": {}},
           results=[CheckResult("identification", Status.PASS, "rank-1 1.0")]).save(path)
    return path


@pytest.mark.parametrize("where", ["write", "fsync"])
@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EROFS"])
def test_a_full_disk_is_write_error_and_leaves_the_old_file(tmp_path, monkeypatch, code, where):
    import errno

    from facediag.errors import FacediagError, WriteError
    from facediag.io import atomic_write_text

    target = tmp_path / "report.md"
    target.write_text("the old report")
    _no_room(monkeypatch, getattr(errno, code), where)
    with pytest.raises(WriteError) as e:
        atomic_write_text(target, "a new report " * 1000)
    assert isinstance(e.value, FacediagError) and isinstance(e.value, OSError)
    assert str(e.value).startswith(f"{target}: cannot be written (") and one_line(str(e.value)), str(e.value)
    assert target.read_text() == "the old report" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_other_write_errors_stay_what_they_are(tmp_path, monkeypatch):
    import errno
    import os
    from types import SimpleNamespace

    from facediag.errors import WriteError
    from facediag.io import atomic_save

    def torch_save_on_a_full_disk(tmp):  # torch.save's C++ writer says only this
        Path(tmp).write_bytes(b"PK half")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    target = tmp_path / "ft.pt"
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_bavail=3, f_frsize=4096))
    with pytest.raises(WriteError, match="no space left on device"):
        atomic_save(target, torch_save_on_a_full_disk)
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_bavail=10**9, f_frsize=4096))
    with pytest.raises(RuntimeError, match="file write failed"):  # room left: not the disk, a bug to see
        atomic_save(target, torch_save_on_a_full_disk)
    _no_room(monkeypatch, errno.EIO)
    with pytest.raises(OSError) as e:
        atomic_save(target, lambda tmp: Path(tmp).write_bytes(b"x" * 10))
    assert not isinstance(e.value, WriteError)
    assert list(tmp_path.iterdir()) == []


def test_render_onto_a_full_disk_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    report = _report_json(tmp_path / "report.json")
    _no_room(monkeypatch)
    res = CliRunner().invoke(cli, ["render", str(report), "--format", "md", "-o", str(tmp_path / "out.md")])
    one_line_exit_2(res, "out.md: cannot be written (no space left on device)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_run_and_export_onto_a_full_disk_are_one_line_exit_2(float_weights, orl_root, tmp_path, monkeypatch):
    import shutil

    data = tmp_path / "faces"
    for s in range(1, 5):
        (data / f"s{s}").mkdir(parents=True)
        for i in range(1, 5):
            shutil.copy(orl_root / f"s{s}" / f"{i}.pgm", data / f"s{s}" / f"{i}.pgm")
    out = tmp_path / "reports"
    _no_room(monkeypatch, where="fsync")
    res = CliRunner().invoke(cli, ["run", "identification", "-w", str(float_weights), "--data", str(data), "-q",
                                   "--no-cache", "--device", "cpu", "--out", str(out)])
    one_line_exit_2(res, "cannot be written (no space left on device)")
    assert not out.exists() or not any(p.name.endswith(".tmp") for p in out.iterdir())
    res = CliRunner().invoke(cli, ["export", str(float_weights), "--data", str(data), "-q",
                                   "-o", str(tmp_path / "m.onnx")])
    if res.exit_code != 2 and "onnx" in res.output.lower() and "install" in res.output.lower():
        pytest.skip("export needs the onnx extra")
    one_line_exit_2(res, "m.onnx: cannot be written (no space left on device)")
    assert not any(p.name.startswith(".m.onnx") or p.name == "m.onnx" for p in tmp_path.iterdir())


# ------------------------------------------------------------------------------ align: nothing to detect in
def _odd_images(folder: Path) -> list[str]:
    """An 8×8 icon, a 1×10,000 strip and its transpose: no MTCNN pyramid scale fits any of them."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = {"icon.png": (8, 8), "strip.png": (1, 10_000), "column.png": (10_000, 1)}
    for name, shape in shapes.items():
        Image.fromarray(np.full((*shape, 3), 128, np.uint8)).save(folder / name)
    return sorted(shapes)


def _align_extra():
    from align_extra import WHY_NOT

    if WHY_NOT is not None:
        pytest.skip(f"the align extra is not usable here: {WHY_NOT}")


def test_detector_finds_no_face_where_no_pyramid_scale_fits(orl_root):
    _align_extra()
    from facediag.data.detect import RETRY_MIN_FACE, Detector

    odd = [np.zeros((8, 8, 3), np.uint8), np.zeros((1, 10_000, 3), np.uint8), np.zeros((10_000, 1, 3), np.uint8),
           np.zeros((11, 11, 3), np.uint8), np.zeros((19, 40, 3), np.uint8)]
    face = np.repeat(np.asarray(Image.open(orl_root / "s1" / "1.pgm"))[:, :, None], 3, axis=2)
    found = Detector(retry_min_face=RETRY_MIN_FACE).detect([*odd, face])
    assert [d.found for d in found] == [False] * len(odd) + [True]
    assert all(d.faces == 0 for d in found[:-1])


def test_align_on_a_folder_where_no_image_can_be_searched_flags_no_face(tmp_path):
    _align_extra()
    names = _odd_images(tmp_path / "src" / "s1")
    res = CliRunner().invoke(cli, ["align", str(tmp_path / "src"), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    flagged = (tmp_path / "out" / "flagged.csv").read_text().splitlines()
    assert flagged[1:] == [f"s1/{n},no face found" for n in names]


def test_run_all_align_mtcnn_keeps_odd_images_as_no_face(float_weights, orl_root, tmp_path):
    _align_extra()
    import shutil

    data = tmp_path / "faces"
    for s in range(1, 4):
        (data / f"s{s}").mkdir(parents=True)
        for i in range(1, 5):
            shutil.copy(orl_root / f"s{s}" / f"{i}.pgm", data / f"s{s}" / f"{i}.pgm")
    _odd_images(data / "s1")
    res = CliRunner().invoke(cli, ["run", "identification", "-w", str(float_weights), "--data", str(data), "-q",
                                   "--align", "mtcnn", "--no-cache", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "ERROR" not in res.output and "3 with no face found" in " ".join(res.output.split()), res.output


# ------------------------------------------------------------------------------ train-contrastive --resume
def _train_args(data: Path, out: Path, epochs: int) -> list[str]:
    return ["train-contrastive", "--arch", "xxs", "--data", str(data), "--out", str(out), "--val-split", "images",
            "--val-fraction", "0.4", "-k", "2", "-P", "3", "-K", "2", "--epochs", str(epochs),
            "--steps-per-epoch", "1", "--lr", "1e-4", "--device", "cpu", "--align", "none", "-q"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch from scratch on synthetic faces: the run folder, its .resume.pt beside ft.pth."""
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(0)
    for s in range(4):
        base = rng.integers(0, 256, (112, 112, 3))
        (root / "d" / f"p{s}").mkdir(parents=True)
        for j in range(5):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "d" / f"p{s}" / f"{j}.png")
    res = CliRunner().invoke(cli, _train_args(root / "d", root / "run" / "ft.pth", 1))
    assert res.exit_code == 0, res.output
    return root


def _first_param_key(state):
    return next(iter(state["optimizer"]["state"]))


RESUME_MISFITS = {
    "identity as a list": (lambda s: s.update(identity=list(s["identity"].items())), "identity is [("),
    "no identity": (lambda s: s.pop("identity"), "has no identity"),
    "another variant": (lambda s: s.update(variant="edgeface_base"), "is a state of 'edgeface_base'"),
    "another variant's weights": (lambda s: s["model"].update({k: torch_zeros(7) for k in list(s["model"])[:1]}),
                                  "the saved weight"),
    "weights missing": (lambda s: s["model"].pop(next(iter(s["model"]))), "the saved weights lack"),
    "garbage RNG state": (lambda s: s["rng"].update(torch=torch_zeros(3, "uint8")), "rng is"),
    "garbage python RNG": (lambda s: s["rng"].update(python=(3, (1, 2), None)), "rng is"),
    "RNG a string": (lambda s: s.update(rng="seed"), "rng is 'seed'"),
    "history as an int": (lambda s: s.update(history=5), "history is 5, not a list of epoch rows"),
    "history rows of text": (lambda s: s["history"][0].update(val_rank1="high"), "history is"),
    "epoch as a string": (lambda s: s.update(epoch="1"), "epoch is '1', not a whole number"),
    "partial garbage": (lambda s: s.update(partial={"epoch": 2}), "partial is"),
    "optimizer state of another shape": (
        lambda s: s["optimizer"]["state"][_first_param_key(s)].update(exp_avg=torch_zeros(7)),
        "the optimiser's 'exp_avg' of parameter"),
    "optimizer groups": (lambda s: s["optimizer"].update(param_groups=[]), "0 parameter groups"),
    "schedule garbage": (lambda s: s["scheduler"].update(last_epoch="x"), "the schedule's 'last_epoch'"),
}


def torch_zeros(n, dtype="float32"):
    import torch

    return torch.zeros(n, dtype=getattr(torch, dtype))


@pytest.mark.parametrize("case", sorted(RESUME_MISFITS))
def test_resume_from_a_state_that_does_not_fit_is_one_line_and_leaves_the_output(trained, tmp_path, case):
    import hashlib
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    state = torch.load(run / "ft.resume.pt", weights_only=True)
    change, needle = RESUME_MISFITS[case]
    change(state)
    torch.save(state, run / "ft.resume.pt")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir()}
    res = CliRunner().invoke(cli, [*_train_args(trained / "d", run / "ft.pth", 2), "--resume"])
    line = one_line_exit_2(res, "--resume: ", needle)
    assert len(line) < 400
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir()} == before


def test_resume_from_the_state_as_saved_still_runs(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    res = CliRunner().invoke(cli, [*_train_args(trained / "d", run / "ft.pth", 2), "--resume"])
    assert res.exit_code == 0, res.output
    assert "resuming from the end of epoch 1" in res.output


# ------------------------------------------------------------------------------ writes that touch what they should not
def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_cache_dir_inside_a_data_root_is_refused_like_out(faces, tmp_path):
    before = _listing(faces)
    w = tmp_path / "m.pt"
    pairs = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    for args in (["run-all", "-w", w, "--data", faces, "--cache-dir", faces / "cache"],
                 ["run", "identification", "-w", w, "--data", faces, "--cache-dir", faces / "s1"],
                 ["compare", w, w, "--data", faces, "--cache-dir", faces / "cache"],
                 ["bench", "accuracy", "-w", w, "--data", faces, "--cache-dir", faces],
                 ["bench", "verification", "-w", w, "--pairs", pairs, "--images", faces, "--cache-dir",
                  faces / "c"]):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        one_line_exit_2(res, "--cache-dir", "the data root", "choose an output outside it")
    assert _listing(faces) == before


def test_cache_dir_is_held_to_the_data_root_rule_only(tmp_path):
    from facediag.errors import FacediagError
    from facediag.outputs import check_outputs, out_cache

    data = tmp_path / "data"
    data.mkdir()
    check_outputs(out_cache(tmp_path / "cache"), roots=[("--data", data)])
    check_outputs(out_cache(data / "cache", use_cache=False), roots=[("--data", data)])  # --no-cache: not written
    check_outputs(out_cache("/proc/facediag-cache"), roots=[("--data", data)])  # unwritable: the cache turns off
    with pytest.raises(FacediagError, match="--cache-dir .* is inside the data root"):
        check_outputs(out_cache(data / "cache"), roots=[("--data", data)])


def test_bench_verification_out_in_the_csvs_own_folder_is_refused(faces, tmp_path):
    import shutil

    data = tmp_path / "set"
    shutil.copytree(faces, data)
    pairs = _pairs_file(data, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    before = _listing(data)
    for out in (data, data / "reports"):
        res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(tmp_path / "m.pt"), "--pairs", str(pairs),
                                       "--out", str(out)])
        one_line_exit_2(res, "--out", "the data root", "the CSV's image root")
    assert _listing(data) == before


@pytest.mark.parametrize("where", ["render", "run-all"])
def test_an_output_that_is_a_fifo_is_refused(tmp_path, where):
    import os
    import stat

    fifo = tmp_path / ("out.md" if where == "render" else "reports/report.html")
    fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(fifo)
    if where == "render":
        report = _report_json(tmp_path / "report.json")
        res = CliRunner().invoke(cli, ["render", str(report), "--format", "md", "-o", str(fifo)])
    else:
        (tmp_path / "d").mkdir()
        res = CliRunner().invoke(cli, ["run-all", "-w", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d"),
                                       "--out", str(fifo.parent)])
    one_line_exit_2(res, "is a FIFO, not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_output_is_refused(tmp_path):
    from facediag.errors import FacediagError
    from facediag.outputs import check_outputs, out_file

    import os
    import stat

    device = next((d for d in ("/dev/full", "/dev/zero", "/dev/null", "/dev/urandom")
                   if os.path.exists(d) and stat.S_ISCHR(os.stat(d).st_mode)), None)
    if device is None:
        pytest.skip("no character device to point at here")
    with pytest.raises(FacediagError, match="is a character device, not a regular file"):
        check_outputs(out_file("-o", device))
    (tmp_path / "full").symlink_to(device)  # a link to the always-full device, as a new user might make
    with pytest.raises(FacediagError, match="is a character device"):
        check_outputs(out_file("-o", tmp_path / "full"))
    assert stat.S_ISCHR(os.stat(device).st_mode)


# ------------------------------------------------------------------------------ the trust boundary of --dsr
MARKER = "FACEDIAG_DSR_CODE_RAN"


def _scripted_dsr(path: Path, *, hook: bool = False, size: int = 112, prints: bool = False) -> Path:
    """A TorchScript DSR: bilinear to ``size``; ``hook``: its __setstate__ (run by torch.jit.load)
    prints MARKER; ``prints``: its forward does."""
    import torch
    import torch.nn.functional as F

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.size = size

        def forward(self, x):
            return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    class Printing(Plain):
        def forward(self, x):
            print("FACEDIAG_DSR_CODE_RAN")
            return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    class Hooked(Plain):
        @torch.jit.export
        def __getstate__(self):
            return (self.size, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[int, bool]):
            print("FACEDIAG_DSR_CODE_RAN")
            self.size = state[0]
            self.training = state[1]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Hooked() if hook else Printing() if prints else Plain()).save(str(path))
    return path


@pytest.fixture
def small_orl(orl_root, tmp_path):
    import shutil

    data = tmp_path / "faces"
    for s in range(1, 4):
        (data / f"s{s}").mkdir(parents=True)
        for i in range(1, 5):
            shutil.copy(orl_root / f"s{s}" / f"{i}.pgm", data / f"s{s}" / f"{i}.pgm")
    return data


def test_a_torchscript_dsr_that_runs_code_on_load_is_refused_everywhere(faces, small_orl, float_weights,
                                                                       tmp_path, capfd):
    from facediag.errors import CheckpointError
    from facediag.models.dsr import load_dsr

    dsr = _scripted_dsr(tmp_path / "hook_dsr.pt", hook=True)
    with pytest.raises(CheckpointError, match="defines __setstate__, which loading would run; .*--trust-dsr-code"):
        load_dsr(str(dsr))
    pairs = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    w, d = str(float_weights), str(small_orl)
    for args in (["run", "identification", "-w", w, "--data", d],
                 ["compare", w, w, "--data", d, "--suite", "ci"],
                 ["bench", "accuracy", "-w", w, "--data", d, "--resolutions", "16"],
                 ["bench", "verification", "-w", w, "--pairs", str(pairs), "--images", str(faces),
                  "--resolutions", "16"],
                 ["train-contrastive", "--arch", "xxs", "--data", d, "--out", str(tmp_path / "ft.pth"),
                  "--val-split", "images", "--epochs", "1", "--steps-per-epoch", "1", "--align", "none"]):
        res = CliRunner().invoke(cli, [*args, "--dsr", str(dsr), "--device", "cpu", "-q", "--no-cache"]
                                 if args[0] != "train-contrastive" else [*args, "--dsr", str(dsr), "--device", "cpu",
                                                                          "-q"])
        one_line_exit_2(res, "hook_dsr.pt", "__setstate__", "--trust-dsr-code")
    assert MARKER not in capfd.readouterr().out
    assert not (tmp_path / "ft.pth").exists()
    # the user's word: it loads, and its hook runs as their own code
    assert load_dsr(str(dsr), trust_code=True).name == "hook_dsr.pt"
    assert MARKER in capfd.readouterr().out


def test_a_module_factory_dsr_is_never_imported_without_trust(faces, tmp_path, monkeypatch):
    import importlib
    import subprocess
    import sys

    from facediag.errors import CheckpointError
    from facediag.models.dsr import load_dsr

    def no_import(name, *a, **k):
        raise AssertionError(f"imported {name}")

    with monkeypatch.context() as m:
        m.setattr(importlib, "import_module", no_import)
        for spec in ("os:abort", "shutil:rmtree", "tiny_dsr:build"):
            with pytest.raises(CheckpointError, match="your own code .*pass --trust-dsr-code"):
                load_dsr(spec)
    pairs = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    # a separate process: were os.abort called, it would die of SIGABRT (exit -6) rather than fail a test
    proc = subprocess.run([sys.executable, "-m", "facediag", "bench", "verification", "-w", str(tmp_path / "m.pt"),
                           "--pairs", str(pairs), "--images", str(faces), "--resolutions", "16", "--dsr", "os:abort"],
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warnings.warn" not in ln]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert lines[0].startswith("error: DSR 'os:abort': a module:factory is Python code")
    assert "--trust-dsr-code" in lines[0]


def test_trust_dsr_code_holds_for_one_command_only(faces, tmp_path):
    from facediag.models import dsr as dsr_mod

    pairs = _pairs_file(tmp_path, "pairs.csv", "s1/1.png,s1/2.png,1\ns1/1.png,s2/1.png,0\n")
    res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(tmp_path / "m.pt"), "--pairs", str(pairs),
                                   "--images", str(faces), "--resolutions", "16", "--dsr", "no_such_dsr_pkg:build",
                                   "--trust-dsr-code"])
    one_line_exit_2(res, "DSR 'no_such_dsr_pkg:build': cannot import factory")  # trusted: it tried the import
    assert dsr_mod._trust["code"] is False
    with pytest.raises(Exception, match="pass --trust-dsr-code"):
        dsr_mod.load_dsr("no_such_dsr_pkg:build")
    assert "--trust-dsr-code" in CliRunner().invoke(cli, ["run-all", "--help"]).output


def test_a_torchscript_dsr_of_the_wrong_shape_is_refused_before_the_checks(small_orl, float_weights, tmp_path):
    dsr = _scripted_dsr(tmp_path / "small_dsr.pt", size=64)
    w, d = str(float_weights), str(small_orl)
    for args in (["run", "identification", "-w", w, "--data", d], ["run-all", "-w", w, "--data", d, "--suite", "ci"],
                 ["compare", w, w, "--data", d, "--suite", "ci"]):
        res = CliRunner().invoke(cli, [*args, "--dsr", str(dsr), "--device", "cpu", "-q", "--no-cache"])
        one_line_exit_2(res, "DSR 'small_dsr.pt' returned [1, 3, 64, 64], expected [1, 3, 112, 112]")
    ok = _scripted_dsr(tmp_path / "ok_dsr.pt")  # the right shape runs
    res = CliRunner().invoke(cli, ["run", "identification", "-w", w, "--data", d, "--dsr", str(ok), "--device", "cpu",
                                   "-q", "--no-cache"])
    assert res.exit_code == 0, res.output


def test_inspect_never_runs_a_dsr(tmp_path, capfd):
    for dsr in (_scripted_dsr(tmp_path / "hook.pt", hook=True), _scripted_dsr(tmp_path / "prints.pt", prints=True)):
        res = CliRunner().invoke(cli, ["inspect", str(dsr)])
        one_line_exit_2(res, dsr.name)
    assert MARKER not in capfd.readouterr().out
