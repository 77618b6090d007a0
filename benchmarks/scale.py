"""The matching + identification + verification layer at gallery scale, against a bare loop.

For each size (probes x subjects) on synthetic 512-d embeddings, in a fresh process each:
  ours  = build_evaluation + the chunked matching pass + closed set, accuracy and FAR at the
          threshold, open set, verification metrics (ROC AUC, EER, TAR@FAR) and a threshold
          for a target FAR: everything run-all's identification and verification checks compute;
  bare  = a chunked torch matmul + top-5 over the same embeddings (no metrics at all);
  bare-51 = the same with top-51, what a bare loop would keep to read ranks to 50 (the CMC) from a top list;
and the peak resident memory above what the process held once the embeddings existed. Each side
is timed --repeat times (default 3), interleaved, and the medians are shown.

    python3 benchmarks/scale.py                 # 2k x 500, 20k x 5k, 100k x 10k
    python3 benchmarks/scale.py --sizes 2000x500
    python3 benchmarks/scale.py --sizes 20000x5000 --signal 0.15   # a broken model: ranks counted in full
    python3 benchmarks/scale.py --indexes 200000x1000   # --index: candidate search alone, per index
    python3 benchmarks/scale.py --indexes 1000000x10000 --kinds faiss,faiss-ivf

With --indexes TEMPLATESxPROBES (no --sizes run then): the candidate search alone (top 51 per probe,
what --index replaces) over synthetic templates, one per subject, for exact torch (the chunked
matmul + top-k), faiss flat, IVF and HNSW: build and search time, and recall@1/@10 of each
against the exact torch top-10 over every probe. The embeddings are 512-d Gaussian centres,
near-orthogonal (no cluster structure): a hard case for an approximate index.

Before the scale work (issue 12, same machine): 2k x 500 1.8 s, 20k x 5k 388 s and 10.2 GB,
100k x 10k did not fit in 24 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples the resident set every 5 ms while the block runs."""

    def __enter__(self):
        self.start, self.peak, self._stop = _rss_mb(), _rss_mb(), False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _embeddings(n_probes: int, n_subjects: int, dim: int = 512, seed: int = 0, signal: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_subjects, dim), dtype=np.float32)
    gallery_subjects = np.repeat(np.arange(n_subjects), 2)
    gallery = centres[gallery_subjects] + 0.8 * rng.standard_normal((2 * n_subjects, dim), dtype=np.float32)
    probe_subjects = rng.integers(0, int(n_subjects * 1.05), n_probes)  # ~5 % not enrolled: open set
    probes = rng.standard_normal((n_probes, dim), dtype=np.float32)
    enrolled = probe_subjects < n_subjects
    probes[enrolled] += signal * centres[probe_subjects[enrolled]]
    names = np.char.add("s", np.arange(int(n_subjects * 1.05) + 1).astype(str))
    return gallery, names[gallery_subjects], probes, names[probe_subjects]


def _ours(gallery, gallery_subjects, probes, probe_subjects) -> dict:
    from facediag.metrics.identification import closed_set_from, open_set_from, threshold_for_far
    from facediag.metrics.verification import verification_metrics
    from facediag.protocols.gallery import build_evaluation, threshold_accuracy_at

    ev = build_evaluation(gallery, gallery_subjects, probes, probe_subjects, thresholds=(0.35,))
    s = ev.matching.summary()
    cs = closed_set_from(s, ev.probe_subjects)
    at = threshold_accuracy_at(ev, 0.35)
    osr = open_set_from(s, threshold=0.35)
    v = verification_metrics(ev.genuine_scores(), ev.impostors)
    ft = threshold_for_far(ev.impostors, 1e-3)
    return {"rank1": cs.rank_accuracy[1], "far_at_0.35": at.false_accept_rate, "open_set_dir": osr.dir,
            "eer": v.eer, "auc": v.auc, "eer_bound": v.eer_error_bound, "auc_bound": v.auc_error_bound,
            "threshold_far_1e-3": ft.threshold, "impostors_exact": ev.impostors.exact, "n_impostor": ev.impostors.n}


