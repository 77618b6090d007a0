"""The contributor guide's example check works as printed: it registers, a suite can name it,
and its condition decides its status."""
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facediag.checks import registry
from facediag.checks.base import Status

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def example_check():
    text = README.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class GenuineFloor" in b)
    assert len(block.strip().splitlines()) <= 25  # the guide promises a short example
    namespace: dict = {}
    exec(compile(block, "README example", "exec"), namespace)  # our own README, not user input
    yield namespace["GenuineFloor"]
    registry._REGISTRY.pop("genuine-floor", None)


def _ctx(genuine):
    ev = SimpleNamespace(genuine_scores=lambda: np.asarray(genuine, float))
    return SimpleNamespace(evaluation=lambda role="model": ev)


def test_example_check_registers_and_judges_by_its_condition(example_check, tmp_path):
    assert registry.get_check("genuine-floor") is example_check
    check = example_check()
    low = registry.run_check(check, _ctx([0.1, 0.2]), {}, lambda req: None)
    high = registry.run_check(check, _ctx([0.5, 0.7]), {}, lambda req: None)
    assert low.status == Status.WARN and low.met("genuine-low") and "below 0.3" in low.summary
    assert high.status == Status.PASS and high.metrics["n_genuine"] == 2
    stricter = registry.run_check(check, _ctx([0.5, 0.7]), {"min_genuine": 0.9}, lambda req: None)
    assert stricter.status == Status.WARN

    from facediag.suites import load_suite

    suite = tmp_path / "mine.toml"
    suite.write_text("[checks.genuine-floor]\nmin_genuine = 0.4\n")
    assert load_suite(suite).params("genuine-floor")["min_genuine"] == 0.4
