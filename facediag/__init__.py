"""facediag: diagnostics and benchmarks for face-recognition embedding models."""

from typing import TYPE_CHECKING

from facediag.version import __version__

if TYPE_CHECKING:  # for readers and linters only: at run time __getattr__ below imports it on first use
    from facediag.monitor import Monitor

__all__ = ["Monitor", "__version__", "run_all"]


def run_all(*args, **kwargs):
    """Run a suite of checks on one checkpoint; see :func:`facediag.runner.run_all`."""
    # imported on the first call: every import of a facediag module runs this file first, so it stays light
    from facediag.runner import run_all as _run_all

    return _run_all(*args, **kwargs)


def __getattr__(name: str):
    """``from facediag import Monitor`` imports the monitor (and torch) only when asked for."""
    if name == "Monitor":
        from facediag.monitor import Monitor

        return Monitor
    raise AttributeError(f"module 'facediag' has no attribute {name!r}")
