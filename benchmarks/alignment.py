"""What alignment costs on CPU, as ratios against bare loops.

    python3 benchmarks/alignment.py [--weights W] [--data ORL] [--images 120] [--repeats 2]

Prints, per image: a bare decode (facediag's decoder), MTCNN detection on the 112 canvas
batched (the alignment check's way, min_face_size 50) and one by one, detection at 20 px on
the decoded files (`facediag align`'s default), fit + warp; then the alignment check's own
time inside a run-all of the default suite on ORL against the whole run; and --align mtcnn on
the fly: detection + warp per image (decode included) against the model's forward per image, and
run-all (identification) as given, aligned with a cold cache, and again (warm: no detector
call, nothing embedded). Needs the align extra. Credit: the AT&T (Olivetti Research Laboratory)
face database, Cambridge.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facediag.data.detect import CANVAS_MIN_FACE, CANVAS_SCALE_STEP, Detector
from facediag.data.images import load_face, read_rgb
from facediag.data.index import index_dataset
from facediag.data.landmarks import fit, warp


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    assets = Path(os.environ.get("FACEDIAG_TEST_ASSETS", "../shared/assets"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=str(assets / "edgeface_xxs_fp32_dequantized.pt"))
    ap.add_argument("--data", default=str(assets / "orl_faces"))
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    paths = [r.path for r in index_dataset(args.data).records][:args.images]
    n = len(paths)
    canvases = [(load_face(p).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for p in paths]
    raw = [read_rgb(p) for p in paths]
    canvas_det = Detector(min_face_size=CANVAS_MIN_FACE, scale_step=CANVAS_SCALE_STEP)  # as the check detects
    file_det = Detector(min_face_size=20)
    dets = file_det.detect(raw)
    fits = [(img, fit(d.points)) for img, d in zip(raw, dets) if d.found]

    rows = [("bare decode", best(lambda: [read_rgb(p) for p in paths], args.repeats))]
    rows.append(("detect on the 112 canvas, batched (check)", best(lambda: canvas_det.detect(canvases), args.repeats)))
    rows.append(("detect on the 112 canvas, one by one", best(lambda: [canvas_det.detect([c]) for c in canvases],
                                                               args.repeats)))
    rows.append(("detect on the files at 20 px (align)", best(lambda: file_det.detect(raw), args.repeats)))
    rows.append(("fit + warp", best(lambda: [warp(img, f) for img, f in fits], args.repeats)))
    bare = rows[0][1]
    print(f"{n} images (faces found by align's detector: {len(fits)})")
    for name, t in rows:
        print(f"  {name:45s} {t / n * 1000:7.1f} ms/image   {t / bare:6.1f}× bare decode")

    from facediag.runner import run_all

    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        rep = run_all(args.weights, args.data, vlr_size=16, progress=False, cache_dir=cache, device="cpu")
        total = time.perf_counter() - t
    check = rep.result("alignment")
    print(f"run-all on {args.data} (cold cache): {total:.1f} s; alignment check {check.seconds:.2f} s "
          f"= {check.seconds / total:.1%} of the run ({check.metrics.get('sample_images')} faces)")

    on_the_fly(args, paths)


def on_the_fly(args, paths):
    """--align mtcnn: what aligning costs per image, and that a second run reads the cache."""
    import torch

    from facediag.data.aligner import Aligner
    from facediag.data.images import normalize
    from facediag.models.checkpoint import load_checkpoint
    from facediag.runner import run_suite
    from facediag.session import Session, SessionConfig
    from facediag.suites import load_suite

    n = len(paths)

    def align_all():  # a fresh Aligner, no store: decode + detect (batched) + warp, then the crops
        al = Aligner(None, progress=False)
        al.prepare(paths)
        for p in paths:
            al.load(p)

    model = load_checkpoint(args.weights).model.eval()
    batch = normalize(torch.stack([load_face(p) for p in paths[:64]]))

    def forward():
        with torch.inference_mode():
            model(batch)

    t_align = best(align_all, args.repeats) / n
    t_fwd = best(forward, args.repeats) / len(batch)
    print(f"--align mtcnn on the fly: {t_align * 1000:.1f} ms/image (decode + detect at 20 px + warp), "
          f"model forward {t_fwd * 1000:.1f} ms/image (batch 64): {t_align / t_fwd:.1f}× the forward")
    suite = load_suite("default").only(["identification"])
    with tempfile.TemporaryDirectory() as cache:
        for label, align in (("as given, cold cache", "none"), ("--align mtcnn, cold cache", "mtcnn"),
                             ("--align mtcnn, warm cache", "mtcnn")):
            session = Session(SessionConfig(weights=args.weights, data=args.data, vlr_size=16, align=align,
                                            cache_dir=cache, device="cpu", progress=False))
            t = time.perf_counter()
            run_suite(session, suite, command="benchmark")
            took = time.perf_counter() - t
            detected = session.aligner.detected if align == "mtcnn" else 0
            print(f"  run-all (identification) {label:26s} {took:6.1f} s; images detected {detected}, "
                  f"embedded {session.embedder().images_embedded}")


if __name__ == "__main__":
    main()
