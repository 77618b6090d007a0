"""bench tinyface at TinyFace's scale: time against a bare decode + forward (+ flip), and memory.

Writes a synthetic TinyFace-shaped test split (tinyface/Testing_Set/{Probe, Gallery_Match,
Gallery_Distractor} with the two .mat lists; every image a distinct random 20×24 JPEG, so
nothing is deduplicated) at the scale given, then in one process:

  bare  = a loop a user would write over the same files: decode with facediag's own decoder
          (load_face: bicubic to 112), normalise, forward the image and its mirror, sum,
          L2-normalise; no matching, no metrics;
  ours  = facediag.bench.bench_tinyface on the tree (engine, content digests, cache as asked,
          the streamed matching, CMC, mAP, the quality section), the cost of the whole bench;

and prints ours / bare (wall time, and CPU time of every thread, which other processes on a
shared machine disturb less) and the peak resident memory of the bench beyond what the process held
before it and beyond the embeddings themselves (distinct images × D × 4 bytes). The bars (issue
29): ≤ 1.3× the bare loop, ≤ 1 GB beyond the embeddings. Defaults are the real split's sizes
(3,728 probes, 4,443 + 153,428 gallery images): a long run on a CPU; check it works first with
e.g. ``--gallery 4000 --probes 400``.

    python3 benchmarks/tinyface_scale.py [--probes 3728] [--gallery 157871] [--match 4443]
        [--weights edgeface_xxs_fp32_dequantized.pt] [--device auto] [--batch-size 64] [--cache]
        [--threads N] [--repeats 1] [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import PeakRSS, _rss_mb  # noqa: E402  benchmarks/scale.py: the resident-set sampler

ASSETS = Path(os.environ.get("FACEDIAG_TEST_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))
REAL = {"probes": 3728, "match": 4443, "distractors": 153428, "identities": 2570}


def cell(names) -> np.ndarray:
    out = np.empty((len(names), 1), dtype=object)
    for k, n in enumerate(names):
        out[k, 0] = n
    return out


def write_tree(root: Path, probes: int, match: int, distractors: int, seed: int = 0) -> Path:
    """A TinyFace-shaped split of random 20×24 JPEGs; identities in TinyFace's proportion."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    testing = root / "tinyface" / "Testing_Set"
    n_ids = max(1, round(probes * REAL["identities"] / REAL["probes"]))
    lists = {}
    for sub, n, named in (("Probe", probes, True), ("Gallery_Match", match, True),
                          ("Gallery_Distractor", distractors, False)):
        folder = testing / sub
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for k in range(n):
            name = f"{k % n_ids + 1}_{k + 1}.jpg" if named else f"{k + 1}_d.jpg"
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(folder / name, quality=90)
            names.append(name)
        lists[sub] = names
    for mat, (names_key, ids_key), sub in (("probe_img_ID_pairs.mat", ("probe_set", "probe_ids"), "Probe"),
                                           ("gallery_match_img_ID_pairs.mat", ("gallery_set", "gallery_ids"),
                                            "Gallery_Match")):
        names = lists[sub]
        savemat(testing / mat, {names_key: cell(names),
                                ids_key: np.array([[float(n.split("_")[0])] for n in names])})
    return root


