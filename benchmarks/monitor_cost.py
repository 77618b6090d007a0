"""What one facediag.Monitor call costs a training loop, against a bare forward in the same run.

The held-out set is ORL people 21–40 (gallery: 3 images each, probes: 7 each, at 16 px through
bicubic). The Monitor's first call decodes, degrades and super-resolves it and keeps the pixels;
a later call is what a training loop pays every N steps. It is timed against a bare forward of
the same model over the same held-out tensors (the gallery, the probes' HR images and the
super-resolved probes: every batch the first call fed the model, recorded), in batches of the same size, under
``torch.inference_mode``. Timings are the median of --repeats interleaved runs (bare, then call),
to damp noise from other processes; the ratio is of the medians (the bar: at most 1.2×).

    FACEDIAG_TEST_ASSETS=../shared/assets python3 benchmarks/monitor_cost.py [--device cpu] [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from facediag.device import resolve_device
from facediag.models import load_checkpoint
from facediag.monitor import Monitor

ASSETS = Path(os.environ.get("FACEDIAG_TEST_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


class Recorder(nn.Module):
    """The model, keeping every batch it is fed (the monitor's first call: the held-out tensors)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x):
        self.batches.append(x.detach().clone())
        return self.model(x)


def load_text() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is None:
        return "load average unknown"
    return f"load average {load:.1f}" + (" (busy machine: timings are noisy)" if load > (os.cpu_count() or 1) else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=ASSETS / "edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--orl", type=Path, default=ASSETS / "orl_faces")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_checkpoint(args.weights).model.to(device).train()  # as a training loop holds it
    with tempfile.TemporaryDirectory() as tmp:
        held = Path(tmp) / "held"
        for s in range(21, 41):
            shutil.copytree(args.orl / f"s{s}", held / f"s{s}")
        monitor = Monitor(data=held, vlr_size=16, device=str(device), batch_size=args.batch_size)
        recorder = Recorder(model)
        first = timed(lambda: monitor(recorder, step=0), device)
        # Every image a call embeds (gallery, HR probes, DSR probes), normalised as the call feeds it.
        pixels = torch.cat(recorder.batches)

        def bare():
            model.eval()
            with torch.inference_mode():
                for start in range(0, len(pixels), args.batch_size):
                    model(pixels[start:start + args.batch_size])
            model.train()

        bare_s, call_s = [], []
        for step in range(1, args.repeats + 1):
            bare_s.append(timed(bare, device))
            call_s.append(timed(lambda: monitor(model, step=step), device))
    b, c = statistics.median(bare_s), statistics.median(call_s)
    print(f"ORL people 21-40 at 16 px: {len(pixels)} images per call, batch {args.batch_size}, {device}, "
          f"torch threads {torch.get_num_threads()}, {load_text()}")
    print(f"first call (decodes, degrades, super-resolves, keeps): {first:.2f} s")
    print(f"bare forward over the same tensors: median {b:.3f} s (of {', '.join(f'{t:.3f}' for t in bare_s)})")
    print(f"monitor call:                       median {c:.3f} s (of {', '.join(f'{t:.3f}' for t in call_s)})")
    print(f"ratio monitor / bare: {c / b:.2f}x (bar: 1.2x)")


if __name__ == "__main__":
    main()
