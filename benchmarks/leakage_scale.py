"""Leakage candidate search at scale: the compact 8×8 fingerprints and chunked search
(facediag.data.near_duplicates.candidate_pairs) against the all-pairs correlation of 32×32
thumbnails the check used before, on synthetic fingerprints (no images needed).

    python3 benchmarks/leakage_scale.py [--sizes 10000,100000] [--baseline-max 20000]

Prints time and peak RSS of each, and the ratio where the all-pairs baseline fits
(G × P float64 scores: 10k × 10k is 0.8 GB; 100k × 100k would be 80 GB, so it is skipped).
Each size runs in its own process so that peak RSS is that of one search alone.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _unit(rng, n, d, dtype):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def _one(kind: str, n: int) -> dict:
    rng = np.random.default_rng(0)
    if kind == "index":
        from facediag.data.near_duplicates import candidate_pairs

        g, p = _unit(rng, n, 64, np.float16), _unit(rng, n, 64, np.float16)
        p[:8] = g[:8]  # planted copies: must all come back
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        ra, rb, _ = candidate_pairs(g, p)
        found = set(zip(ra.tolist(), rb.tolist()))
        recall = sum((k, k) in found for k in range(8)) / 8
    else:  # the check before: float64 32×32 thumbnails, every gallery × probe score at once
        g, p = _unit(rng, n, 1024, np.float64), _unit(rng, n, 1024, np.float64)
        p[:8] = g[:8]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        corr = g @ p.T
        found = set(zip(*map(np.ndarray.tolist, np.nonzero(corr >= 0.9))))
        recall = sum((k, k) in found for k in range(8)) / 8
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "extra_rss_mb": (peak - base) / 1024, "peak_rss_mb": peak / 1024,
            "fingerprint_mb": (g.nbytes + p.nbytes) / 2**20, "candidates": len(found), "recall": recall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="gallery = probe counts, comma-separated")
    ap.add_argument("--baseline-max", type=int, default=20000, help="largest size the all-pairs baseline runs at")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_one(a.child[0], int(a.child[1]))))
        return
    print(f"{'gallery × probes':>18} | {'search':>22} | {'fingerprints':>12} | {'extra RSS':>10} | "
          f"{'candidates':>10} | recall")
    for n in (int(s) for s in a.sizes.split(",")):
        runs = {}
        for kind in ("index", "all-pairs") if n <= a.baseline_max else ("index",):
            out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], capture_output=True,
                                 text=True, check=True).stdout
            runs[kind] = r = json.loads(out)
            label = "8×8 chunked (facediag)" if kind == "index" else "32×32 all pairs (before)"
            print(f"{n:>8,} × {n:<8,} | {label:>22} | {r['fingerprint_mb']:>9.1f} MB | {r['extra_rss_mb']:>7.0f} MB | "
                  f"{r['candidates']:>10,} | {r['recall']:.2f}   {r['seconds']:.2f} s")
        if "all-pairs" in runs:
            i, b = runs["index"], runs["all-pairs"]
            print(f"{'':>18}   time ratio (facediag / all pairs) {i['seconds'] / b['seconds']:.2f}, "
                  f"extra RSS ratio {max(i['extra_rss_mb'], 1) / max(b['extra_rss_mb'], 1):.3f}")
        else:
            print(f"{'':>18}   all pairs skipped: its G × P float64 scores alone would be {n * n * 8 / 2**30:,.0f} GiB")


if __name__ == "__main__":
    main()
