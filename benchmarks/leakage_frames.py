"""The exact leakage test on near-duplicate-rich data: PEOPLE people × IMAGES images of one colour each
(1×1 px files with independent noise, so every image of a person is a near-identical candidate of every
other, as frames of one video are); a quarter of each person's images probed, the rest enrolled.

    python3 benchmarks/leakage_frames.py [--people 10] [--images 100] [--baseline-src DIR]

Prints the candidate pairs the uncapped search gives, then find_leaks' leaks, the probes whose
candidates were capped, and its time (fingerprints taken beforehand, as the check has them).
``--baseline-src`` runs an older checkout's find_leaks (a folder holding its ``facediag/``) in a
second process on the same files, for the ratio.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make(people: int, images: int) -> Path:
    root = Path(f"/tmp/leakage_frames_{people}x{images}")
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for p in range(people):
        colour = rng.integers(0, 256, 3)
        for k in range(images):
            path = root / f"{p}_{k}.png"
            if not path.exists():
                pixel = np.clip(colour + rng.normal(0, 2, (1, 1, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixel).save(path)
    return root


def one(people: int, images: int) -> None:
    from facediag.checks.subject_overlap import find_leaks
    from facediag.data.index import Record
    from facediag.data.near_duplicates import candidate_pairs
    from facediag.data.pixels import FingerprintTap, grey_canvas

    root = make(people, images)
    gallery, probes = [], []
    for p in range(people):
        for k in range(images):
            (gallery if k % 4 else probes).append(Record(root / f"{p}_{k}.png", str(p)))
    tap = FingerprintTap()
    a, b = tap.fingerprints(gallery), tap.fingerprints(probes)
    uncapped = len(candidate_pairs(a.thumbs, b.thumbs)[0])
    print(f"{len(gallery)} enrolled, {len(probes)} probes; uncapped candidates {uncapped:,}")
    start = time.perf_counter()
    leaks = find_leaks(a, b, 0.995, grey_canvas)
    print(f"  find_leaks: {len(leaks)} leaks, capped probes {getattr(leaks, 'capped', '-')}, "
          f"{time.perf_counter() - start:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--baseline-src", help="a folder holding an older facediag/ to time beside this one")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.people, args.images)
    runs = [("this checkout", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    for name, src in runs:
        print(name)
        env_path = [src] if src else []
        code = ("import sys; sys.path[:0] = %r; sys.argv = %r; import runpy; runpy.run_path(%r, run_name='__main__')"
                % (env_path, [__file__, "--one", "--people", str(args.people), "--images", str(args.images)],
                   __file__))
        subprocess.run([sys.executable, "-c", code], check=True)


if __name__ == "__main__":
    main()
