"""bench accuracy, bench speed, bench verification and bench ijb."""
from __future__ import annotations

from pathlib import Path

import click

from facediag.bench import bench_accuracy, bench_speed
from facediag.bench.accuracy import parse_resolutions
from facediag.bench.verification import DEGRADE_SIDES, bench_verification
from facediag.distributed import launched
from facediag.outputs import check_outputs, data_paths, out_cache, out_dir
from facediag.render import bench_filenames, render_terminal, write_all

from facediag.cli.options import (
    ALLOW_OUTSIDE_ROOT,
    ARCH,
    CARD,
    CHECKPOINTS,
    DEGRADE,
    LABELS,
    AS_JSON,
    DATA_OPTIONS,
    DEVICE,
    DSR,
    DSR_CODE_HELP,
    DSR_WEIGHTS,
    ENGINE_OPTIONS,
    N_BOOT,
    OUT,
    PATH,
    TRUST_DSR_CODE,
    command_line,
    console,
    handle_errors,
    int_list,
    options,
    print_paths,
    without,
)
from facediag.errors import FacediagError

BENCH_DATA_OPTIONS = without(DATA_OPTIONS, "vlr_size", "train_root")
"""run-all's data options, less the ones bench sets itself (--vlr-size: --resolutions)."""


@click.group()
def bench():
    """Benchmark checkpoints: accuracy per probe resolution (and DSR vs bicubic), speed and size,
    the standard verification sets with the published figures beside ours, the IJB-B/C template
    protocols, the low-resolution sets (TinyFace, QMUL-SurvFace, SCface), and any system's score file.

    \b
    Examples:
      facediag bench accuracy -w edgeface_xxs.pt --data orl_faces --resolutions 12,16,24,32,hr
      facediag bench verification -w edgeface_xxs.pt --pairs lfw.bin --pairs agedb_30.bin
      facediag bench speed --variant xxs --variant base --device cpu --batch-sizes 1,8,64
      facediag bench ijb -w edgeface_xxs.pt --root IJB_release/IJBC --target IJBC
      facediag bench tinyface -w edgeface_xxs.pt --root tinyface_root --aligned-dir aligned_pad_0.1_pad_high
      facediag bench survface -w edgeface_xxs.pt --root QMUL-SurvFace
      facediag bench scface -w edgeface_xxs.pt --root SCface_crops --per-camera
      facediag bench scores scores.txt          # any system's score file (bob, OpenBR, pyeer)
    """


# bench takes several checkpoints: a card per --weights, in the same order (as --label).
CARDS = CARD("--card", "cards", multiple=True,
             help="A model card per --weights, in the same order (default: <weights file>.toml beside each, "
                  "if any; else EdgeFace's preset).")


def _bench_outputs(kind: str, out) -> list:
    return out_dir("--out", out, bench_filenames(kind).values())


def _bench_output(report, out, as_json):
    if as_json:
        click.echo(report.to_json())
    else:
        render_terminal(report, console)
    if out:
        paths = write_all(report, out)
        print_paths("reports", paths.values(), on_stderr=as_json)


def _one_each(weights, **per_weights) -> None:
    """--label and --card: none, or one per --weights."""
    for flag, values in per_weights.items():
        if values and len(values) != len(weights):
            raise FacediagError(f"{len(values)} --{flag[:-1]} for {len(weights)} --weights: give one per checkpoint "
                                "or none")


@bench.command("accuracy")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--resolutions", default="12,16,24,32,hr", show_default=True,
              help="Probe sizes in pixels (degraded from HR by --degrade, then upsampled to 112) and/or 'hr'.")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=None,
              help="Cosine acceptance threshold (default: the model cards', else the EdgeFace preset's 0.35).")
