"""bench speed: parameters, FLOPs per 112×112 face, latency, throughput and peak memory.

FLOPs come from torch's own counter (``torch.utils.flop_counter.FlopCounterMode``: 2 per
multiply-accumulate of convolutions and matrix products), which reproduces the EdgeFace
paper's figures. Timings run under ``torch.inference_mode`` after a warm-up; on CUDA every
timed span is closed by ``torch.cuda.synchronize`` so queued kernels are counted.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch

from facediag.bench.common import is_loaded
from facediag.device import resolve_device
from facediag.errors import FacediagError
from facediag.models.checkpoint import load_checkpoint, resolve_variant
from facediag.models.edgeface import VARIANTS, build_edgeface, count_parameters
from facediag.models.loaded import dynamic_int8, run_device
from facediag.models.onnx import ONNX_FORMAT
from facediag.results import BenchReport
from facediag.runner import checkpoint_info

# EdgeFace paper (George et al., 2024), Table: parameters (M) and MFLOPs at 112×112.
PAPER = {
    "edgeface_xxs": (1.24, 94.72),
    "edgeface_xs_gamma_06": (1.77, 154.00),
    "edgeface_s_gamma_05": (3.65, 306.12),
    "edgeface_base": (18.23, 1398.83),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_BATCH_SIZES = (1, 8, 64)
FLOPS_METHOD = ("torch.utils.flop_counter.FlopCounterMode on one 3×112×112 face: 2 FLOPs per "
                "multiply-accumulate of convolutions and matrix products (element-wise ops not counted), "
                "the convention of the EdgeFace paper")
QUANT_REASON = ("int8 dynamic quantisation (the _q variants) has kernels on CPU only in PyTorch, "
                "so it is benchmarked on CPU")
ONNX_INT8_REASON = ("an int8 ONNX graph (dynamic quantisation: ConvInteger/MatMulInteger) runs on onnxruntime's "
                    "CPU provider, so it is benchmarked on CPU")
TORCH, ONNXRUNTIME = "torch", "onnxruntime"
CUDA_MEMORY = ("CUDA: torch.cuda.max_memory_allocated during each batch size's timed runs "
               "(tensors only: the weights, input and activations; not the CUDA context or allocator reserve)")
CPU_MEMORY = ("CPU: peak resident set size of the whole process, sampled every 1 ms from /proc/self/statm "
              "during two untimed runs after each batch size's timed ones, minus the RSS before the first "
              "forward pass (so: activations and work buffers, not the weights or libraries)")
CPU_MEMORY_FALLBACK = ("CPU: ru_maxrss (the process's lifetime peak resident set; no /proc here), minus the "
                       "RSS peak before the first forward pass: a lower bound when an earlier step peaked higher")


def model_cost(model: torch.nn.Module, device="cpu") -> int:
    """FLOPs of one 3×112×112 face through ``model`` (see FLOPS_METHOD)."""
    # imported here: it pulls in triton, a slow import every CLI start would pay; only bench speed counts FLOPs
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    x = torch.zeros(1, 3, 112, 112, device=device)
    with counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def _float_twin(variant: str) -> torch.nn.Module:
    return build_edgeface(variant, quantized=False)


@contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise FacediagError("--threads must be at least 1")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_PROC_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Resident set size now (bytes); without /proc, the process's lifetime peak (all we can know)."""
    try:
        with open(_PROC_STATM) as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _RssSampler:
    """Peak resident set size while the block runs: a thread polls /proc/self/statm every 1 ms
    (the allocations of torch's CPU kernels are invisible to tracemalloc)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def __enter__(self):
        self.peak = _rss()
        if os.path.exists(_PROC_STATM):
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.peak = max(self.peak, _rss())


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(model: torch.nn.Module, device: torch.device, dtype: torch.dtype, *,
            batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, channels_last: bool = False,
            warmup: int = 10, iters: int = 50, min_seconds: float = 1.0) -> dict[str, Any]:
    """Latency at batch 1 (median, p95 over ``iters`` runs after ``warmup``) and, per batch
    size, images/s over at least ``min_seconds`` (and 3 runs) plus peak memory."""
    sync = _sync(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def batch(n):
        return (torch.rand(n, 3, 112, 112, device=device) * 2 - 1).to(dtype).contiguous(memory_format=fmt)

    out: dict[str, Any] = {}
    base_rss = _rss() if device.type == "cpu" else 0
    with torch.inference_mode():
        x = batch(1)
        sync()
        t0 = time.perf_counter()
        try:
            model(x)
        except RuntimeError as exc:  # e.g. a dtype the device has no kernels for
            raise FacediagError(f"the model does not run on {device} in {dtype}: "
                                f"{str(exc).strip().splitlines()[0]}") from None
        sync()
        out["first_call_ms"] = (time.perf_counter() - t0) * 1e3  # includes torch.compile when on
        for _ in range(warmup):
            model(x)
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        out["latency_ms"] = {"median": statistics.median(times), "p95": _percentile(times, 0.95),
                             "mean": statistics.fmean(times), "min": min(times), "n": len(times),
                             "warmup": warmup}
        throughput = []
        for bs in sorted(batch_sizes):  # ascending: a smaller batch's buffers never inflate a larger one's peak
            x = batch(bs)
            for _ in range(max(1, warmup // 3)):
                model(x)
            sync()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            n, t0 = 0, time.perf_counter()
            while True:
                model(x)
                n += 1
                if n >= 3:
                    sync()
                    if time.perf_counter() - t0 >= min_seconds:
                        break
            elapsed = time.perf_counter() - t0
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device)
            else:  # two more runs, untimed: the sampling thread would slow the timed ones (GIL, wake-ups)
                with _RssSampler() as sampler:
                    model(x)
                    model(x)
                peak = max(0, sampler.peak - base_rss)
            throughput.append({"batch_size": bs, "images_per_s": bs * n / elapsed,
                               "ms_per_batch": elapsed / n * 1e3, "runs": n,
                               "peak_memory_mb": peak / 2**20})
        out["throughput"] = throughput
    return out


def _placement(variant: str, device: torch.device, dtype_name: str, notes: list[str], onnx=None):
    """Where and in what dtype ``variant`` can run: int8 models on CPU in fp32, saying why; an ONNX
    graph (``onnx``: its LoadedOnnx) in the dtype it was exported in, on CUDA only with the provider."""
    if onnx is not None:
        name = Path(onnx.path).name
        if device.type != "cpu":
            import onnxruntime as ort  # optional (facediag[onnx]): present whenever an ONNX graph was loaded

            why = (ONNX_INT8_REASON if onnx.int8 else "onnxruntime here has no CUDAExecutionProvider"
                   if "CUDAExecutionProvider" not in ort.get_available_providers() else None)
            if why:
                notes.append(f"{name}: {why} although {device} was asked")
                device = torch.device("cpu")
        if dtype_name != "fp32":
            notes.append(f"{name}: the graph's dtype is fixed at export (fp32 input); --dtype {dtype_name} "
                         "does not apply")
            dtype_name = "fp32"
        return device, dtype_name
    if dynamic_int8(variant):
        placed = run_device(variant, device)
        if placed.type != device.type:
            notes.append(f"{variant}: {QUANT_REASON} although {device} was asked")
            device = placed
        if dtype_name != "fp32":
            notes.append(f"{variant}: int8 weights with fp32 activations; --dtype {dtype_name} does not apply")
            dtype_name = "fp32"
    return device, dtype_name


def _prepare(model: torch.nn.Module, variant: str, device: torch.device, dtype_name: str,
             compile: bool, channels_last: bool, notes: list[str], onnx=None):
    """The model on the device in the dtype to time, and the device/dtype actually used."""
    device, dtype_name = _placement(variant, device, dtype_name, notes, onnx)
    if onnx is not None:  # onnxruntime runs the graph as exported: torch's conversions do not reach it
        if compile or channels_last:
            notes.append(f"{Path(onnx.path).name}: --compile/--channels-last are torch settings; "
                         "onnxruntime runs the graph with its own optimisations")
        return model, device, dtype_name
    model = model.to(device).eval()
    if not dynamic_int8(variant):
        model = model.to(DTYPES[dtype_name])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    return model, device, dtype_name


def bench_speed(checkpoints: Sequence = (), *, variants: Sequence[str] = (), device: str = "auto",
                batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, threads: int | None = None,
                dtype: str = "fp32", compile: bool = False, channels_last: bool = False,
                warmup: int = 10, iters: int = 50, min_seconds: float = 1.0, timing: bool = True,
                arch: str | None = None, command: str | None = None) -> BenchReport:
    """Size and speed of each checkpoint (weights path or loaded model) and each named variant
    (random weights: enough for speed and size). ``timing=False`` gives parameters and FLOPs only.

    Example::

        report = bench_speed(variants=["edgeface_xxs", "edgeface_base"], device="cpu", batch_sizes=[1, 32])
        report.rows[0]["flops"] / 1e6   # ≈ 94.6 MFLOPs
    """
    if dtype not in DTYPES:
        raise FacediagError(f"--dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    if not checkpoints and not variants:
        raise FacediagError("give --weights or --variant")
    if any(b < 1 for b in batch_sizes) or not batch_sizes:
        raise FacediagError("batch sizes must be positive integers")
    if warmup < 0 or iters < 1:
        raise FacediagError("need warmup >= 0 and iters >= 1")
    want = resolve_device(device)
    entries = _entries(checkpoints, variants, arch, timing)
    timer = partial(measure, batch_sizes=batch_sizes, warmup=warmup, iters=iters,
                    min_seconds=min_seconds) if timing else None
    with _threads(threads):
        rows = [_row(entry, want, dtype, compile, channels_last, timer) for entry in entries]
    _against_torch(rows)

    devices = {r["device"] for r in rows}
    memory = " ".join(CUDA_MEMORY if d.startswith("cuda") else
                      (CPU_MEMORY if os.path.exists(_PROC_STATM) else CPU_MEMORY_FALLBACK)
                      for d in sorted(devices))
    settings = {"device": str(want), "batch_sizes": sorted(batch_sizes), "threads": threads, "dtype": dtype,
                "compile": compile, "channels_last": channels_last, "warmup": warmup, "iters": iters,
                "min_seconds": min_seconds, "timing": timing, "flops_method": FLOPS_METHOD,
                "memory_method": memory if timing else "not measured (timing off)"}
    return BenchReport(kind="speed",
                       command=command or "facediag.bench.bench_speed(...)",
                       checkpoints={e.label: e.info for e in entries}, settings=settings,
                       rows=rows, environment=_environment(want))


@dataclass
class _Entry:
    """One model to measure: its table label, module, variant and checkpoint info, and its LoadedOnnx
    when it is an ONNX graph (run by onnxruntime)."""

    label: str
    model: torch.nn.Module
    variant: str
    info: dict
    onnx: Any = None

    @property
    def int8(self) -> bool:
        return dynamic_int8(self.variant) or bool(self.onnx is not None and self.onnx.int8)


def _entries(checkpoints: Sequence, variants: Sequence[str], arch: str | None, timing: bool) -> list[_Entry]:
    """The checkpoints (paths loaded, loaded models as they are), then the variants with random weights."""
    entries: list[_Entry] = []
    for c in checkpoints:
        # Always load on CPU: loading a _q file for CUDA would dequantise it, timing another model.
        loaded = c if is_loaded(c) else load_checkpoint(c, arch=arch, device="cpu")
        onnx = loaded if loaded.format == ONNX_FORMAT else None
        entries.append(_Entry(_label(loaded.path, entries), loaded.model, loaded.variant, checkpoint_info(loaded),
                              onnx))
    for v in variants:
        v = resolve_variant(v)
        # Size alone needs no weights: a float model on the meta device allocates nothing.
        model = build_edgeface(v, device=run_device(v, "cpu" if timing else "meta"))
        entries.append(_Entry(_label(v, entries), model, v,
                              {"path": None, "variant": v, "parameters": count_parameters(model),
                               "weights": "random (speed and size do not depend on the values)"}))
    return entries


def _row(entry: _Entry, want: torch.device, dtype: str, compile: bool, channels_last: bool, timer) -> dict[str, Any]:
    """One model's size, FLOPs, paper figures and (with ``timer``: measure's timing settings) its speed."""
    notes: list[str] = []
    params = entry.onnx.parameters if entry.onnx is not None else count_parameters(entry.model)
    flops = _flops(entry, notes)
    row = {"checkpoint": entry.label, "variant": entry.variant, "parameters": params, "flops": flops,
           "runtime": ONNXRUNTIME if entry.onnx is not None else TORCH, "int8": entry.int8,
           **_paper_figures(entry.variant, params, flops)}
    placed, run_dtype = _placement(entry.variant, want, dtype, [], entry.onnx)
    threads = torch.get_num_threads() if placed.type == "cpu" else None
    if timer is not None:
        run_model, placed, run_dtype = _prepare(entry.model, entry.variant, want, dtype, compile, channels_last,
                                                notes, entry.onnx)
        row.update(timer(run_model, placed, DTYPES[run_dtype], channels_last=channels_last and entry.onnx is None))
        if entry.onnx is not None:  # what onnxruntime actually ran with, read back from its session
            session = entry.model.session(placed.type == "cuda")
            row["providers"] = list(session.get_providers())
            if placed.type == "cpu":
                threads = session.get_session_options().intra_op_num_threads
        elif not entry.int8:  # .to() is in place: give a caller's model back as it came, and free the device
            entry.model.to("cpu", torch.float32).to(memory_format=torch.contiguous_format)
    row.update(device=str(placed), dtype=run_dtype, channels_last=channels_last and entry.onnx is None,
               compile=compile and entry.onnx is None, threads=threads, notes=notes)
    return row


def _flops(entry: _Entry, notes: list[str]) -> int | None:
    """FLOPs of one face, counted on the float twin where torch's counter cannot see (onnxruntime, int8)."""
    if entry.onnx is not None:  # torch's counter cannot see inside onnxruntime
        flops = model_cost(_float_twin(entry.variant)) if entry.variant in VARIANTS else None
        notes.append(f"{entry.label}: FLOPs counted on the float {entry.variant} torch builds (the graph's "
                     "arithmetic is the same; onnxruntime is invisible to torch's counter)"
                     if flops is not None else
                     f"{entry.label}: no FLOPs (a graph of no EdgeFace variant; torch's counter cannot "
                     "see inside onnxruntime)")
        return flops
    if entry.int8:
        notes.append(f"{entry.variant}: FLOPs counted on its float twin (torch's FLOP counter does not see "
                     "int8 dynamic linear kernels; the arithmetic is the same)")
        return model_cost(_float_twin(entry.variant))
    return model_cost(entry.model, device=next(entry.model.parameters()).device)


