"""Benchmarks the way low-resolution and edge face-recognition users compare checkpoints.

- :func:`bench_accuracy`: rank-1, accuracy at a threshold with its FAR, TAR@FAR, EER and
  score means per probe resolution and checkpoint; DSR vs bicubic with significance.
- :func:`bench_speed`: parameters, FLOPs per face, latency, throughput, peak memory.

Both return a :class:`BenchReport`; :func:`write_all` writes it as JSON, HTML and Markdown.
"""
from facediag.bench.accuracy import DEFAULT_RESOLUTIONS, bench_accuracy, parse_resolutions
from facediag.bench.report import BenchReport, load_bench_report, render, render_terminal, write_all
from facediag.bench.speed import PAPER, bench_speed, model_cost

__all__ = ["DEFAULT_RESOLUTIONS", "PAPER", "BenchReport", "bench_accuracy", "bench_speed",
           "load_bench_report", "model_cost", "parse_resolutions", "render", "render_terminal",
           "write_all"]
