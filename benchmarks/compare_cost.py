"""What `facediag compare` costs: about two embedding passes (one per model), not more.

Times, on ORL with 16 px probes and a cold embedding cache:
  - a bare forward pass over the images one model's run embeds (gallery, probes' own HR
    images, DSR probes), decoding and degrading included: the floor for one model,
  - run-all on A alone (the default suite),
  - compare A vs B (the default suite on both sides, plus the paired bootstrap statistics),
and prints compare / run-all (target ≈ 2), compare / (2 × bare pass), and how many images each
model embedded against the distinct images (each must be embedded once per model). B is A with
its weights nudged, saved as its own checkpoint, so nothing is shared through the cache.

    python3 benchmarks/compare_cost.py --weights ../shared/assets/edgeface_xxs_fp32_dequantized.pt \
        --data ../shared/assets/orl_faces
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from facediag.compare import compare_session
from facediag.data.images import downsample, load_face, normalize
from facediag.gate import tolerances
from facediag.models.checkpoint import load_checkpoint, save_state_dict
from facediag.runner import run_suite
from facediag.session import Session, SessionConfig
from facediag.suites import load_suite

ASSETS = Path(os.environ.get("FACEDIAG_TEST_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bare_pass(model, protocol, bs: int) -> int:
    """Decode, degrade (area to 16 px, bicubic back) and embed what one model's run embeds."""
    gallery = torch.stack([load_face(r.path) for r in protocol.gallery])
    hr = torch.stack([load_face(p.hr.path) for p in protocol.probes])
    low = F.interpolate(downsample(hr, protocol.vlr_size), size=(112, 112), mode="bicubic",
                        align_corners=False).clamp(0, 1)
    pixels = torch.cat([gallery, hr, low])
    with torch.inference_mode():
        for s in range(0, len(pixels), bs):
            model(normalize(pixels[s:s + bs]))
    return len(pixels)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ASSETS / "edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--data", type=Path, default=ASSETS / "orl_faces")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs of each, interleaved")
    args = ap.parse_args(argv)
    suite = load_suite("default")

    with tempfile.TemporaryDirectory() as tmp:
        a = load_checkpoint(args.weights)
        nudged = load_checkpoint(args.weights).model
        with torch.no_grad():
            for p in nudged.parameters():
                p.add_(1e-4 * torch.randn_like(p))
        b_path = Path(tmp) / "b.pt"
        save_state_dict(nudged, b_path)
        b = load_checkpoint(b_path)
        model = a.model.eval()
        opts = dict(data=args.data, vlr_size=16, batch_size=args.batch_size, progress=False, device="cpu")

        t_bare, t_run, t_cmp = [], [], []
        for i in range(args.repeats):
            proto = Session(SessionConfig(**opts)).protocol
            if i == 0:
                bare_pass(model, proto, args.batch_size)  # warm-up: kernels, page cache
            t, n_images = timed(lambda: bare_pass(model, proto, args.batch_size))
            t_bare.append(t)
            run = Session(SessionConfig(cache_dir=Path(tmp) / f"run{i}", **opts), models={"model": a})
            t_run.append(timed(lambda: run_suite(run, suite, command="bench"))[0])
            cmp = Session(SessionConfig(cache_dir=Path(tmp) / f"cmp{i}", **opts), models={"model": a, "baseline": b})
            t_cmp.append(timed(lambda: compare_session(cmp, suite, max_drop=tolerances(suite), command="bench"))[0])
        per_model = {role: cmp.embedder(role).images_embedded for role in ("model", "baseline")}
        single = run.embedder("model").images_embedded

    bare, run_all, compare = min(t_bare), min(t_run), min(t_cmp)
    print(f"ORL, 16 px probes, {n_images} distinct images per model (gallery, probes' HR, DSR probes); "
          f"CPU, {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"  bare forward pass, one model   {bare:7.2f} s")
    print(f"  run-all, A alone               {run_all:7.2f} s   {run_all / bare:5.2f} × bare pass")
    print(f"  compare, A vs B                {compare:7.2f} s   {compare / bare:5.2f} × bare pass")
    print(f"  compare / run-all              {compare / run_all:7.2f} ×   (target ≈ 2)")
    print(f"  compare / (2 × bare pass)      {compare / (2 * bare):7.2f} ×")
    print(f"  images embedded: run-all {single}; compare A {per_model['model']}, B {per_model['baseline']} "
          f"({n_images} distinct + the preprocessing check's altered samples)")


if __name__ == "__main__":
    sys.exit(main())
