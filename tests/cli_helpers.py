"""Running the command in-process and reading its one error line (shared by tests/cli)."""
from __future__ import annotations

import hashlib

from click.testing import CliRunner

from facediag.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_exit_2(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in res.output, lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
