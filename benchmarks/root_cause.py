"""The right root cause: planted faults on real faces, and the diagnoses run-all gives for each.

    python3 benchmarks/root_cause.py [--weights W] [--data ORL] [--device cpu]

Builds each planted fault from ORL with the builders the tests use (tests/helpers.py), runs the
default suite on it and prints a Markdown table: what was planted, the diagnoses expected, the
diagnoses given, and whether they are exactly the same set. The healthy rows (ORL as given at
16 px and at full resolution, aligned with --align mtcnn when the align extra is installed,
colour photos saved right) must get none. tests/checks/test_root_cause.py, test_dsr_vs_bicubic.py and
test_label_noise.py assert the same sets.

Credit: the AT&T (Olivetti Research Laboratory) face database, Cambridge.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from facediag.data.detect import missing_extra
from facediag.runner import run_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the planted failures the tests use
from helpers import BlurDSR, colour_copy, plant_gallery_swaps, script_dsr, unaligned_copy  # noqa: E402

ASSETS = os.environ.get("FACEDIAG_TEST_ASSETS", "../shared/assets")


def cases(orl: Path, weights: str, tmp: Path):
    """(label, expected diagnoses, weights, data, run_all options), built lazily."""
    def random_init():
        from facediag.models.checkpoint import save_state_dict
        from facediag.models.edgeface import build_edgeface

        torch.manual_seed(0)
        save_state_dict(build_edgeface("edgeface_xxs"), tmp / "random_init.pt")
        return str(tmp / "random_init.pt")

    def swapped():
        plant_gallery_swaps(orl, tmp / "swapped")
        return tmp / "swapped"

    yield ("unaligned faces (zoom 1/1.6, ±20°, 160 px canvas), HR probes", {"misaligned-faces"},
           lambda: (weights, unaligned_copy(orl, tmp / "unaligned"), dict(vlr_size=None)))
    yield ("colour photos saved BGR, 1 gallery image a person (-k 1)", {"preprocessing-mismatch"},
           lambda: (weights, colour_copy(orl, tmp / "bgr", subjects=range(1, 21), per_subject=5, bgr=True),
                    dict(gallery_per_subject=1)))
    yield ("DSR = bicubic + 9×9 Gaussian blur (σ 2.5), 16 px probes", {"dsr-hurts"},
           lambda: (weights, orl, dict(vlr_size=16, dsr=str(script_dsr(BlurDSR(), tmp / "blur_dsr.pt")))))
    yield ("8 of 40 people enrol another person's photo", {"gallery-label-noise"},
           lambda: (weights, swapped(), dict(vlr_size=16)))
    yield ("random-init weights (right keys) on ORL as given", {"untrained-weights"},
           lambda: (random_init(), orl, dict(vlr_size=16)))
    yield ("healthy: ORL as given, 16 px probes", set(), lambda: (weights, orl, dict(vlr_size=16)))
    yield ("healthy: ORL as given, HR probes", set(), lambda: (weights, orl, dict(vlr_size=None)))
    if missing_extra() is None:
        yield ("healthy: ORL aligned (--align mtcnn), 16 px probes", set(),
               lambda: (weights, orl, dict(vlr_size=16, align="mtcnn")))
    yield ("healthy: colour photos saved RGB, -k 1", set(),
           lambda: (weights, colour_copy(orl, tmp / "rgb", subjects=range(1, 21), per_subject=5),
                    dict(gallery_per_subject=1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=f"{ASSETS}/edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--data", default=f"{ASSETS}/orl_faces")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facediag-root-cause-"))
    print("| planted | expected | diagnosed | exact | s |\n|---|---|---|---|---|")
    exact_all = True
    for label, expected, build in cases(Path(args.data), args.weights, tmp):
        weights, data, options = build()
        t = time.perf_counter()
        report = run_all(weights, data, device=args.device, progress=False, cache_dir=tmp / "cache", **options)
        got = {d.id for d in report.diagnoses}
        exact_all &= got == expected
        print(f"| {label} | {', '.join(sorted(expected)) or 'none'} | {', '.join(sorted(got)) or 'none'} | "
              f"{'yes' if got == expected else '**no**'} | {time.perf_counter() - t:.0f} |", flush=True)
    sys.exit(0 if exact_all else 1)


if __name__ == "__main__":
    main()
