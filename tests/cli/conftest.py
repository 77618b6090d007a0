"""Fixtures of tests/cli: a small ORL subset (orl5), a real checkpoint copy, a suite that fails."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="module")
def orl5(orl_root, tmp_path_factory):
    """ORL s1-s5, four images each."""
    root = tmp_path_factory.mktemp("tiny-orl")
    for s in range(1, 6):
        (root / f"s{s}").mkdir()
        for i in range(1, 5):
            shutil.copy(orl_root / f"s{s}" / f"{i}.pgm", root / f"s{s}" / f"{i}.pgm")
    return root


@pytest.fixture
def ckpt(float_weights, tmp_path):
    """A user's checkpoint: a real copy, so losing it would be real."""
    path = tmp_path / "m.pt"
    shutil.copy(float_weights, path)
    return path


@pytest.fixture(scope="module")
def failing_suite(tmp_path_factory):
    """identification fails at threshold -1 (every impostor pair is accepted): a run that fails
    on purpose, cheaply, with parameters a suite may legitimately hold."""
    path = tmp_path_factory.mktemp("suite") / "fails.toml"
    path.write_text('[suite]\nname = "fails"\nthreshold = -1.0\n\n[checks.weights-integrity]\n'
                    '[checks.identification]\n')
    return path
