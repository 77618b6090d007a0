"""What compare's subject-bootstrap of EER and TAR@FAR costs, against the bare loop.

The bare loop is what one would write: per resample, draw subjects with replacement, gather
their genuine and impostor scores, recompute the metrics (facediag's own
verification_metrics). facediag instead weights each subject by how often it was drawn and
finds each resample's EER and TAR@FAR by binary search over per-subject counts
(metrics/significance.py). Both give the same numbers on the same draws (checked here on the
first resamples, and in tests/metrics/test_significance.py).

    python3 benchmarks/bootstrap_speed.py [--subjects 200] [--images 10] [--resamples 1000]

Synthetic scores: every pair of images of ``subjects`` people, genuine pairs shifted up.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from facediag.metrics.significance import _draws, bootstrap_verification_stats
from facediag.metrics.verification import verification_metrics


def pair_scores(subjects: int, images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    who = np.repeat(np.arange(subjects), images)
    a, b = np.triu_indices(len(who), 1)
    same = who[a] == who[b]
    scores = rng.normal(0.05, 0.15, len(a)) + 0.45 * same
    return scores[same], scores[~same], who[a][same], who[a][~same]


def bare_resample(g, i, gs, is_, counts, fars):
    """One resample the plain way: repeat each drawn subject's pairs, recompute."""
    gi = np.repeat(np.arange(len(g)), counts[gs])
    ii = np.repeat(np.arange(len(i)), counts[is_])
    v = verification_metrics(g[gi], i[ii], fars=fars)
    return v.eer, [t.tar for t in v.tar_at_far]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--bare-resamples", type=int, default=5, help="the bare loop is timed on this many")
    args = ap.parse_args()
    fars = (0.1, 0.01, 0.001)
    g, i, gs, is_ = pair_scores(args.subjects, args.images)
    # Zero-padded names sort like the indices, so draw row r's count k is subject k's.
    names = np.array([f"s{k:05d}" for k in range(args.subjects)])
    print(f"{args.subjects} subjects x {args.images} images: {len(g):,} genuine + {len(i):,} impostor pairs; "
          f"EER and TAR@FAR {', '.join(map(str, fars))}")

    t0 = time.perf_counter()
    stats = bootstrap_verification_stats(g, i, names[gs], names[is_], fars, n_boot=args.resamples, seed=0)
    fast = (time.perf_counter() - t0) / args.resamples

    draws = _draws(args.subjects, args.bare_resamples, 0)  # the same draws as stats[1:]
    t0 = time.perf_counter()
    bare = [bare_resample(g, i, gs, is_, c, fars) for c in draws]
    slow = (time.perf_counter() - t0) / args.bare_resamples

    agree = all(np.isclose(eer, stats["eer"][r + 1]) and
                all(np.isclose(t, stats[f"tar_at_far_{f:g}"][r + 1]) for t, f in zip(tars, fars))
                for r, (eer, tars) in enumerate(bare))
    print(f"bare loop      {slow * 1e3:9.1f} ms per resample ({args.bare_resamples} timed)")
    print(f"facediag       {fast * 1e3:9.1f} ms per resample ({args.resamples} timed)")
    print(f"speed-up       {slow / fast:9.1f}x; {args.resamples} resamples: {fast * args.resamples:.1f} s "
          f"instead of ~{slow * args.resamples:.0f} s")
    print(f"same numbers on the first {args.bare_resamples} resamples: {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
