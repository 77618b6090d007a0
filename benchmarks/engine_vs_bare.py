"""The embedding engine and run-all against bare PyTorch loops, side by side in one run.

Prints images/s of
  - the engine (facediag.embed.Embedder: background decoding, inference_mode, cache writes),
    cold (empty cache) and warm (a fresh engine over the same cache: nothing is embedded),
  - a bare loop a user would write: decode a batch, normalise, forward (same model, batch size),
  - a bare forward only (pixels decoded beforehand): the model's ceiling,
over ORL repeated to --images images (each repeat under its own cache key, so nothing is
deduplicated), and the ratios. Then run-all's wall time (cold and warm cache) against a bare
decode + degrade + forward over the same images run-all embeds (gallery, probes' HR, 16 px
probes), on ORL and on ORL × 5 (--run-all-copies): the checks' own work is mostly fixed-size
samples (72 faces scored with altered inputs, 32 faces detected), so its share shrinks as data grows.
Each timing is the best of --repeats interleaved runs, to damp noise from other processes.

    python3 benchmarks/engine_vs_bare.py --weights ../shared/assets/edgeface_xxs_fp32_dequantized.pt \
        --data ../shared/assets/orl_faces --images 2000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageChops, ImageOps

from facediag.data.images import downsample, load_face, normalize
from facediag.data.index import file_digest, index_dataset
from facediag.data.protocol import build_protocol
from facediag.device import resolve_device
from facediag.embed import EmbeddingCache, Embedder, Item
from facediag.models import load_checkpoint

ASSETS = Path(os.environ.get("FACEDIAG_TEST_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_text() -> str:
    """The 1-minute load average: timings taken beside other busy processes are noisy, so say so."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    load = os.getloadavg()[0]
    busy = " (busy machine: timings are noisy)" if load > (os.cpu_count() or 1) else ""
    return f"load average {load:.1f}{busy}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, paths, device, bs):
    """Decode, normalise, forward: the loop without any engine."""
    with torch.inference_mode():
        for s in range(0, len(paths), bs):
            x = torch.stack([load_face(p) for p in paths[s:s + bs]])
            model(normalize(x).to(device)).float().cpu()
    sync(device)


def bare_forward(model, pixels, device, bs):
    """Forward only, over pixels already decoded into memory."""
    with torch.inference_mode():
        for s in range(0, len(pixels), bs):
            model(normalize(pixels[s:s + bs]).to(device)).float().cpu()
    sync(device)


