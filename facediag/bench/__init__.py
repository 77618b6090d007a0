"""Benchmarks the way low-resolution and edge face-recognition users compare checkpoints.

- :func:`bench_accuracy`: rank-1, accuracy at a threshold with its FAR, TAR@FAR, EER and
  score means per probe resolution and checkpoint; DSR vs bicubic with significance.
- :func:`bench_speed`: parameters, FLOPs per face, latency, throughput, peak memory.

Both return a :class:`facediag.results.BenchReport`; :func:`facediag.render.write_all` writes
it in every format.
"""
from facediag.bench.accuracy import DEFAULT_RESOLUTIONS, bench_accuracy, parse_resolutions
from facediag.bench.speed import PAPER, bench_speed, model_cost

__all__ = ["DEFAULT_RESOLUTIONS", "PAPER", "bench_accuracy", "bench_speed", "model_cost", "parse_resolutions"]
