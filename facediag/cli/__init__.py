"""The facediag command line. Thin: parse, call library code, pick an exit code.

Exit codes: 0 pass; 1 a check failed or a regression beyond tolerance; 2 bad input or
usage (one clear line, no traceback); 3 internal error.


  options.py   exit codes, error handling, every shared option defined once
  run.py       run-all, run, list-checks
  inspect.py   inspect
  render.py    render
  compare.py   compare
  bench.py     bench accuracy, bench speed
  cache.py     cache info, cache prune, cache clear
  train.py     train-contrastive
  demo.py      demo
  align.py     align
  export.py    export
  scores.py    scores, and bench scores (added to the bench group here)
"""
from __future__ import annotations

import click

from facediag import __version__
from facediag.cli.align import align
from facediag.cli.bench import bench
from facediag.cli.cache import cache
from facediag.cli.compare import compare_cmd
from facediag.cli.demo import demo
from facediag.cli.export import export_cmd
from facediag.cli.inspect import inspect
from facediag.cli.options import (
    EXIT_FAIL,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    FacediagGroup,
    handle_errors,
)
from facediag.cli.render import render
from facediag.cli.run import list_checks, run_all_cmd, run_cmd
from facediag.cli.scores import bench_scores_cmd, scores_cmd
from facediag.cli.train import train_contrastive

__all__ = ["EXIT_FAIL", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "cli", "handle_errors", "main"]


@click.group(name="facediag", cls=FacediagGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="facediag")
def cli():
    """facediag: find out whether a face-recognition embedder really works.

    \b
    Checks a fine-tuned EdgeFace checkpoint the way it will be used — HR gallery,
    low-resolution probes through super-resolution, cosine matching — and names what
    is wrong when training metrics lied.

    \b
    Start here:
      facediag inspect edgeface.pth                   # what is in a checkpoint
      facediag run-all --weights ft.pth --data faces/ # every check, with diagnoses
    """


bench.add_command(bench_scores_cmd)  # beside the score-file writer, in scores.py
for _command in (inspect, run_all_cmd, run_cmd, list_checks, render, bench, train_contrastive, compare_cmd, demo,
                 export_cmd, cache, align, scores_cmd):
    cli.add_command(_command)


def main():
    """Console entry point (``facediag = facediag.cli:main``): usage errors are one line, exit 2."""
    cli.main()
