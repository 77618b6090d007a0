"""facediag: diagnostics and benchmarks for face-recognition embedding models."""

from facediag.version import __version__

__all__ = ["__version__", "run_all"]


def run_all(*args, **kwargs):
    """Run a suite of checks on one checkpoint; see :func:`facediag.runner.run_all`."""
    from facediag.runner import run_all as _run_all

    return _run_all(*args, **kwargs)