def _paper_figures(variant: str, params: int, flops: int | None) -> dict[str, Any]:
    """The EdgeFace paper's parameters and MFLOPs for the variant, and the larger of our two
    deviations from them (in %, signed); nothing for a variant the paper does not list."""
    paper = PAPER.get(variant)
    if not paper:
        return {}
    paper_millions, paper_mflops = paper
    params_deviation = (params / 1e6 - paper_millions) / paper_millions * 100
    flops_deviation = (flops / 1e6 - paper_mflops) / paper_mflops * 100
    return {"paper": {"parameters_m": paper_millions, "mflops": paper_mflops},
            "paper_deviation_pct": max(params_deviation, flops_deviation, key=abs)}


def _against_torch(rows: list[dict]) -> None:
    """Each timed row beside the first torch float row of the same network on the same device:
    ``vs_torch`` = its batch-1 median latency and largest-batch throughput as ratios of that row's."""
    def network(row):
        return str(row["variant"]).removesuffix("_q")

    for row in rows:
        ref = next((r for r in rows if r["runtime"] == TORCH and not r["int8"] and r["dtype"] == "fp32"
                    and network(r) == network(row) and r["device"] == row["device"] and r.get("latency_ms")), None)
        if ref is None or ref is row or not row.get("latency_ms"):
            continue
        top = max(t["batch_size"] for t in row["throughput"])
        ref_top = {t["batch_size"]: t for t in ref["throughput"]}.get(top)
        mine = {t["batch_size"]: t for t in row["throughput"]}[top]
        row["vs_torch"] = {"reference": ref["checkpoint"], "batch_size": top,
                           "latency_b1": row["latency_ms"]["median"] / ref["latency_ms"]["median"],
                           "throughput": mine["images_per_s"] / ref_top["images_per_s"] if ref_top else None}


def _label(name, entries) -> str:
    base = Path(str(name)).stem
    taken = {e.label for e in entries}
    label, i = base, 2
    while label in taken:
        label, i = f"{base}#{i}", i + 1
    return label


def _environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    return env
