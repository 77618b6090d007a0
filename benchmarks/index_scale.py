"""Data index at scale: index_dataset over a folders tree, a manifest CSV, and build_protocol,
with time and peak RSS, beside a bare loop over the same entries (os.scandir walk / csv.reader).

    python3 benchmarks/index_scale.py [--sizes 10000,100000,1000000] [--workdir DIR]

The tree is ROOT/s<k>/<i>.png with 20 empty files per subject (indexing reads names only, never
pixels), and manifest.csv lists every file once (path,subject). Creating 1M files takes about
half a minute here and deleting them minutes: ``--workdir`` keeps the trees between runs
(created once, never deleted); without it they live in a temporary folder removed at the end.
Each measurement runs in its own process so its peak RSS is that of one operation alone;
"extra" is the peak beyond the process after its imports.

Manifest, 1M rows, on 2 shared cores under a load of ~3.8 (issue 12): before the bulk read
17–23 s (39.7 s on a busier day), after 6.9–10.0 s, csv.reader alone 0.45 s; the rest is one
folder listing per folder (50k here, ~1.5 s) and the per-row validation in one lean loop.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_SUBJECT = 20


def make_tree(base: Path, n: int) -> Path:
    root = base / f"tree_{n}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "faces").mkdir(parents=True)
    with open(root / "manifest.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "subject"])
        for k in range(0, n):
            s, i = divmod(k, PER_SUBJECT)
            folder = root / "faces" / f"s{s}"
            if i == 0:
                folder.mkdir()
            os.close(os.open(folder / f"{i}.png", os.O_CREAT | os.O_WRONLY, 0o644))
            out.writerow([f"faces/s{s}/{i}.png", f"s{s}"])
    done.touch()
    return root


def _bare(kind: str, root: Path) -> int:
    """The least any indexer must do: list every name, or read every CSV row."""
    if kind == "folders":
        n = 0
        with os.scandir(root / "faces") as subs:
            for sub in subs:
                with os.scandir(sub.path) as files:
                    n += sum(1 for f in files if f.is_file())
        return n
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return sum(1 for row in csv.reader(fh)) - 1


def _one(kind: str, root: Path) -> dict:
    from facediag.data.index import index_dataset
    from facediag.data.protocol import build_protocol

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if kind.startswith("bare-"):
        n = _bare(kind[5:], root)
    elif kind == "protocol":  # build_protocol alone, over the folders index
        index = index_dataset(root / "faces", "folders")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        proto = build_protocol(index, gallery_per_subject=3, vlr_size=16)
        n = len(proto.gallery) + len(proto.probes)
    else:
        index = index_dataset(root / "faces" if kind == "folders" else root / "manifest.csv", kind)
        n = len(index.records)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "extra_rss_mb": (peak - base) / 1024, "entries": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="file (= manifest row) counts, comma-separated")
    ap.add_argument("--workdir", type=Path, help="keep the synthetic trees here between runs")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_one(a.child[0], Path(a.child[1]))))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    base = a.workdir or Path(tempfile.mkdtemp(prefix="index_scale_"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        print(f"{'entries':>9} {'operation':<10} {'seconds':>8} {'bare s':>8} {'ratio':>6} {'extra RSS MB':>13}")
        for n in sizes:
            t = time.perf_counter()
            root = make_tree(base, n)
            print(f"# {n} files + manifest ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            for kind in ("folders", "manifest", "protocol"):
                res = _child(kind, root)
                bare = _child(f"bare-{kind}", root) if kind != "protocol" else None
                if bare is not None and bare["entries"] != res["entries"]:
                    raise SystemExit(f"{kind}: indexed {res['entries']} entries, the bare loop saw {bare['entries']}")
                ratio = f"{res['seconds'] / bare['seconds']:.1f}x" if bare else "-"
                bare_s = f"{bare['seconds']:.2f}" if bare else "-"
                print(f"{n:>9} {kind:<10} {res['seconds']:>8.2f} {bare_s:>8} {ratio:>6} {res['extra_rss_mb']:>13.0f}",
                      flush=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def _child(kind: str, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
