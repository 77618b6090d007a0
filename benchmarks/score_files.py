"""Score files at scale: writing and reading back each format, with the peak memory.

    python3 benchmarks/score_files.py [--probes 3000] [--templates 1500] [--formats openbr,bob4]

Synthetic 64-d embeddings (a template per identity, each probe a noisy copy of one) scored as
`facediag scores` scores them, written through facediag.scores.write_scores a block of probes at a
time, then read back by facediag.bench.scores.bench_scores. Each step runs in a child process, so
its peak resident memory (ru_maxrss) is its own. Above 4.2M impostor comparisons the reader keeps
a summary and reads the file twice (metrics.streaming.EXACT_LIMIT).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = {"bob4": "s.txt", "bob5": "s5.txt", "bob-csv": "s.csv", "openbr": "s.mtx", "pyeer": "lists"}


def blocks(probes: int, templates: int, seed: int = 0):
    import numpy as np

    from facediag.scores import ScoreBlock

    rng = np.random.default_rng(seed)
    t = rng.normal(size=(templates, 64)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    subjects = np.array([f"id{i}" for i in range(templates)])
    step = max(1, (1 << 20) // templates)
    for a in range(0, probes, step):
        rows = np.arange(a, min(probes, a + step))
        p = t[rows % templates] + 1.6 * rng.normal(size=(len(rows), 64)).astype(np.float32) / 8
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        yield ScoreBlock([f"probe/{i}.png" for i in rows], subjects[rows % templates], p @ t.T)


def child(step: str, fmt: str, folder: str, probes: int, templates: int) -> None:
    import numpy as np

    out = Path(folder) / NAMES[fmt]
    start = time.perf_counter()
    if step == "write":
        from facediag.scores import write_scores

        _, n = write_scores(out, fmt, np.array([f"id{i}" for i in range(templates)]), probes,
                            blocks(probes, templates))
        extra = {"comparisons": n, "bytes": sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())}
    else:
        from facediag.bench.scores import bench_scores

        row = bench_scores(out, fmt).rows[0]
        extra = {"eer": round(row["eer"], 5), "rank1": round(row["identification"]["rank1"], 4)
                 if row["identification"] else None}
    print(json.dumps({"seconds": round(time.perf_counter() - start, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=3000)
    ap.add_argument("--templates", type=int, default=1500)
    ap.add_argument("--formats", default="openbr,bob4")
    ap.add_argument("--child", nargs=3, metavar=("STEP", "FORMAT", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.probes, args.templates)
        return
    print(f"{args.probes} probes × {args.templates} templates = {args.probes * args.templates:,} comparisons")
    for fmt in args.formats.split(","):
        with tempfile.TemporaryDirectory() as folder:
            for step in ("write", "read"):
                res = subprocess.run([sys.executable, __file__, "--probes", str(args.probes), "--templates",
                                      str(args.templates), "--child", step, fmt, folder],
                                     capture_output=True, text=True, check=True)
                print(f"{fmt:8s} {step:5s} {res.stdout.strip()}")


if __name__ == "__main__":
    main()