def engine_run(model, device, items, bs, cache_root, sha, expect_calls=None):
    emb = Embedder(model, device, fingerprint=sha, cache=EmbeddingCache(cache_root), batch_size=bs, progress=False)
    emb.embed(items)
    sync(device)
    if expect_calls is not None and emb.forward_calls != expect_calls:
        raise SystemExit(f"engine made {emb.forward_calls} forward calls, expected {expect_calls}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ASSETS / "edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--data", type=Path, default=ASSETS / "orl_faces")
    ap.add_argument("--images", type=int, default=2000, help="ORL repeated to this many images")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's). On a machine shared with "
                    "other busy processes, 1 avoids OpenMP threads waiting on each other")
    ap.add_argument("--skip-run-all", action="store_true")
    ap.add_argument("--run-all-copies", default="1,5", help="run-all over ORL and over ORL made this many times "
                    "larger by distinct copies of every person (comma-separated; 1 = ORL as it is)")
    args = ap.parse_args(argv)
    try:
        args.run_all_copies = sorted({int(c) for c in args.run_all_copies.split(",")})
    except ValueError:
        ap.error(f"--run-all-copies: comma-separated whole numbers, not {args.run_all_copies!r}")
    if not all(1 <= c <= len(_COPIES) for c in args.run_all_copies):
        ap.error(f"--run-all-copies: each between 1 and {len(_COPIES)} (the distinct copies there are)")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    loaded = load_checkpoint(args.weights, device=device)
    model = loaded.model.to(device).eval()
    paths = sorted(str(r.path) for r in index_dataset(args.data).hr)
    reps = -(-args.images // len(paths))
    work = (paths * reps)[: args.images]
    keys = [f"bench{i // len(paths)}:hr:{file_digest(p)}" for i, p in enumerate(work)]
    items = [Item(k, (lambda p=p: load_face(p))) for k, p in zip(keys, work)]
    bs = args.batch_size
    n_batches = -(-len(items) // bs)
    print(f"{len(work)} images (ORL × {reps}), batch {bs}, device {device}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs; model {loaded.variant}; best of {args.repeats}; {load_text()}")

    pixels = torch.stack([load_face(p) for p in paths])
    pixels = pixels.repeat(reps, 1, 1, 1)[: len(work)]
    bare_forward(model, pixels[: 2 * bs], device, bs)  # warm-up: first calls allocate and pick kernels

    # Interleaved (bare, forward, cold, warm) × repeats, best of each: a burst of load from other
    # processes then hits every kind alike instead of whichever happened to run during it.
    runs = {"bare": [], "forward": [], "cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cache = Path(tmp, f"cache{r}")
            runs["bare"].append(timed(lambda: bare_loop(model, work, device, bs)))
            runs["forward"].append(timed(lambda: bare_forward(model, pixels, device, bs)))
            runs["cold"].append(timed(lambda: engine_run(model, device, items, bs, cache, loaded.sha256, n_batches)))
            runs["warm"].append(timed(lambda: engine_run(model, device, items, bs, cache, loaded.sha256, 0)))
    t_bare, t_fwd, t_cold, t_warm = (min(runs[k]) for k in ("bare", "forward", "cold", "warm"))

    n = len(work)
    print("\nembedding engine vs bare PyTorch")
    print(f"  bare loop (decode + forward)    {n / t_bare:9.1f} img/s  ({t_bare:6.2f} s)")
    print(f"  bare forward only (pre-decoded) {n / t_fwd:9.1f} img/s  ({t_fwd:6.2f} s)")
    print(f"  engine, cold cache              {n / t_cold:9.1f} img/s  ({t_cold:6.2f} s)")
    print(f"  engine, warm cache              {n / t_warm:9.1f} img/s  ({t_warm:6.2f} s)")
    print(f"  engine cold / bare loop         {t_bare / t_cold:9.2f} ×   (target ≥ 0.9)")
    print(f"  engine cold / bare forward only {t_fwd / t_cold:9.2f} ×")
    print(f"  warm / cold speed-up            {t_cold / t_warm:9.1f} ×   (target ≥ 20)")

    if not args.skip_run_all:
        with tempfile.TemporaryDirectory() as tmp:
            for copies in args.run_all_copies:
                data = args.data if copies == 1 else copy_people(args.data, Path(tmp, f"x{copies}"), copies)
                run_all_vs_bare(args, data, copies, loaded, model, device, bs)
    print(f"\n{load_text()} at the end")


# Copy k of a person: mirrored, and for k >= 2 rolled 6 px (right or down). No copy is a
# near-duplicate of another (subject-overlap finds none: a mirror or a 6-px roll is beyond its
# ±2 px test) and every file has its own content, so nothing is deduplicated or served twice.
_COPIES = (lambda im: im, ImageOps.mirror,
           lambda im: ImageChops.offset(im, 6, 0), lambda im: ImageChops.offset(ImageOps.mirror(im), 6, 0),
           lambda im: ImageChops.offset(im, 0, 6), lambda im: ImageChops.offset(ImageOps.mirror(im), 0, 6))


def copy_people(src: Path, dst: Path, copies: int) -> Path:
    """ORL made ``copies`` times larger: person s becomes s_c0 ... s_c{copies-1}, lossless PGM files."""
    for person in sorted(p for p in src.iterdir() if p.is_dir()):
        for k in range(copies):
            out = dst / f"{person.name}_c{k}"
            out.mkdir(parents=True)
            for f in sorted(person.iterdir()):
                if f.suffix.lower() == ".pgm":
                    _COPIES[k](Image.open(f)).save(out / f.name)
    return dst


def run_all_vs_bare(args, data, copies, loaded, model, device, bs):
    """run-all (every check of the default suite) vs one bare forward over the images it embeds."""
    from facediag.runner import run_all

    index = index_dataset(data)
    proto = build_protocol(index, vlr_size=16)
    n_images = len(proto.gallery) + 2 * len(proto.probes)

    def bare():
        # Decoding included, as run-all decodes too: the whole bare pipeline from files to embeddings.
        g = torch.stack([load_face(r.path) for r in proto.gallery])
        h = torch.stack([load_face(p.hr.path) for p in proto.probes])
        low = F.interpolate(downsample(h, 16), size=(112, 112), mode="bicubic", align_corners=False).clamp(0, 1)
        bare_forward(model, torch.cat([g, h, low]), device, bs)

    times_bare, times_cold, times_warm, reports = [], [], [], []
    for _ in range(args.repeats):  # interleaved, as above
        times_bare.append(timed(bare))
        with tempfile.TemporaryDirectory() as cache:
            opts = dict(model=loaded, cache_dir=cache, progress=False, device=str(device), batch_size=bs)
            times_cold.append(timed(lambda: reports.append(run_all(data=data, **opts))))
            times_warm.append(timed(lambda: run_all(data=data, **opts)))
    t_bare, t_cold, t_warm = min(times_bare), min(times_cold), min(times_warm)
    name = "ORL" if copies == 1 else f"ORL × {copies} ({len(index.hr)} images)"
    leaks = next(r.metrics for r in reports[0].results if r.name == "subject-overlap")
    own = sorted(((r.seconds, r.name) for r in reports[-1].results), reverse=True)
    print(f"\nrun-all (default suite, {name}, 16 px probes) vs a bare forward over the same {n_images} images")
    print(f"  bare: decode + degrade + forward {t_bare:7.2f} s")
    print(f"  run-all, cold cache              {t_cold:7.2f} s   ratio {t_cold / t_bare:5.2f} × bare")
    print(f"  run-all, warm cache              {t_warm:7.2f} s   ratio {t_warm / t_bare:5.2f} × bare")
    print(f"  (cold runs {', '.join(f'{t:.2f}' for t in times_cold)} s, median {statistics.median(times_cold):.2f} s;"
          f" bare runs {', '.join(f'{t:.2f}' for t in times_bare)} s)")
    print("  last cold run by check (the first one asked for embeddings makes them): "
          + ", ".join(f"{n} {t:.2f} s" for t, n in own[:5]))
    print(f"  leaked images found: {leaks['leaked_identical']} identical, "
          f"{leaks['leaked_near_duplicate']} near-duplicate")


if __name__ == "__main__":
    sys.exit(main())