def bare(model, paths, device, bs: int) -> np.ndarray:
    """Decode, normalise, forward the image and its mirror, sum, L2-normalise: unit embeddings [N, D]."""
    from facediag.data.images import load_face, normalize

    out = []
    with torch.inference_mode():
        for s in range(0, len(paths), bs):
            x = normalize(torch.stack([load_face(p) for p in paths[s:s + bs]])).to(device)
            raw = model(x) + model(torch.flip(x, dims=[3]))
            out.append(torch.nn.functional.normalize(raw.float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def _times(seconds) -> str:
    return "[" + ", ".join(f"{t:.1f}" for t in seconds) + "]"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=REAL["probes"])
    ap.add_argument("--gallery", type=int, default=REAL["match"] + REAL["distractors"],
                    help="gallery images in all: Gallery_Match + Gallery_Distractor")
    ap.add_argument("--match", type=int, default=None,
                    help="of which Gallery_Match (default: TinyFace's share, 4,443 of 157,871)")
    ap.add_argument("--weights", type=Path, default=ASSETS / "edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cache", action="store_true",
                    help="let the bench write its embedding cache (cold), as a default run does; the bare loop "
                         "writes none, so the default leaves it off")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="interleaved runs of each side; the best of each is compared")
    ap.add_argument("--workdir", type=Path, help="where the tree is written (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the tree (and cache) afterwards")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from facediag.bench.tinyface import bench_tinyface
    from facediag.data.tinyface import read_tinyface
    from facediag.device import resolve_device
    from facediag.models import load_checkpoint

    match = args.match if args.match is not None else round(args.gallery * REAL["match"]
                                                          / (REAL["match"] + REAL["distractors"]))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tinyface-scale-"))
    try:
        t0 = time.perf_counter()
        root = write_tree(work / "root", args.probes, match, args.gallery - match)
        print(f"tree: {args.probes:,} probes, {match:,} + {args.gallery - match:,} gallery images of 20×24 px "
              f"written in {time.perf_counter() - t0:.0f} s")
        split = read_tinyface(root)
        files = [*split.probe_inputs, *split.gallery_inputs]
        device = resolve_device(args.device)
        loaded = load_checkpoint(args.weights)
        model = loaded.model.to(device).eval()
        bare(model, files[:args.batch_size], device, args.batch_size)  # warm-up: first-call costs out of the timing
        emb_mb = len(files) * loaded.preset.embedding_dim * 4 / 2**20  # float32 unit embeddings, one row per image
        t_bare, t_ours, c_bare, c_ours, beyond, above = [], [], [], [], [], []
        for rep in range(args.repeats):  # interleaved, the order alternating, to damp other processes' noise
            for side in (("bare", "ours") if rep % 2 == 0 else ("ours", "bare")):
                if side == "bare":
                    t0, c0 = time.perf_counter(), time.process_time()
                    bare(model, files, device, args.batch_size)
                    t_bare.append(time.perf_counter() - t0)
                    c_bare.append(time.process_time() - c0)
                    continue
                start = _rss_mb()
                with PeakRSS() as mem:
                    t0, c0 = time.perf_counter(), time.process_time()
                    report = bench_tinyface([loaded], root, device=args.device, batch_size=args.batch_size,
                                            cache_dir=work / f"cache{rep}", use_cache=args.cache, progress=False)
                    t_ours.append(time.perf_counter() - t0)
                    c_ours.append(time.process_time() - c0)
                above.append(mem.peak - start)
                beyond.append(mem.peak - start - emb_mb)
        row = report.rows[0]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{len(files):,} images × 2 views, batch {args.batch_size}, device {device}, torch threads "
              f"{torch.get_num_threads()}, cache {'on (cold)' if args.cache else 'off'}, load average {load:.1f}")
        print(f"bare decode + forward + flip: best {min(t_bare):.1f} s of {_times(t_bare)} "
              f"({2 * len(files) / min(t_bare):.0f} forwards/s)")
        print(f"bench tinyface:               best {min(t_ours):.1f} s of {_times(t_ours)}  -> "
              f"{min(t_ours) / min(t_bare):.2f}x the bare loop (bar 1.3x)")
        print(f"CPU time (every thread of the process; steadier than wall time on a shared machine): bare best "
              f"{min(c_bare):.1f} s of {_times(c_bare)}, bench best {min(c_ours):.1f} s of {_times(c_ours)} -> "
              f"{min(c_ours) / min(c_bare):.2f}x")
        print(f"peak RSS of the bench: at most +{max(above):.0f} MB above what the process held before it; the "
              f"embeddings are {emb_mb:.0f} MB, so {max(beyond):.0f} MB beyond them (bar 1024 MB)")
        print(f"rank-1 {row['rank1']:.4f}, mAP {row['map']:.4f} over {row['n_mated']:,} probes, gallery "
              f"{row['n_gallery']:,} (random images: chance-level figures are expected)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
