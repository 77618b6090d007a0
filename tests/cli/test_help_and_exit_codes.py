"""The command line as a user meets it: help, version, exit codes, one-line errors."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch


def facediag(*args, cwd=None, env_extra=None):
    env = {**os.environ, "FACEDIAG_CACHE": os.environ.get("FACEDIAG_CACHE", ""), **(env_extra or {})}
    env.pop("FACEDIAG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "facediag", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_one_line_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("error:")


def test_version_and_help():
    from facediag import __version__

    assert __version__ in facediag("--version").stdout
    out = facediag("--help").stdout
    for cmd in ("run-all", "inspect", "list-checks", "render", "run"):
        assert cmd in out


@pytest.mark.parametrize("cmd", ["run-all", "inspect", "list-checks", "render", "run"])
def test_every_command_help_has_an_example(cmd):
    proc = facediag(cmd, "--help")
    assert proc.returncode == 0 and "Example" in proc.stdout


def test_inspect_json_on_the_official_weights(quant_weights, float_weights):
    for path, variant, fmt in ((quant_weights, "edgeface_xxs_q", "state_dict"),
                               (float_weights, "edgeface_xxs", "state_dict")):
        proc = facediag("inspect", path, "--json")
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
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
    for path in (renamed, truncated, png, evil, tmp_path / "missing.pth"):
        proc = facediag("inspect", path)
        assert_one_line_error(proc)
    assert not MARKER.exists(), "unpickling ran the attacker's command"
    assert "core.model" in facediag("inspect", renamed).stderr  # says what it found


def test_run_all_bad_data_is_exit_2(float_weights, tmp_path):
    assert_one_line_error(facediag("run-all", "-w", float_weights, "--data", tmp_path / "nowhere", "-q"))
    assert_one_line_error(facediag("run-all", "-w", float_weights, "--data", tmp_path, "--suite", "nosuch", "-q"))


def test_usage_errors_are_exit_2(tmp_path):
    proc = facediag("run-all", "--data", tmp_path)  # --weights missing
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = facediag("run-all", "-w", "x.pt", "--data", tmp_path, "--vlr-size", "abc")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_list_checks_names_every_check():
    out = facediag("list-checks").stdout
    for name in ("weights-integrity", "gallery-enrollment", "subject-overlap", "norm-sanity", "preprocessing",
                 "alignment", "arcface-head", "pretrained-baseline", "pair-gap", "dsr-vs-bicubic", "identification",
                 "verification"):
        assert name in out


def test_run_all_exit_codes_and_rendering(float_weights, paired_only_weights, orl_root, tmp_path):
    env = {"FACEDIAG_CACHE": str(tmp_path / "cache")}
    ok = facediag("run-all", "-w", float_weights, "--data", orl_root, "--out", tmp_path / "ok", "-q", env_extra=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "No problems diagnosed" in ok.stdout
    for name in ("report.json", "report.html", "report.md", "junit.xml"):
        assert (tmp_path / "ok" / name).stat().st_size > 0
    bad = facediag("run-all", "-w", paired_only_weights, "--data", orl_root, "-q", env_extra=env)
    assert bad.returncode == 1
    assert bad.stdout.index("embedding-collapse") < bad.stdout.index("weights-integrity")  # diagnoses first
    md = facediag("render", tmp_path / "ok" / "report.json", "--format", "md")
    assert md.returncode == 0 and "identification" in md.stdout
    assert_one_line_error(facediag("render", tmp_path / "ok" / "report.md", "--format", "md"))
