"""dsr-vs-bicubic on ORL at 16 px: a DSR worse than bicubic, what the check says, and what it costs.

    python3 benchmarks/dsr_check.py [--weights W] [--data ORL] [--device cpu] [--rounds 3]

The DSR is the planted failure of tests/checks/test_dsr_vs_bicubic.py: bicubic, then a 9×9 Gaussian blur
(σ 2.5), saved as TorchScript and given as --dsr. With the official float xxs and the default
protocol (all 40 people; gallery images 1-3, probes 4-10 area-downsampled to 16 px) it prints
rank-1 through the DSR and through bicubic, the probes each loses, the exact McNemar p, PSNR and
SSIM of each against the HR images, and the diagnoses. Then per round, each on a fresh cache: the
check's own time cold and warm (a second run on the same cache), and run-all cold with and without
the check (wall and process CPU seconds; on a shared machine compare rounds, not single figures).

Credit: the AT&T (Olivetti Research Laboratory) face database, Cambridge.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from facediag.runner import run_all
from facediag.suites import load_suite

ASSETS = os.environ.get("FACEDIAG_TEST_ASSETS", "../shared/assets")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the planted failures the tests use
from helpers import BlurDSR  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=f"{ASSETS}/edgeface_xxs_fp32_dequantized.pt")
    ap.add_argument("--data", default=f"{ASSETS}/orl_faces")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="facediag-dsr-")
    dsr = f"{tmp}/blur_dsr.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(BlurDSR()).save(dsr)
    full = load_suite("default")
    without = full.only([c for c in full.checks if c != "dsr-vs-bicubic"])

    def run(suite, cache):
        t, c = time.perf_counter(), time.process_time()
        rep = run_all(args.weights, args.data, suite=suite, vlr_size=16, dsr=dsr, device=args.device,
                      progress=False, cache_dir=cache)
        return rep, time.perf_counter() - t, time.process_time() - c

    for rnd in range(args.rounds):
        cold, wall, cpu = run(full, f"{tmp}/with{rnd}")
        warm, _, _ = run(full, f"{tmp}/with{rnd}")
        _, wall0, cpu0 = run(without, f"{tmp}/without{rnd}")
        res = cold.result("dsr-vs-bicubic")
        m = res.metrics
        if rnd == 0:
            print(f"{res.status.value}: {res.summary}")
            print(f"rank-1 through the DSR {m['rank1_dsr']:.4f}, through bicubic {m['rank1_bicubic']:.4f} "
                  f"({m['n_probes']} probes; {m['dsr_lost']} lost, {m['dsr_won']} won); exact McNemar p = "
                  f"{m['mcnemar_p']:.4g}; genuine mean {m['genuine_mean_dsr']:.4f} vs {m['genuine_mean_bicubic']:.4f}")
            if "psnr_dsr" in m:
                print(f"against the HR images ({m['n_quality']} probes): PSNR {m['psnr_dsr']:.3f} vs "
                      f"{m['psnr_bicubic']:.3f} dB, SSIM {m['ssim_dsr']:.4f} vs {m['ssim_bicubic']:.4f}")
            print("diagnoses:", sorted(d.id for d in cold.diagnoses))
        print(f"round {rnd}: the check {res.seconds:.2f} s cold, {warm.result('dsr-vs-bicubic').seconds:.2f} s warm; "
              f"run-all cold {wall:.1f} s wall / {cpu:.1f} s CPU with it, {wall0:.1f} / {cpu0:.1f} without")


if __name__ == "__main__":
    main()
