"""The contributor guide's in-memory Session example runs as printed and gives run-all's figure."""
import re
from pathlib import Path

from facediag.checks.base import Status
from facediag.runner import run_all

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_in_memory_session_example_runs_one_check_as_run_all_does(float_weights, orl_root, capsys):
    text = README.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "LoadedModel.from_module" in b
                 and "run_check" in b)
    namespace = {"weights": float_weights, "faces": orl_root}
    exec(compile(block, "README session example", "exec"), namespace)  # our own README, not user input
    result = namespace["result"]
    assert result.status in (Status.PASS, Status.WARN)
    printed = capsys.readouterr().out.split()
    assert float(printed[-1]) == result.metrics["rank1"]
    report = run_all(float_weights, orl_root, checks=["identification"], vlr_size=16, use_cache=False)
    assert report.results[0].metrics["rank1"] == result.metrics["rank1"]
