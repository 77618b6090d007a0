"""One look for every progress bar; quiet when asked or when nobody is watching."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """Yield ``advance(n)``; draws a Rich bar on stderr when enabled and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty() or total <= 0:
        yield lambda n=1: None
        return
    columns = (TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("•"), TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