@N_BOOT(help="Bootstrap resamples for the CIs.")
@OUT(help="Write bench-accuracy.json/.html/.md here.")
@AS_JSON()
@options(BENCH_DATA_OPTIONS)
@handle_errors
def bench_accuracy_cmd(weights, labels, arch, cards, resolutions, threshold, n_boot, out, as_json, **kw):
    """Rank-1, accuracy at the threshold (with its FAR), TAR@FAR, EER and score means per probe
    resolution and checkpoint.

    The HR gallery is embedded once per checkpoint and shared by every resolution. With
    --dsr, each low-resolution row is measured through the DSR model and through plain
    bicubic on the same probes, with the difference and its significance (exact McNemar
    and a paired subject-level bootstrap): does the DSR model help recognition?

    \b
    Examples:
      facediag bench accuracy -w edgeface_xxs.pt --data orl_faces
      facediag bench accuracy -w pretrained.pt -w finetuned.pt --data faces/ --resolutions 16,hr --out reports/bench
      facediag bench accuracy -w edgeface_xxs.pt --data faces/ --dsr dsr.torchscript --resolutions 12,16,24
      facediag bench accuracy -w edgeface_xxs.pt --data orl_faces --resolutions 16 --degrade realistic
    """
    _one_each(weights, labels=labels, cards=cards)
    inputs, roots = data_paths(kw)
    check_outputs([*_bench_outputs("accuracy", out), *out_cache(kw["cache_dir"], not kw["no_cache"])],
                  inputs=[("--weights", list(weights)), ("--card", list(cards)), *inputs], roots=roots)
    with launched(kw["device"]) as dist:  # under torchrun: every rank embeds its shard, rank 0 reports
        report = bench_accuracy(
            list(weights), kw.pop("data"), resolutions=resolutions, dsr=kw.pop("dsr"),
            dsr_weights=kw.pop("dsr_weights"), threshold=threshold, labels=list(labels) or None, arch=arch,
            cards=list(cards) or None,
            n_boot=n_boot, use_cache=not kw.pop("no_cache"), progress=not kw.pop("quiet"), command=command_line(),
            dist=dist, **kw)
        if report is not None:
            _bench_output(report, out, as_json)
        dist.barrier()  # the others leave once rank 0 has written


@bench.command("speed")
@click.option("--weights", "-w", "weights", multiple=True, type=PATH, help="A checkpoint; repeatable.")
@click.option("--variant", "variants", multiple=True,
              help="Benchmark a variant with random weights (xxs, xs_gamma_06, s_gamma_05, base, xs_q, xxs_q); "
                   "repeatable.")
@ARCH(help="Force the variant of every --weights file.")
@DEVICE()
@click.option("--batch-sizes", default="1,8,64", show_default=True, callback=int_list,
              help="Throughput at each of these batch sizes.")
@click.option("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's own choice).")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="Time the model after torch.compile.")
@click.option("--channels-last", is_flag=True, help="Channels-last memory format for weights and input.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before latency is timed.")
@click.option("--iters", type=int, default=50, show_default=True,
              help="Timed batch-1 runs for the latency median and p95.")
@click.option("--min-seconds", type=float, default=1.0, show_default=True,
              help="Run each batch size for at least this long for its throughput.")
@click.option("--no-timing", is_flag=True, help="Parameters and FLOPs only.")
@OUT(help="Write bench-speed.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_speed_cmd(weights, variants, arch, device, batch_sizes, threads, dtype, compile_, channels_last,
                    warmup, iters, min_seconds, no_timing, out, as_json):
    """Parameters, FLOPs per 112×112 face, latency at batch 1 (median, p95), throughput per
    batch size and peak memory.

    FLOPs come from torch's FLOP counter and reproduce the EdgeFace paper's table. CUDA
    timings are synchronised. Quantised (_q) checkpoints run on CPU: PyTorch's int8
    dynamic kernels exist only there (the report says so).

    \b
    Examples:
      facediag bench speed -w edgeface_xxs.pt --device cuda --batch-sizes 1,8,64,256 --dtype bf16
      facediag bench speed --variant xxs --variant xs_gamma_06 --variant s_gamma_05 --variant base --no-timing
      facediag bench speed -w edgeface_xxs_q.pt --threads 1 --out reports/speed
    """
    check_outputs(_bench_outputs("speed", out), inputs=[("--weights", list(weights))])
    report = bench_speed(list(weights), variants=list(variants), device=device, batch_sizes=batch_sizes,
                         threads=threads, dtype=dtype, compile=compile_, channels_last=channels_last,
                         warmup=warmup, iters=iters, min_seconds=min_seconds, timing=not no_timing, arch=arch,
                         command=command_line())
    _bench_output(report, out, as_json)