def _bare(gallery, probes, k: int = 5, chunk_cells: int = 1 << 23) -> None:
    import torch

    g = torch.nn.functional.normalize(torch.from_numpy(gallery), dim=1)
    p = torch.nn.functional.normalize(torch.from_numpy(probes), dim=1)
    step = max(1, chunk_cells // len(g))
    for a in range(0, len(p), step):
        (p[a:a + step] @ g.T).topk(k, dim=1)


def one(n_probes: int, n_subjects: int, repeat: int = 3, signal: float = 1.0) -> dict:
    gallery, gallery_subjects, probes, probe_subjects = _embeddings(n_probes, n_subjects, signal=signal)
    # The bare loop matches the probes against one template per subject, as ours does.
    templates = gallery.reshape(n_subjects, 2, -1).mean(1)
    k = min(51, n_subjects)  # a top list long enough for ranks to 50, as the CMC reports them
    # Imports, torch's first kernels and its thread pool start outside the timings, for both.
    _bare(templates[:64], probes[:64])
    _ours(*_embeddings(64, 32, seed=1))
    times = {"bare": [], "bare_k": [], "ours": []}
    extra = 0.0
    for _ in range(repeat):  # interleaved, so a busy spell of the machine falls on every side
        for name, kk in (("bare", 5), ("bare_k", k)):
            t0 = time.perf_counter()
            _bare(templates, probes, kk)
            times[name].append(time.perf_counter() - t0)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            figures = _ours(gallery, gallery_subjects, probes, probe_subjects)
            times["ours"].append(time.perf_counter() - t0)
        extra = max(extra, mem.peak - mem.start)
    median = {name: float(np.median(v)) for name, v in times.items()}
    return {"probes": n_probes, "subjects": n_subjects, "ours_s": median["ours"], "bare_s": median["bare"],
            "bare_k_s": median["bare_k"], "k": k, "repeat": repeat, "extra_rss_mb": extra,
            "embeddings_mb": (gallery.nbytes + probes.nbytes) / 2 ** 20, **figures}


def indexes(n_templates: int, n_probes: int, kinds=("faiss", "faiss-ivf", "faiss-hnsw")) -> list[dict]:
    """Build and search seconds and recall@1/@10 of each --index for the top RANK_LIMIT + 1."""
    from facediag.metrics.identification import l2_normalize
    from facediag.protocols.index import build_index, exact_top, recall
    from facediag.protocols.matching import RANK_LIMIT

    rng = np.random.default_rng(0)
    templates = l2_normalize(rng.standard_normal((n_templates, 512), dtype=np.float32))
    own = rng.integers(0, n_templates, n_probes)
    probes = l2_normalize(templates[own] + 0.04 * rng.standard_normal((n_probes, 512), dtype=np.float32))
    k = RANK_LIMIT + 1
    t0 = time.perf_counter()
    truth = exact_top(probes, templates, k)
    rows = [{"index": "exact (torch)", "build_s": 0.0, "search_s": time.perf_counter() - t0, "params": {},
             "recall": recall(truth, truth[:, :10])}]
    for kind in kinds:
        t0 = time.perf_counter()
        index, params = build_index(kind, templates, k)
        built = time.perf_counter() - t0
        ids = index.search(probes, k)[1]
        rows.append({"index": kind, "build_s": built, "search_s": time.perf_counter() - t0 - built, "params": params,
                     "recall": recall(ids, truth[:, :10])})
        del index
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000x500,20000x5000,100000x10000", help="probes x subjects, comma-separated")
    ap.add_argument("--indexes", metavar="TEMPLATESxPROBES", help="time the candidate search of each --index instead")
    ap.add_argument("--kinds", default="faiss,faiss-ivf,faiss-hnsw", help="the faiss indexes --indexes times")
    ap.add_argument("--repeat", type=int, default=3, help="timings per side, interleaved; medians are shown")
    ap.add_argument("--signal", type=float, default=1.0, help="probe = signal x its person's centre + noise: 1 a "
                    "healthy model (rank-1 1.0), 0.15 a broken fine-tune (rank-1 about 0.1: most ranks are above "
                    "the short top list, so rows are counted in full)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.indexes:
        n_t, n_p = (int(x) for x in args.indexes.split("x"))
        print(f"{n_t:,} templates x {n_p:,} probes, 512-d, top 51 per probe")
        print(f"{'index':<14} {'build s':>8} {'search s':>9} {'recall@1':>9} {'recall@10':>10}  parameters")
        for r in indexes(n_t, n_p, args.kinds.split(",")):
            print(f"{r['index']:<14} {r['build_s']:8.2f} {r['search_s']:9.2f} {r['recall'][1]:9.4f} "
                  f"{r['recall'][10]:10.4f}  {', '.join(f'{k}={v}' for k, v in r['params'].items())}", flush=True)
        return
    if args.one:
        p, s = (int(x) for x in args.one.split("x"))
        print(json.dumps(one(p, s, args.repeat, args.signal)))
        return
    print(f"{'probes x subjects':>18} {'ours s':>8} {'bare s':>8} {'ratio':>6} {'bare-51 s':>9} {'ratio':>6} "
          f"{'extra RSS':>10} {'embeddings':>10}  impostors")
    for size in args.sizes.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", size, "--repeat", str(args.repeat),
                              "--signal", str(args.signal)],
                             capture_output=True, text=True,
                             env=os.environ | {"PYTHONPATH": os.getcwd()})
        if out.returncode:
            print(f"{size:>18}  failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        kind = "exact" if r["impostors_exact"] else f"summarised (EER ±{r['eer_bound']:.1e}, AUC ±{r['auc_bound']:.1e})"
        print(f"{r['probes']:>8,} x {r['subjects']:<8,} {r['ours_s']:8.2f} {r['bare_s']:8.2f} "
              f"{r['ours_s'] / r['bare_s']:5.2f}x {r['bare_k_s']:9.2f} {r['ours_s'] / r['bare_k_s']:5.2f}x "
              f"{r['extra_rss_mb']:8.0f} MB {r['embeddings_mb']:8.0f} MB  "
              f"{r['n_impostor']:,} {kind}; rank-1 {r['rank1']:.3f}, EER {r['eer']:.4f}")


if __name__ == "__main__":
    main()
