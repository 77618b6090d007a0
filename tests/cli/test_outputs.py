"""facediag.outputs: an output is never an input, never inside the data, and writable -- checked up front."""
from __future__ import annotations

import os

import pytest

from facediag.errors import FacediagError
from facediag.outputs import check_outputs, inside, out_dir, out_file, same_file

REPORT_FILES = ("report.json", "report.html", "report.md", "junit.xml")


@pytest.fixture
def weights(tmp_path):
    w = tmp_path / "m.pt"
    w.write_bytes(b"a user's checkpoint")
    return w


def refused(outputs, match, **kw):
    with pytest.raises(FacediagError, match=match) as info:
        check_outputs(outputs, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_an_output_that_is_an_input_is_refused_by_path_symlink_and_hard_link(weights, tmp_path):
    sym = tmp_path / "alias.pt"
    sym.symlink_to(weights)
    hard = tmp_path / "hard.pt"
    os.link(weights, hard)
    linked_dir = tmp_path / "linked"
    linked_dir.symlink_to(tmp_path)
    for out in (weights, sym, hard, linked_dir / "m.pt", tmp_path / "sub" / ".." / "m.pt"):
        line = refused(out_file("--save-baseline", out), "would overwrite the input weights",
                       inputs=[("--weights", weights)])
        assert "--save-baseline" in line and "--weights" in line
    assert weights.read_bytes() == b"a user's checkpoint"


def test_a_file_written_inside_an_output_folder_is_checked_too(weights, tmp_path):
    report = tmp_path / "run1" / "report.json"
    report.parent.mkdir()
    report.write_text("{}")
    refused(out_dir("--out", report.parent, REPORT_FILES), "its report.json.*baseline report",
            inputs=[("--baseline-report", report)])
    os.link(weights, tmp_path / "run1" / "junit.xml")  # a hard link to the checkpoint, under another name
    refused(out_dir("--out", tmp_path / "run1", REPORT_FILES), "its junit.xml.*weights",
            inputs=[("--weights", weights)])


def test_repeatable_inputs_and_missing_ones(weights, tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"x")
    refused(out_file("-o", other), "overwrite", inputs=[("--weights", [weights, other]), ("--dsr", None)])
    check_outputs(out_file("-o", tmp_path / "new.json"),
                  inputs=[("--weights", [weights, tmp_path / "missing.pt"]), ("--dsr", "pkg.mod:factory")])


def test_nothing_is_written_into_the_data(tmp_path):
    data = tmp_path / "faces"
    (data / "s1").mkdir(parents=True)
    link = tmp_path / "faces-link"
    link.symlink_to(data)
    for out in (data, data / "reports", data / "s1" / "deep" / "er", link / "reports"):
        line = refused(out_dir("--out", out, REPORT_FILES), "data root", roots=[("--data", data)])
        assert "--data" in line
    refused(out_file("--save-baseline", data / "baseline.json"), "is inside the data root", roots=[("--data", data)])
    refused(out_file("--save-baseline", link / "baseline.json"), "is inside the data root", roots=[("--data", data)])
    check_outputs(out_dir("--out", tmp_path / "reports", REPORT_FILES), roots=[("--data", data)])  # beside it: fine
    assert inside(link / "x", data) and not inside(tmp_path / "facesx", data)
    assert sorted(p.name for p in data.rglob("*")) == ["s1"]


def test_the_wrong_kind_of_thing_is_refused(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refused(out_dir("--out", a_file, REPORT_FILES), "is a file, not a folder")
    refused(out_dir("--out", a_file / "sub", REPORT_FILES), "is a file, not a folder")
    refused(out_file("--save-baseline", tmp_path), "is a folder, not a file")
    refused(out_file("--save-baseline", a_file / "b.json"), "is a file, not a folder")
    (tmp_path / "run" / "report.md").mkdir(parents=True)
    refused(out_dir("--out", tmp_path / "run", REPORT_FILES), "report.md is a folder")


def test_an_unwritable_place_is_refused_before_the_run():
    refused(out_dir("--out", "/proc/facediag-reports", REPORT_FILES), "cannot write in /proc")
    refused(out_file("--save-baseline", "/proc/baseline.json"), "cannot write in /proc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_or_file_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "kept.json").write_text("{}")
    os.chmod(ro / "kept.json", 0o444)
    refused(out_file("--save-baseline", tmp_path / "ro" / "kept.json"), "read-only")
    os.chmod(ro, 0o555)
    try:
        refused(out_dir("--out", ro / "reports", REPORT_FILES), "cannot write in")
    finally:
        os.chmod(ro, 0o755)


def test_good_outputs_pass_and_nothing_is_created(weights, tmp_path):
    check_outputs([*out_dir("--out", tmp_path / "new" / "reports", REPORT_FILES),
                   *out_file("--save-baseline", tmp_path / "baseline.json")],
                  inputs=[("--weights", weights)], roots=[("--data", tmp_path / "faces")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert same_file(weights, weights) and not same_file(weights, tmp_path / "baseline.json")
