"""IJB-C-sized 1:1 template scoring in bounded memory: 23k templates, 15.6M template pairs.

Synthetic 512-d template features and pairs (about 1 % genuine, as IJB-C's 19.6k of 15.6M),
through protocols.templates.score_pairs (chunked cosines into the impostor stream) and
verification_metrics at FAR 1e-6 … 1e-1; time and peak resident memory above the features
and pair lists, against a bare chunked dot product over the same pairs.

    python3 benchmarks/ijb_scale.py [--templates 23000] [--pairs 15600000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from scale import PeakRSS  # benchmarks/scale.py: the resident-set sampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--templates", type=int, default=23_000)
    ap.add_argument("--pairs", type=int, default=15_600_000)
    args = ap.parse_args()
    from facediag.metrics.verification import verification_metrics
    from facediag.protocols.templates import PAIR_CHUNK, score_pairs

    rng = np.random.default_rng(0)
    # Templates come in twins (2k, 2k+1): two templates of one person, about 1.25 % of the pairs.
    people = rng.standard_normal((args.templates // 2, 512), dtype=np.float32)
    feats = np.repeat(people, 2, axis=0) + 2.5 * rng.standard_normal((args.templates // 2 * 2, 512), dtype=np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    n_t = len(feats)
    ids = np.arange(n_t) * 7 + 3  # template ids as the metadata gives them
    t1 = rng.integers(0, n_t, args.pairs)
    t2 = rng.integers(0, n_t, args.pairs)
    label = rng.random(args.pairs) < 0.0125
    t2[label] = t1[label] ^ 1
    label = (t1 // 2) == (t2 // 2)
    keep = t1 != t2
    t1, t2, label = t1[keep], t2[keep], label[keep]
    chunk = PAIR_CHUNK
    t0 = time.perf_counter()
    for s in range(0, len(t1), chunk):
        np.einsum("ij,ij->i", feats[t1[s:s + chunk]], feats[t2[s:s + chunk]])
    bare = time.perf_counter() - t0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        scored = score_pairs(feats, ids, ids[t1], ids[t2], label)
        v = verification_metrics(scored.genuine, scored.impostors, fars=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1))
        ours = time.perf_counter() - t0
    print(f"{n_t:,} templates, {len(t1):,} pairs ({len(scored.genuine):,} genuine): "
          f"ours {ours:.1f} s, bare dot products {bare:.1f} s ({ours / bare:.2f}x), "
          f"+{mem.peak - mem.start:.0f} MB peak RSS; impostors {'exact' if scored.impostors.exact else 'summarised'}, "
          f"EER {v.eer:.4f} (±{v.eer_error_bound:.1e})")
    for p in v.tar_at_far:
        print(f"  TAR@FAR {p.far:g}: " + (f"{p.tar:.4f} (threshold {p.threshold:.4f}, {p.n_impostor:,} impostor pairs)"
                                          if p.supported else f"not reported: {p.reason}"))


if __name__ == "__main__":
    main()