@bench.command("verification")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--pairs", "pairs", multiple=True, required=True, type=PATH,
              help="A pair set: insightface .bin, LFW-style pairs.txt or CSV path1,path2,same[,fold]; repeatable.")
@click.option("--images", "images", type=PATH,
              help="Image root of pairs.txt (ROOT/name/name_000n.jpg) and CSV files (default for CSV: its folder).")
@click.option("--no-flip", is_flag=True,
              help="Embed each image alone (default: the model preset's protocol, the card's flip; EdgeFace's "
                   "adds the mirror image's embedding, as the reference).")
@click.option("--resolutions", default="hr", show_default=True,
              help="Sizes in pixels and/or 'hr' (e.g. hr,32,24,16,12): at a size the second image of every pair "
                   "is degraded to it (--degrade), then brought back to 112 (bicubic, and --dsr).")
@click.option("--degrade-side", type=click.Choice(DEGRADE_SIDES), default="second", show_default=True,
              help="Which image of each pair a low resolution applies to: the second (HR vs low resolution) or both.")
@DEGRADE()
@DSR(help="Also bring low resolutions back through this super-resolution model (TorchScript file, or "
          f"module:factory with --dsr-weights), compared with bicubic pair by pair (McNemar). {DSR_CODE_HELP}")
@DSR_WEIGHTS()
@TRUST_DSR_CODE()
@ALLOW_OUTSIDE_ROOT(help="Let a CSV of pairs name files outside its image root (absolute or ../ paths).")
@options(ENGINE_OPTIONS)
@OUT(help="Write bench-verification.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_verification_cmd(weights, labels, arch, cards, pairs, images, no_flip, resolutions, degrade_side, degrade,
                           dsr, dsr_weights, allow_outside_root, device, batch_size, cache_dir, no_cache, quiet, out,
                           as_json):
    """Accuracy (mean ± std over 10 folds), VAL@FAR=1e-3, ROC AUC, EER, TAR@FAR and XNorm on
    verification pair sets, with EdgeFace's published accuracy and the difference where the
    set (lfw, calfw, cplfw, cfp_fp, agedb_30, from the file name) and the variant match.

    The protocol is the reference's (insightface verification.py): embedding of the image plus
    that of its mirror image, L2-normalised, squared L2 distance; 10 consecutive folds, each
    fold's threshold (0 to 4, step 0.01) the first with the best accuracy on the other nine;
    ± is the std over the test folds. A .bin is read with an unpickler that admits only
    images and booleans: one that would run code is refused and nothing runs.

    \b
    Examples:
      facediag bench verification -w edgeface_xxs.pt --pairs lfw.bin --pairs cfp_fp.bin --pairs agedb_30.bin
      facediag bench verification -w a.pt -w b.pt --pairs lfw/pairs.txt --images lfw/ --out reports/ver
      facediag bench verification -w ft.pt --pairs my_pairs.csv --no-flip --json
      facediag bench verification -w edgeface_xxs.pt --pairs lfw.bin --resolutions hr,32,24,16,12 --dsr dsr.pt
      facediag bench verification -w edgeface_xxs.pt --pairs lfw.bin --resolutions hr,16 --degrade realistic
    """
    _one_each(weights, labels=labels, cards=cards)
    parse_resolutions(resolutions)  # a bad size is refused before any output is checked or file read
    dsr_files = [Path(p) for p in (dsr, dsr_weights) if p is not None and Path(p).is_file()]
    # Without --images, a CSV's images are found from its own folder: that folder is data too.
    csv_roots = [Path(p).parent for p in pairs if images is None and Path(p).suffix.lower() == ".csv"]
    check_outputs([*_bench_outputs("verification", out), *out_cache(cache_dir, not no_cache)],
                  inputs=[("--weights", list(weights)), ("--card", list(cards)), ("--pairs", list(pairs)),
                          ("--dsr", dsr_files)],
                  roots=[("--images", images), ("--pairs' folder, the CSV's image root", csv_roots)])
    report = bench_verification(list(weights), list(pairs), images_root=images, flip=False if no_flip else None,
                                resolutions=resolutions, degrade_side=degrade_side, degrade=degrade, dsr=dsr,
                                dsr_weights=dsr_weights,
                                labels=list(labels) or None, arch=arch, cards=list(cards) or None, device=device,
                                batch_size=batch_size,
                                cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet,
                                allow_outside_root=allow_outside_root, command=command_line())
    _bench_output(report, out, as_json)


