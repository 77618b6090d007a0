"""The one prepared script for a GPU machine (under 5 minutes on one H200): the embedding engine
against a bare loop (fp32, bf16 autocast, channels_last) and the matching layer against a bare
matmul + top-k, at gallery scale.

    python3 benchmarks/gpu.py --weights ../shared/assets/edgeface_xxs_fp32_dequantized.pt
    python3 benchmarks/gpu.py --device cpu --probes 20000 --templates 2000 --images 256   # a dry run here

Prints images/s of facediag.embed.Embedder (cold cache) and of a bare forward loop over the
same pixels for each precision, and seconds for protocols.matching.match (the whole pass:
ranks, rivals, false accepts, impostor histogram, top and sample) against a chunked
``(p @ t.T).topk(5)`` over the same embeddings (default 1M probes x 100k templates).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(os.environ.get("FACEDIAG_TEST_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def embedding(weights: Path, device: torch.device, n_images: int, batch: int) -> None:
    from facediag.embed import EmbeddingCache, Embedder, Item
    from facediag.models import load_checkpoint

    model = load_checkpoint(weights).model.to(device).eval()
    pixels = torch.rand(n_images, 3, 112, 112)
    for name, amp, channels_last in (("fp32", False, False), ("bf16 autocast", True, False),
                                     ("bf16 + channels_last", True, True)):
        layout = torch.channels_last if channels_last else torch.contiguous_format
        m = model.to(memory_format=layout)
        with tempfile.TemporaryDirectory() as cache:
            engine = Embedder(m, device, fingerprint=f"gpu-bench-{name}", cache=EmbeddingCache(cache),
                              batch_size=batch, amp=amp, progress=False)
            items = [Item(f"img{i}-{name}", (lambda i=i: pixels[i])) for i in range(n_images)]
            engine.embed(items[:batch])  # warm-up: kernels, cudnn autotune
            t_engine = _timed(lambda: engine.embed(items[batch:]), device)

        def bare():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                for a in range(batch, n_images, batch):
                    x = ((pixels[a:a + batch] - 0.5) / 0.5).to(device, non_blocking=True)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    m(x).float().cpu()

        t_bare = _timed(bare, device)
        n = n_images - batch
        print(f"embedding {name:>22}: engine {n / t_engine:8.0f} img/s, bare loop {n / t_bare:8.0f} img/s, "
              f"ratio {t_bare / t_engine:.2f}")


def matching(device: torch.device, n_probes: int, n_templates: int, dim: int = 512) -> None:
    from facediag.protocols.matching import match

    rng = np.random.default_rng(0)
    templates = rng.standard_normal((n_templates, dim), dtype=np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    own = rng.integers(0, n_templates, n_probes)
    probes = templates[own] + 0.9 * rng.standard_normal((n_probes, dim), dtype=np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)

    def bare():
        t = torch.as_tensor(templates, device=device)
        step = max(1, (1 << 22) // n_templates)
        for a in range(0, n_probes, step):
            (torch.as_tensor(probes[a:a + step], device=device) @ t.T).topk(5, dim=1)

    t_bare = _timed(bare, device)
    t_ours = _timed(lambda: match(probes, templates, own, np.arange(n_probes), thresholds=(0.35,), device=device),
                    device)
    print(f"matching {n_probes:,} x {n_templates:,}: ours {t_ours:.1f} s, bare matmul + top-5 {t_bare:.1f} s, "
          f"ratio {t_ours / t_bare:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ASSETS / "edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--probes", type=int, default=1_000_000)
    ap.add_argument("--templates", type=int, default=100_000)
    args = ap.parse_args()
    if args.images < 2 * args.batch_size:  # one batch warms up; the timed images follow it
        ap.error(f"--images ({args.images}) must be at least twice --batch-size ({args.batch_size})")
    device = torch.device(args.device)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    embedding(args.weights, device, args.images, args.batch_size)
    matching(device, args.probes, args.templates)


if __name__ == "__main__":
    main()
