"""Label noise: recall and false alarms on planted swaps in ORL, and what the gallery's scoring costs.

    python3 benchmarks/label_noise.py [--weights W] [--data ORL] [--device cpu] [--images 100000]
                                      [--subjects 10000] [--repeats 2] [--no-timing]

Prints, with the default suite's margins (gallery-enrollment's label_noise_margin, identification's
mislabel_min_drop / mislabel_rival_within):

- gallery-enrollment on ORL as given (16 px and HR probes; aligned too where the align extra is
  installed): images flagged (false alarms) and the largest leave-one-out margin of any image;
- the same on three plantings of 8 mislabelled gallery images (8 of 40 people, one of images 1-3
  each): ``copy`` (the next person's photo of the same number copied over it: the photo is
  enrolled under both people), ``exchange`` (4 pairs of people exchange one gallery file), ``moved``
  (a probe photo of the next person moved into the gallery slot and gone from that person's
  folder); found (listed with the person the photo shows), found naming another person, missed,
  and clean images flagged, with each planted image's margin;
- identification on ORL with 6 pairs of probe files exchanged (12 mislabelled probes): listed as
  possible mislabels with the right person, and clean probes listed;
- the scoring's time on ``--images`` random gallery embeddings of ``--subjects`` people against a bare
  matmul + max over the same blocks.

Credit: the AT&T (Olivetti Research Laboratory) face database, Cambridge.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facediag.protocols.label_noise import gallery_label_scores
from facediag.runner import run_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the planted failures the tests use
from helpers import CYCLE, plant_gallery_swaps as copy_swaps, plant_probe_swaps as probe_swaps  # noqa: E402


def exchange_swaps(orl: Path, dest: Path) -> dict[str, str]:
    shutil.copytree(orl, dest)
    planted = {}
    for k in range(0, len(CYCLE), 2):
        a, b, img = CYCLE[k], CYCLE[k + 1], f"{k // 2 % 3 + 1}.pgm"
        shutil.copy(orl / f"s{a}" / img, dest / f"s{b}" / img)
        shutil.copy(orl / f"s{b}" / img, dest / f"s{a}" / img)
        planted[f"s{a}/{img}"], planted[f"s{b}/{img}"] = f"s{b}", f"s{a}"
    return planted


def moved_swaps(orl: Path, dest: Path) -> dict[str, str]:
    shutil.copytree(orl, dest)
    planted = {}
    for k, s in enumerate(CYCLE):
        t, src, img = CYCLE[(k + 1) % len(CYCLE)], f"{4 + k % 7}.pgm", f"{k % 3 + 1}.pgm"
        shutil.copy(orl / f"s{t}" / src, dest / f"s{s}" / img)
        (dest / f"s{t}" / src).unlink()
        planted[f"s{s}/{img}"] = f"s{t}"
    return planted


def name(path) -> str:
    return "/".join(str(path).replace("\\", "/").split("/")[-2:])


def run(weights, data, cache, device, **kw):
    return run_all(weights, data, checks=["gallery-enrollment", "identification"], cache_dir=cache,
                   progress=False, device=device, **kw)


def gallery_line(label, report, planted=None):
    res = report.result("gallery-enrollment")
    found = {name(s["path"]): s for s in res.data["label_noise"]["suspects"]}
    m = res.metrics
    if planted is None:
        ident = report.result("identification").metrics
        print(f"  {label:28s} flagged {len(found)} of {m['label_noise_scored']} (false alarms); largest margin "
              f"{m['label_noise_margin_max']:.3f} (suite margin {res.data['label_noise']['margin']}); leave-one-out "
              f"rank-1 {m['label_noise_loo_rank1']:.3f}; probes listed {ident['possible_mislabelled_probes']} "
              f"(judged on rank-1 {ident['mislabel_judge_rank1']:.3f})")
        return
    right = [f for f, p in planted.items() if f in found and found[f]["resembles"] == p]
    wrong = [f for f, p in planted.items() if f in found and found[f]["resembles"] != p]
    clean = [f for f in found if f not in planted]
    print(f"  {label:28s} found {len(right)}/{len(planted)} with the right person, {len(wrong)} naming another, "
          f"{len(planted) - len(right) - len(wrong)} missed; clean images flagged {len(clean)}"
          + (f" ({', '.join(clean)})" if clean else "")
          + f"; rank-1 {report.result('identification').metrics['rank1']:.3f}"
          + (f" -> {m['rank1_without_label_suspects']:.3f} without the suspects"
             if m.get("rank1_without_label_suspects") is not None else ""))
    missed = [f for f in planted if f not in found]
    if missed:
        print(f"  {'':28s} missed: " + ", ".join(missed))


def probe_line(label, report, planted):
    res = report.result("identification")
    listed = {name(m["path"]): m["resembles"] for m in res.data["possible_mislabels"]}
    right = [f for f, p in planted.items() if listed.get(f) == p]
    clean = [f for f in listed if f not in planted]
    print(f"  {label:28s} listed {len(right)}/{len(planted)} with the right person; clean probes listed {len(clean)}"
          + (f" ({', '.join(clean)})" if clean else "")
          + f"; missed: {', '.join(f for f in planted if f not in listed) or '-'};"
          f" rank-1 {res.metrics['rank1']:.3f}, without them {res.metrics['rank1_without_possible_mislabels']:.3f}")


def timing(n, s, dim, device, repeats):
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, s, n).astype(str)
    emb = rng.normal(size=(n, dim)).astype(np.float32)

    def bare():  # the same blocks, matmul + max only
        g = torch.as_tensor(emb / np.linalg.norm(emb, axis=1, keepdims=True), device=device)
        t = torch.nn.functional.normalize(torch.randn(s, dim, device=device), dim=1)
        step = max(1, (1 << 23) // s)
        for a in range(0, n, step):
            (g[a:a + step] @ t.T).max(dim=1)

    def ours():
        gallery_label_scores(emb, subjects, device=device)

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return min(times)

    tb, to = best(bare), best(ours)
    print(f"  {n:,} images x {s:,} people x {dim}-d on {device}: label scoring {to:.2f} s, bare matmul + max "
          f"{tb:.2f} s ({to / tb:.2f}x)")


def main():
    assets = Path(os.environ.get("FACEDIAG_TEST_ASSETS", "../shared/assets"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=str(assets / "edgeface_xxs_fp32_dequantized.pt"))
    ap.add_argument("--data", default=str(assets / "orl_faces"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-timing", action="store_true")
    a = ap.parse_args()
    orl = Path(a.data)
    with tempfile.TemporaryDirectory(prefix="facediag-label-noise-") as tmp:
        tmp, cache = Path(tmp), Path(tmp) / "cache"
        print("gallery-enrollment, clean ORL:")
        gallery_line("as given, 16 px probes", run(a.weights, orl, cache, a.device, vlr_size=16))
        gallery_line("as given, HR probes", run(a.weights, orl, cache, a.device, vlr_size=None))
        if importlib.util.find_spec("facenet_pytorch"):
            gallery_line("aligned (mtcnn), 16 px", run(a.weights, orl, cache, a.device, vlr_size=16, align="mtcnn"))
        else:
            print("  aligned: not measured (needs the align extra: facenet-pytorch)")
        print("gallery-enrollment, 8 mislabelled gallery images (16 px probes):")
        for label, plant in (("copy", copy_swaps), ("exchange", exchange_swaps), ("moved", moved_swaps)):
            planted = plant(orl, tmp / label)
            gallery_line(label, run(a.weights, tmp / label, cache, a.device, vlr_size=16), planted)
        print("identification, 12 mislabelled probes (6 pairs of files exchanged):")
        planted = probe_swaps(orl, tmp / "probes")
        for vlr in (16, None):
            probe_line(f"{vlr or 'HR'} probes", run(a.weights, tmp / "probes", cache, a.device, vlr_size=vlr), planted)
        report = run(a.weights, orl, cache, a.device, vlr_size=16)
        print(f"  clean ORL: probes listed {report.result('identification').metrics['possible_mislabelled_probes']}")
    if not a.no_timing:
        print("cost of the gallery's scoring:")
        timing(a.images, a.subjects, 512, a.device, a.repeats)


if __name__ == "__main__":
    main()