@bench.command("ijb")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--root", "root", required=True, type=PATH,
              help="The IJB release folder holding meta/ and loose_crop/ (or the folder holding IJBC/, IJBB/).")
@click.option("--target", type=click.Choice(["IJBC", "IJBB"], case_sensitive=False), default="IJBC",
              show_default=True, help="Which set: its files are meta/<target>_face_tid_mid.txt etc.")
@click.option("--no-flip", is_flag=True,
              help="Embed each crop alone (the reference adds its mirror image's embedding: F1).")
@click.option("--no-norm", is_flag=True,
              help="Drop the norm score: L2-normalise each image feature before pooling (the reference's "
                   "use_norm_score=False, N0; by default features keep their norm as a quality weight, N1).")
@click.option("--no-detector-score", is_flag=True,
              help="Do not weight image features by their detector score (the reference's D0; default D1).")
@options(ENGINE_OPTIONS)
@OUT(help="Write bench-ijb.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_ijb_cmd(weights, labels, arch, cards, root, target, no_flip, no_norm, no_detector_score, device, batch_size,
                  cache_dir, no_cache, quiet, out, as_json):
    """IJB-C / IJB-B template protocols: 1:1 TAR@FAR 1e-6 … 1e-1 with pair counts and, where the
    1:N files are present, rank-1/5/10 and TPIR@FPIR 1e-2, 1e-1 per gallery (G1, G2; IJB-B S1, S2).

    As insightface's ijb_11.py / ijb_1n.py: each loose crop aligned by its five landmarks to the
    ArcFace template, embedded with its mirror image (summed); image features keep their norm and
    are weighted by the detector score (the reference's switches, --no-flip, --no-norm,
    --no-detector-score, named in the report); media = mean of its images, template = sum of its
    media, L2-normalised; cosine between templates. Needs scikit-image (pip install 'facediag[ijb]').

    \b
    Examples:
      facediag bench ijb -w edgeface_xxs.pt --root IJB_release/IJBC --target IJBC
      facediag bench ijb -w a.pt -w b.pt --root IJB_release --target IJBB --out reports/ijbb
      facediag bench ijb -w ft.pt --root IJBC --no-norm --no-detector-score --json
      facediag bench ijb -w edgeface_xxs.pt -w arcface.onnx --card edgeface.toml --card arcface.toml --root IJBC
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.ijb import bench_ijb

    _one_each(weights, labels=labels, cards=cards)
    check_outputs([*_bench_outputs("ijb", out), *out_cache(cache_dir, not no_cache)],
                  inputs=[("--weights", list(weights)), ("--card", list(cards))],
                  roots=[("--root", root)])
    report = bench_ijb(list(weights), root, target.upper(), flip=not no_flip, norm_score=not no_norm,
                       detector_score=not no_detector_score, labels=list(labels) or None, arch=arch,
                       cards=list(cards) or None, device=device,
                       batch_size=batch_size, cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet,
                       command=command_line())
    _bench_output(report, out, as_json)


@bench.command("tinyface")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--root", "root", required=True, type=PATH,
              help="The folder holding tinyface/Testing_Set/ (the TinyFace release, Probe/, Gallery_Match/, "
                   "Gallery_Distractor/ and the two .mat lists) and the aligned copy, if any.")
@click.option("--aligned-dir", "aligned_dir", default=None,
              help="Embed this pre-aligned copy under --root instead of the original images (AdaFace's: "
                   "aligned_pad_0.1_pad_high, holding Probe/, Gallery_Match/, Gallery_Distractor/ with the same "
                   "file stems). Without it the tiny originals are brought to 112×112 by bicubic interpolation.")
@click.option("--no-flip", is_flag=True,
              help="Embed each image alone (the reference adds its mirror image's raw embedding, then "
                   "L2-normalises: pre_norm_vector_add).")
@options(ENGINE_OPTIONS)
@OUT(help="Write bench-tinyface.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_tinyface_cmd(weights, labels, arch, cards, root, aligned_dir, no_flip, device, batch_size, cache_dir,
                       no_cache, quiet, out, as_json):
    """TinyFace closed-set identification: rank-1/5/10/20 and mAP over the test split (3,728 probes
    against Gallery_Match + 153k distractors), with the published rows beside ours.

    As AdaFace's validate_tinyface.py: gallery = Gallery_Match + every Gallery_Distractor image,
    probes = Probe, identity = the file name up to its first '_' (the .mat lists and the folders
    must agree); each image embedded with its mirror image (raw embeddings summed, then
    L2-normalised); inner product; CMC over the probes whose identity is in the gallery (ties
    count against the probe); mAP as the release's evaluation computes it. Scores are streamed
    over gallery chunks: memory holds the embeddings, not the score matrix. A model card whose
    name is a published key (e.g. adaface-ir101-webface12m) names the row it should match. Each
    row also carries rank-1 and the genuine score by native probe size, and the
    error-versus-discard curves for size, blur and embedding norm.

    \b
    Examples:
      facediag bench tinyface -w edgeface_xxs.pt --root tinyface_root --aligned-dir aligned_pad_0.1_pad_high
      facediag bench tinyface -w adaface_ir101_webface12m.onnx --card adaface.toml --root tinyface_root \\
          --aligned-dir aligned_pad_0.1_pad_high --out reports/tinyface
      facediag bench tinyface -w a.pt -w b.pt --root tinyface_root --json
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.tinyface import bench_tinyface

    _one_each(weights, labels=labels, cards=cards)
    check_outputs([*_bench_outputs("tinyface", out), *out_cache(cache_dir, not no_cache)],
                  inputs=[("--weights", list(weights)), ("--card", list(cards))],
                  roots=[("--root", root)])
    report = bench_tinyface(list(weights), root, aligned_dir=aligned_dir, flip=not no_flip,
                            labels=list(labels) or None, arch=arch, cards=list(cards) or None, device=device,
                            batch_size=batch_size, cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet,
                            command=command_line())
    _bench_output(report, out, as_json)


