"""Outputs never destroy inputs, never land in the data, and are checked before the run.

Each data-loss case runs the real command on a copy of a real checkpoint and a small ORL
subset (5 people x 4 images; ORL faces, AT&T Laboratories Cambridge) and checks that the
input's bytes are unchanged."""
from __future__ import annotations

import json
import os
import shutil

from cli_helpers import digest, invoke, one_line_exit_2


def test_options_that_need_a_companion(tmp_path):
    one_line_exit_2(invoke("run-all", "-w", tmp_path / "m.pt", "--data", tmp_path, "--force-save-baseline"),
                    "--force-save-baseline needs --save-baseline")


def test_outputs_of_the_wrong_kind_are_refused_before_the_run(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    w = tmp_path / "m.pt"  # never loaded: the outputs are checked first
    one_line_exit_2(invoke("run-all", "-w", w, "--data", tmp_path / "d", "--out", a_file), "is a file, not a folder")
    one_line_exit_2(invoke("run-all", "-w", w, "--data", tmp_path / "d", "--save-baseline", tmp_path),
                    "is a folder, not a file")
    one_line_exit_2(invoke("run-all", "-w", w, "--data", tmp_path / "d", "--out", "/proc/facediag"), "cannot write")
    one_line_exit_2(invoke("compare", w, w, "--data", tmp_path / "d", "--out", a_file), "is a file, not a folder")
    one_line_exit_2(invoke("bench", "accuracy", "-w", w, "--data", tmp_path / "d", "--out", a_file),
                    "is a file, not a folder")
    one_line_exit_2(invoke("bench", "speed", "--variant", "xxs", "--out", a_file), "is a file, not a folder")
    one_line_exit_2(invoke("demo", "--out", a_file), "is a file, not a folder")
    one_line_exit_2(invoke("train-contrastive", "--data", tmp_path / "d", "--out", tmp_path), "is a folder, not a file")
    assert a_file.read_text() == "x"


def test_render_never_overwrites_the_report_it_reads(tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"not": "read"}')
    alias = tmp_path / "alias.json"
    os.link(report, alias)
    for out in (report, alias):
        one_line_exit_2(invoke("render", report, "--format", "md", "-o", out), "would overwrite the input")
    assert report.read_text() == '{"not": "read"}'


def test_bench_and_train_never_write_into_their_data(tmp_path):
    data = tmp_path / "faces"
    (data / "s1").mkdir(parents=True)
    w = tmp_path / "m.pt"
    w.write_bytes(b"weights")
    one_line_exit_2(invoke("bench", "accuracy", "-w", w, "--data", data, "--out", data / "bench"), "data root")
    one_line_exit_2(invoke("train-contrastive", "-w", w, "--data", data, "--out", data / "ft.pt"), "data root")
    # the trainer's side files are outputs too: ft.json beside ft.pt would be the weights here
    side = tmp_path / "ft.json"
    shutil.copy(w, side)
    one_line_exit_2(invoke("train-contrastive", "-w", side, "--data", data, "--out", tmp_path / "ft.pt"),
                    "sidecar file of --out", "would overwrite the input weights")
    assert w.read_bytes() == side.read_bytes() == b"weights" and sorted(p.name for p in data.rglob("*")) == ["s1"]


def test_save_baseline_never_destroys_the_checkpoint(ckpt, orl5, cache, tmp_path):
    before = digest(ckpt)
    sym = tmp_path / "sym.pt"
    sym.symlink_to(ckpt)
    hard = tmp_path / "hard.pt"
    os.link(ckpt, hard)
    for target in (ckpt, sym, hard):
        res = invoke("run-all", "-w", ckpt, "--data", orl5, "--cache-dir", cache, "-q", "--save-baseline", target)
        one_line_exit_2(res, "--save-baseline", "would overwrite the input weights")
        assert digest(ckpt) == before
    res = invoke("run", "identification", "-w", sym, "--data", orl5, "--cache-dir", cache, "-q",
                 "--out", tmp_path / "o", "--save-baseline", tmp_path / "o" / "ok.json", "--baseline-weights", hard)
    assert res.exit_code == 0, res.output  # distinct outputs: fine, and the inputs are untouched
    assert digest(ckpt) == before and json.loads((tmp_path / "o" / "ok.json").read_text())["results"]


def test_a_failing_run_does_not_become_the_baseline(ckpt, orl5, cache, failing_suite, tmp_path):
    common = ["-w", ckpt, "--data", orl5, "--cache-dir", cache, "-q", "--suite", failing_suite]
    ok = tmp_path / "ok.json"
    assert invoke("run-all", *common[:-2], "--suite", "ci", "--save-baseline", ok).exit_code == 0
    kept = ok.read_bytes()
    # gating against ok.json while saving over it: refused before the run
    one_line_exit_2(invoke("run-all", *common, "--baseline-report", ok, "--save-baseline", ok),
                    "would overwrite the input baseline report")
    # the report folder's report.json is the baseline report, through a symlinked folder
    (tmp_path / "link").symlink_to(tmp_path)
    shutil.copy(ok, tmp_path / "report.json")
    one_line_exit_2(invoke("run-all", *common, "--baseline-report", tmp_path / "report.json",
                           "--out", tmp_path / "link"), "its report.json")
    assert ok.read_bytes() == kept and (tmp_path / "report.json").read_bytes() == kept
    # a failing run: reports written, exit 1, baseline not saved -- unless forced
    new = tmp_path / "new.json"
    res = invoke("run-all", *common, "--out", tmp_path / "fail", "--save-baseline", new)
    assert res.exit_code == 1, res.output
    assert not new.exists() and (tmp_path / "fail" / "report.json").is_file()
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "baseline not saved" in lines[0] and "--force-save-baseline" in lines[0]
    forced = invoke("run-all", *common, "--save-baseline", new, "--force-save-baseline")
    assert forced.exit_code == 1 and json.loads(new.read_text())["status"] == "FAIL"


def test_outputs_inside_the_data_are_refused(ckpt, orl5, cache):
    before = sorted(p.relative_to(orl5) for p in orl5.rglob("*"))
    for out in ("--out", "--save-baseline"):
        target = orl5 / "reports" if out == "--out" else orl5 / "s1" / "baseline.json"
        one_line_exit_2(invoke("run-all", "-w", ckpt, "--data", orl5, "--cache-dir", cache, "-q", out, target),
                        "data root")
    one_line_exit_2(invoke("compare", ckpt, ckpt, "--data", orl5, "-q", "--out", orl5), "is the data root")
    assert sorted(p.relative_to(orl5) for p in orl5.rglob("*")) == before


def test_compare_never_writes_over_a_checkpoint(ckpt, orl5, tmp_path):
    before = digest(ckpt)
    (tmp_path / "cmp").mkdir()
    os.link(ckpt, tmp_path / "cmp" / "report.md")  # hard link: another name, the same bytes
    one_line_exit_2(invoke("compare", ckpt, ckpt, "--data", orl5, "-q", "--out", tmp_path / "cmp"),
                    "would overwrite the input")
    assert digest(ckpt) == before
