"""The command line as a user meets it: help, version, exit codes, one-line errors. In-process
(click's runner calls the same ``cli.main`` the console script calls); that the console script
itself starts and prints one line is tests/cli/test_usage_errors.py's subprocess test."""
import json
import os
import pickle

import pytest
import torch
from cli_helpers import invoke, one_line_exit_2


def test_version_and_help():
    from facediag import __version__

    assert __version__ in invoke("--version").stdout
    out = invoke("--help").stdout
    for cmd in ("run-all", "inspect", "list-checks", "render", "run"):
        assert cmd in out


@pytest.mark.parametrize("cmd", ["run-all", "inspect", "list-checks", "render", "run"])
def test_every_command_help_has_an_example(cmd):
    res = invoke(cmd, "--help")
    assert res.exit_code == 0 and "Example" in res.stdout


def test_inspect_json_on_the_official_weights(quant_weights, float_weights):
    for path, variant, fmt in ((quant_weights, "edgeface_xxs_q", "state_dict"),
                               (float_weights, "edgeface_xxs", "state_dict")):
        res = invoke("inspect", path, "--json")
        assert res.exit_code == 0, res.output
        info = json.loads(res.stdout)
        assert info["variant"] == variant and info["format"] == fmt
        assert info["matched_fraction"] == 1.0 and info["missing_keys"] == [] and info["unexpected_keys"] == []
        assert info["head"] is None and len(info["sha256"]) == 64 and info["parameters"] > 1_000_000


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = None


def test_bad_checkpoints_are_one_line_exit_2(float_weights, tmp_path):
    global MARKER
    sd = torch.load(float_weights, weights_only=True)
    renamed = tmp_path / "renamed.pth"
    torch.save({k.replace("model.", "core.model.", 1): v for k, v in sd.items()}, renamed)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(float_weights.read_bytes()[:100_000])
    png = tmp_path / "photo.pth"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    MARKER = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model.stem.0.weight": Exploit()}))
    for path in (truncated, png, evil, tmp_path / "missing.pth"):
        one_line_exit_2(invoke("inspect", path))
    assert not MARKER.exists(), "unpickling ran the attacker's command"
    one_line_exit_2(invoke("inspect", renamed), "core.model")  # says what it found


def test_run_all_bad_data_is_exit_2(float_weights, tmp_path):
    one_line_exit_2(invoke("run-all", "-w", float_weights, "--data", tmp_path / "nowhere", "-q"))
    one_line_exit_2(invoke("run-all", "-w", float_weights, "--data", tmp_path, "--suite", "nosuch", "-q"))


def test_usage_errors_are_exit_2(tmp_path):
    res = invoke("run-all", "--data", tmp_path)  # --weights missing
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = invoke("run-all", "-w", "x.pt", "--data", tmp_path, "--vlr-size", "abc")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_list_checks_names_every_check():
    out = invoke("list-checks").stdout
    for name in ("weights-integrity", "gallery-enrollment", "subject-overlap", "norm-sanity", "preprocessing",
                 "alignment", "arcface-head", "pretrained-baseline", "pair-gap", "dsr-vs-bicubic", "identification",
                 "verification"):
        assert name in out


def test_run_all_exit_codes_and_rendering(float_weights, paired_only_weights, orl_root, cache, tmp_path):
    ok = invoke("run-all", "-w", float_weights, "--data", orl_root, "--out", tmp_path / "ok", "-q",
                "--cache-dir", cache)
    assert ok.exit_code == 0, ok.output
    assert "No problems diagnosed" in ok.stdout
    for name in ("report.json", "report.html", "report.md", "junit.xml"):
        assert (tmp_path / "ok" / name).stat().st_size > 0
    bad = invoke("run-all", "-w", paired_only_weights, "--data", orl_root, "-q", "--cache-dir", cache)
    assert bad.exit_code == 1
    assert bad.stdout.index("embedding-collapse") < bad.stdout.index("weights-integrity")  # diagnoses first
    md = invoke("render", tmp_path / "ok" / "report.json", "--format", "md")
    assert md.exit_code == 0 and "identification" in md.stdout
    one_line_exit_2(invoke("render", tmp_path / "ok" / "report.md", "--format", "md"))
