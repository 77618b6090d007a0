"""The embedding store (facediag.cache, one SQLite file) against the old layout (one .npy per
image), side by side in one run: put and get throughput in batches, and the files each leaves.

The old layout is re-implemented here as it was (``<root>/<ns>/<xx>/<sha256(key)>.npy``, each
written atomically via a temp file and rename, read with np.load), so the comparison stays
possible after it left the package. Also printed: a bare loop of the same puts/gets against a
plain dict (the ceiling of any store), and the per-image round trip of the new store (get/put
one key at a time) against its batched calls. Each timing is the best of --repeats runs.

    python3 benchmarks/cache_store.py [--vectors 20000] [--dim 512] [--batch 64] [--repeats 2]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facediag.cache import EmbeddingCache
from facediag.io import atomic_write_bytes

NS = hashlib.sha256(b"benchmark-model|preprocessing").hexdigest()[:32]


class NpyPerFile:
    """The layout facediag used before the store: one small .npy per (namespace, key)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / NS / digest[:2] / f"{digest}.npy"

    def put_many(self, vectors: dict) -> None:
        for key, vec in vectors.items():
            buf = io.BytesIO()
            np.save(buf, vec, allow_pickle=False)
            atomic_write_bytes(self._path(key), buf.getvalue(), durable=False)

    def get_many(self, keys) -> dict:
        out = {}
        for key in keys:
            try:
                out[key] = np.load(self._path(key), allow_pickle=False)
            except (OSError, ValueError):
                pass
        return out


def batches(keys, size):
    return [keys[s:s + size] for s in range(0, len(keys), size)]


def file_stats(root: Path) -> tuple[int, int, int]:
    """Files, their bytes, and the disk they take (allocated blocks, as du counts)."""
    files = size = blocks = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files, size, blocks = files + 1, size + st.st_size, blocks + st.st_blocks * 512
    return files, size, blocks


def best(fn, repeats, setup):
    """The fastest of ``repeats`` runs of fn(state), each on a fresh state from setup()."""
    times = []
    for _ in range(repeats):
        state = setup()
        t0 = time.perf_counter()
        fn(state)
        times.append(time.perf_counter() - t0)
    return min(times), state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vectors", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--root", type=Path, default=None,
                    help="Write under this folder and keep the files (default: a temp folder, removed)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    keys = [f"hr:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(args.vectors)]
    vectors = {k: rng.standard_normal(args.dim).astype(np.float32) for k in keys}
    put_batches = [{k: vectors[k] for k in b} for b in batches(keys, args.batch)]
    get_batches = batches(keys, args.batch)
    n = args.vectors
    base = Path(tempfile.mkdtemp(prefix="cache-bench-", dir=args.root))
    runs = iter(range(10 ** 6))

    def fresh(kind):
        return lambda: (kind(base / f"{kind.__name__}-{next(runs)}"))

    def put_all(store):
        for b in put_batches:
            store.put_many(NS, b) if isinstance(store, EmbeddingCache) else store.put_many(b)

    def get_all(store):
        got = 0
        for b in get_batches:
            got += len(store.get_many(NS, b) if isinstance(store, EmbeddingCache) else store.get_many(b))
        assert got == n, f"{type(store).__name__} returned {got} of {n}"

    print(f"{n:,} vectors of {args.dim} floats, batches of {args.batch}, best of {args.repeats}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; writing under {base}", flush=True)

    t_dict_put, d = best(lambda s: [s.update(b) for b in put_batches], args.repeats, dict)
    t0 = time.perf_counter()
    assert sum(len([k for k in b if k in d]) for b in get_batches) == n
    t_dict_get = time.perf_counter() - t0

    t_old_put, old = best(put_all, args.repeats, fresh(NpyPerFile))
    t_old_get, _ = best(get_all, args.repeats, lambda: old)
    t_new_put, new = best(put_all, args.repeats, fresh(EmbeddingCache))
    t_new_get, _ = best(get_all, args.repeats, lambda: EmbeddingCache(new.root))  # a fresh process's view

    # A later run: entries older than TOUCH_AFTER_S get their last-used time refreshed as they are read.
    t_touch_get, _ = best(get_all, 1, lambda: EmbeddingCache(new.root, clock=lambda: time.time() + 7 * 86400))

    sample = keys[: min(n, 2000)]  # the per-image round trip: one key per call
    one = EmbeddingCache(base / "one-at-a-time")
    t0 = time.perf_counter()
    for k in sample:
        one.put(NS, k, vectors[k])
    t_one_put = (time.perf_counter() - t0) * n / len(sample)
    t0 = time.perf_counter()
    for k in sample:
        one.get(NS, k)
    t_one_get = (time.perf_counter() - t0) * n / len(sample)

    old_files, old_bytes, old_disk = file_stats(old.root)
    new_files, new_bytes, new_disk = file_stats(new.root)
    rate = lambda t: f"{n / t:>11,.0f}/s"  # noqa: E731
    print(f"\n{'':34}{'put':>13}{'get':>13}")
    print(f"{'bare dict (ceiling)':34}{rate(t_dict_put)}{rate(t_dict_get)}")
    print(f"{'old: one .npy per image':34}{rate(t_old_put)}{rate(t_old_get)}")
    print(f"{'new: SQLite store, batched':34}{rate(t_new_put)}{rate(t_new_get)}")
    print(f"{'new: get a week later (touches)':34}{'':>13}{rate(t_touch_get)}")
    print(f"{'new: one key per call (est.)':34}{rate(t_one_put)}{rate(t_one_get)}")
    print(f"\nnew / old speed:            put {t_old_put / t_new_put:.1f}x, get {t_old_get / t_new_get:.1f}x")
    print(f"batched / one key per call: put {t_one_put / t_new_put:.1f}x, get {t_one_get / t_new_get:.1f}x")
    print(f"files: old {old_files:,} ({old_bytes / 1e6:.1f} MB, {old_disk / 1e6:.1f} MB on disk), "
          f"new {new_files:,} ({new_bytes / 1e6:.1f} MB, {new_disk / 1e6:.1f} MB on disk)")
    if args.root is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