FIT_HELP = ("How each image is brought to 112×112: pad (the longer side scaled to 112, padded with black, aspect "
            "kept: facediag's rule) or stretch (resized to the square, as the public Python ports of these "
            "evaluations do).")


@bench.command("survface")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--root", "root", required=True, type=PATH,
              help="The QMUL-SurvFace release folder, holding Face_Identification_Test_Set/ and/or "
                   "Face_Verification_Test_Set/ (or the folder holding QMUL-SurvFace/).")
@click.option("--task", type=click.Choice(["all", "identification", "verification"]), default="all",
              show_default=True, help="Which protocol to run (all: whichever the release holds).")
@click.option("--no-flip", is_flag=True,
              help="Embed each image alone (default: the model preset's protocol; EdgeFace's adds the mirror "
                   "image's embedding before L2-normalising, as the public evaluations average the two).")
@click.option("--fit", type=click.Choice(["pad", "stretch"]), default="pad", show_default=True, help=FIT_HELP)
@options(ENGINE_OPTIONS)
@OUT(help="Write bench-survface.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_survface_cmd(weights, labels, arch, cards, root, task, no_flip, fit, device, batch_size, cache_dir, no_cache,
                       quiet, out, as_json):
    """QMUL-SurvFace: open-set watch-list identification (TPIR at FPIR 0.3, 0.2, 0.1 at rank 20 and
    rank 1, area under the TPIR–FPIR curve, closed-set rank-k) and verification (TAR at FAR 0.3,
    0.1, 0.01, 0.001, AUC, 10-fold mean accuracy) on native surveillance faces.

    The lists are read from the release's .mat files (gallery_img_ID_pairs.mat and
    mated_probe_img_ID_pairs.mat beside the identification images; positive_pairs_names.mat and
    negative_pairs_names.mat beside the verification images); every image in unmated_probe/ is an
    unmated search. One template per watch-list identity (the mean of its normalised image
    features); cosine; ties count against the probe. An FPIR (FAR) target is reported only when
    unmated searches (negative pairs) × target ≥ 10. Each identification row also carries rank-1
    and the genuine score by native probe size, and the error-versus-discard curves.

    \b
    Examples:
      facediag bench survface -w edgeface_xxs.pt --root QMUL-SurvFace
      facediag bench survface -w a.pt -w b.pt --root QMUL-SurvFace --task verification --out reports/survface
      facediag bench survface -w edgeface_xxs.pt --root QMUL-SurvFace --fit stretch --json
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.survface import bench_survface

    _one_each(weights, labels=labels, cards=cards)
    check_outputs([*_bench_outputs("survface", out), *out_cache(cache_dir, not no_cache)],
                  inputs=[("--weights", list(weights)), ("--card", list(cards))], roots=[("--root", root)])
    report = bench_survface(list(weights), root, tasks=None if task == "all" else (task,),
                            flip=False if no_flip else None, fit=fit, labels=list(labels) or None, arch=arch,
                            cards=list(cards) or None, device=device, batch_size=batch_size, cache_dir=cache_dir,
                            use_cache=not no_cache, progress=not quiet, command=command_line())
    _bench_output(report, out, as_json)


@bench.command("scface")
@CHECKPOINTS()
@LABELS()
@ARCH(help="Force the variant of every checkpoint instead of detecting it.")
@CARDS
@click.option("--root", "root", required=True, type=PATH,
              help="The SCface folder: mugshots {id}_frontal.* and camera shots {id}_cam{1-5}_{1,2,3}.* (face crops) "
                   "are found anywhere below it.")
@click.option("--mugshots", "mugshots", type=PATH, default=None,
              help="Read the mugshots only from this folder (when the release holds differing copies, e.g. the "
                   "original and the cropped mugshots).")
@click.option("--surveillance", "surveillance", type=PATH, default=None,
              help="Read the camera shots only from this folder.")
@click.option("--per-camera", is_flag=True, help="Also a row per camera and distance.")
@click.option("--no-gap", is_flag=True,
              help="Leave out the synthetic rows: the mugshots degraded (bicubic and realistic) to each distance's "
                   "median native face size, and the gap to the native probes.")
@click.option("--no-flip", is_flag=True,
              help="Embed each image alone (default: the model preset's protocol; EdgeFace's adds the mirror "
                   "image's embedding).")
@click.option("--fit", type=click.Choice(["pad", "stretch"]), default="pad", show_default=True, help=FIT_HELP)
@options(ENGINE_OPTIONS)
@OUT(help="Write bench-scface.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_scface_cmd(weights, labels, arch, cards, root, mugshots, surveillance, per_camera, no_gap, no_flip, fit,
                     device, batch_size, cache_dir, no_cache, quiet, out, as_json):
    """SCface: the surveillance cameras' shots at distance 1 (4.20 m), 2 (2.60 m) and 3 (1.00 m)
    against the frontal mugshots: rank-1/5 and TAR@FAR per distance and together (per camera with
    --per-camera), the median native face size per distance, and the gap: rank-1 of the mugshots
    degraded synthetically (bicubic and realistic) to each distance's median face size, beside
    the native probes' rank-1.

    Probes are used as they are (crop the faces first). One template per person (the mugshot's
    normalised feature); cosine; ties count against the probe; a FAR is reported only when
    impostor pairs × FAR ≥ 10. The row of all distances also carries rank-1 and the genuine score
    by native face size, and the error-versus-discard curves for size, blur and embedding norm.

    \b
    Examples:
      facediag bench scface -w edgeface_xxs.pt --root SCface_crops
      facediag bench scface -w a.pt -w b.pt --root SCface --mugshots SCface/mugshot_frontal_cropped_all --per-camera
      facediag bench scface -w edgeface_xxs.pt --root SCface_crops --no-gap --json
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.scface import bench_scface

    _one_each(weights, labels=labels, cards=cards)
    check_outputs([*_bench_outputs("scface", out), *out_cache(cache_dir, not no_cache)],
                  inputs=[("--weights", list(weights)), ("--card", list(cards))],
                  roots=[("--root", root), ("--mugshots", mugshots), ("--surveillance", surveillance)])
    report = bench_scface(list(weights), root, mugshots=mugshots, surveillance=surveillance, per_camera=per_camera,
                          gap=not no_gap, flip=False if no_flip else None, fit=fit, labels=list(labels) or None,
                          arch=arch, cards=list(cards) or None, device=device, batch_size=batch_size,
                          cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet, command=command_line())
    _bench_output(report, out, as_json)
