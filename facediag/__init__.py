"""facediag: diagnostics and benchmarks for face-recognition embedding models."""

__version__ = "0.1.0"


def run_all(*args, **kwargs):
    """Run a suite of checks on one checkpoint; see :func:`facediag.runner.run_all`."""
    from facediag.runner import run_all as _run_all

    return _run_all(*args, **kwargs)
