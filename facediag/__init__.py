"""facediag: diagnostics and benchmarks for face-recognition embedding models."""

__version__ = "0.1.0"
