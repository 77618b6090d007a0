"""Bad usage and bad numbers are one line on stderr, exit 2, before any work (not exit 3, not
silently accepted, not found out at the end of the run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import invoke, one_line_exit_2


def test_a_usage_error_is_one_line_naming_the_help():
    line = one_line_exit_2(invoke("run-all", "--foo"), "no such option", "--foo",
                           "(see facediag run-all --help)")
    assert not line.startswith("error: Usage")
    one_line_exit_2(invoke("bench", "accuracy", "--data", "x"), "missing option", "--weights",
                    "(see facediag bench accuracy --help)")
    one_line_exit_2(invoke("nosuch"), "no such command")


def test_the_console_script_prints_one_line_too(tmp_path):
    """The one CLI test in a process of its own: the installed ``facediag`` command starts and
    prints one line; every other CLI test calls the same ``cli.main`` in-process."""
    script = Path(sys.executable).with_name("facediag")  # pip installs the command beside python
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("FACEDIAG_DEBUG", None)
    proc = subprocess.run([str(script), "run-all", "--foo"], check=False, capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: no such option")
    cli_main = subprocess.run([sys.executable, "-m", "facediag.cli", "--version"], check=False, capture_output=True,
                              text=True, env=env)
    assert cli_main.returncode == 0 and "facediag" in cli_main.stdout  # torchrun -m facediag.cli


@pytest.mark.parametrize("args,needle", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--vlr-size", "0"], "--vlr-size"),  # not a size: full resolution is "hr"
    (["--vlr-size", "none"], "--vlr-size"),  # only 'hr' means full resolution
    (["--vlr-size", "2"], "--vlr-size"),
    (["--gallery-per-subject", "0"], "--gallery-per-subject"),
])
def test_bad_numbers_are_usage_errors(tmp_path, args, needle):
    one_line_exit_2(invoke("run-all", "-w", tmp_path / "m.pt", "--data", tmp_path, *args), needle)
    one_line_exit_2(invoke("compare", tmp_path / "a.pt", tmp_path / "b.pt", "--data", tmp_path, *args), needle)


@pytest.mark.parametrize("n_boot", ["0", "-1", "99"])
def test_bench_accuracy_refuses_too_few_bootstrap_resamples(tmp_path, n_boot):
    one_line_exit_2(invoke("bench", "accuracy", "-w", tmp_path / "m.pt", "--data", tmp_path, "--n-boot", n_boot),
                    "--n-boot")


def test_a_missing_train_root_is_refused_before_work(tmp_path):
    one_line_exit_2(invoke("run-all", "-w", tmp_path / "m.pt", "--data", tmp_path, "--train-root",
                           tmp_path / "nowhere"), "--train-root", "does not exist")


def test_missing_data_is_one_line(ckpt, cache):
    one_line_exit_2(invoke("run-all", "-w", ckpt, "--cache-dir", cache, "-q"), "no data")


def test_a_missing_train_root_is_refused_before_the_run(ckpt, orl5, cache, tmp_path):
    # refused before the run, not found out at its end as an ERROR in subject-overlap (exit 1)
    one_line_exit_2(invoke("run-all", "-w", ckpt, "--data", orl5, "--cache-dir", cache, "-q",
                           "--train-root", tmp_path / "nowhere"), "--train-root", "does not exist")
