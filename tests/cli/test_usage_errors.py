"""Bad usage and bad numbers are one line on stderr, exit 2, before any work (not exit 3, not
silently accepted, not found out at the end of the run)."""
from __future__ import annotations

import os
import subprocess
import sys

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
    proc = subprocess.run([sys.executable, "-m", "facediag", "run-all", "--foo"], check=False, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: no such option")
    cli_main = subprocess.run([sys.executable, "-m", "facediag.cli", "--version"], check=False, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert cli_main.returncode == 0 and "facediag" in cli_main.stdout  # torchrun -m facediag.cli


@pytest.mark.parametrize("args,needle", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--vlr-size", "0"], "--vlr-size"),  # was silently full resolution
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


def test_a_missing_train_root_is_refused_before_the_run(ckpt, tiny, cache, tmp_path):
    # before: the run went ahead and subject-overlap became an ERROR (exit 1) at its end
    one_line_exit_2(invoke("run-all", "-w", ckpt, "--data", tiny, "--cache-dir", cache, "-q",
                           "--train-root", tmp_path / "nowhere"), "--train-root", "does not exist")
