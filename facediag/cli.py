"""The facediag command line. Thin: parse, build a Session, call library code, pick an exit code.

Exit codes: 0 pass; 1 a check failed or a regression beyond tolerance; 2 bad input or
usage (one clear line, no traceback); 3 internal error.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
from rich.console import Console

from facediag.version import __version__
from facediag.errors import FacediagError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

console = Console()
err_console = Console(stderr=True)


def _vlr_size(ctx, param, value):
    if value is None or str(value).lower() in ("hr", "none", "0"):
        return None
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size in pixels or 'hr'") from None
    if not 4 <= size <= 112:
        raise click.BadParameter("a VLR size must be between 4 and 112 pixels (or 'hr')")
    return size


def data_options(fn):
    """Where the faces are and how probes are made: shared by every command that evaluates."""
    opts = [
        click.option("--data", type=click.Path(path_type=Path), help="One data root: split per subject into gallery (first K HR images) and probes."),
        click.option("--gallery-root", type=click.Path(path_type=Path), help="Enrol every HR image under this root (use with --probe-root)."),
        click.option("--probe-root", type=click.Path(path_type=Path), help="Probe with the images under this root."),
        click.option("--train-root", type=click.Path(path_type=Path), help="Training data, to check subject overlap with the evaluation data."),
        click.option("--layout", type=click.Choice(["auto", "paired", "folders", "manifest"]), default="auto", show_default=True,
                     help="paired: hr_images/ + vlr_images*/; folders: root/<subject>/*; manifest: a CSV."),
        click.option("--subject-regex", default=r"^([^_]+)_", show_default=True, help="Subject id from a paired-layout filename (group 1)."),
        click.option("--gallery-per-subject", "-k", type=int, default=3, show_default=True, help="HR images per subject that enrol (one-root split)."),
        click.option("--vlr-size", default="16", show_default=True, callback=_vlr_size,
                     help="Probes without a VLR file are area-downsampled to this many pixels, then DSR'd; 'hr' probes at full resolution."),
        click.option("--dsr", help="Super-resolution model: a TorchScript file, or module:factory with --dsr-weights. Default: bicubic."),
        click.option("--dsr-weights", type=click.Path(path_type=Path), help="state_dict for --dsr module:factory."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N."),
        click.option("--batch-size", type=int, default=64, show_default=True),
        click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache (default ~/.cache/facediag/embeddings or $FACEDIAG_CACHE)."),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def session_config(weights, *, baseline_weights=None, arch=None, baseline_arch=None, **kw):
    from facediag.session import SessionConfig

    return SessionConfig(
        weights=weights, baseline_weights=baseline_weights, arch=arch, baseline_arch=baseline_arch,
        data=kw["data"], gallery_root=kw["gallery_root"], probe_root=kw["probe_root"], train_root=kw["train_root"],
        layout=kw["layout"], subject_regex=kw["subject_regex"], gallery_per_subject=kw["gallery_per_subject"],
        vlr_size=kw["vlr_size"], dsr=kw["dsr"], dsr_weights=kw["dsr_weights"], device=kw["device"],
        batch_size=kw["batch_size"], cache_dir=kw["cache_dir"], use_cache=not kw["no_cache"],
        progress=not kw["quiet"])


def handle_errors(fn):
    """FacediagError -> one line, exit 2; anything unexpected -> exit 3."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacediagError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False)
            err_console.print("This is a bug in facediag; run with FACEDIAG_DEBUG=1 for the traceback.")
            if _debug():
                raise
            sys.exit(EXIT_INTERNAL)

    return wrapper


def _debug() -> bool:
    import os

    return os.environ.get("FACEDIAG_DEBUG", "") not in ("", "0")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="facediag")
def cli():
    """facediag: find out whether a face-recognition embedder really works.

    \b
    Checks a fine-tuned EdgeFace checkpoint the way it will be used — HR gallery,
    low-resolution probes through super-resolution, cosine matching — and names what
    is wrong when training metrics lied.

    \b
    Start here:
      facediag inspect edgeface.pth                   # what is in a checkpoint
      facediag run-all --weights ft.pth --data faces/ # every check, with diagnoses
    """


@cli.command()
@click.argument("weights", type=click.Path(path_type=Path))
@click.option("--arch", help="Force a variant (edgeface_xxs, edgeface_xs_gamma_06, ...) instead of detecting it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@handle_errors
def inspect(weights, arch, as_json):
    """What a checkpoint holds: variant, format, parameters, head, label map, fingerprint.

    Loading is strict and safe: nothing in the file is executed, and a checkpoint that
    matches no EdgeFace variant is refused rather than loaded into a random backbone.

    \b
    Example:
      facediag inspect edgeface_xxs.pt --json
    """
    from facediag.models.checkpoint import load_checkpoint
    from facediag.inspect import inspect_dict, render_inspect

    info = inspect_dict(load_checkpoint(weights, arch=arch))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        render_inspect(info, console)


def model_options(fn):
    opts = [
        click.option("--weights", "-w", type=click.Path(path_type=Path), required=True,
                     help="The checkpoint to check (state_dict, training dict, TorchScript or safetensors)."),
        click.option("--arch", help="Force the variant instead of detecting it from the keys."),
        click.option("--baseline-weights", type=click.Path(path_type=Path),
                     help="A reference checkpoint (usually the pretrained one) for pretrained-baseline."),
        click.option("--suite", default="default", show_default=True,
                     help="A suite TOML (checks and thresholds): a path, or a name from checks/."),
        click.option("--out", "-o", type=click.Path(path_type=Path),
                     help="Write report.json, report.html, report.md and junit.xml here."),
        click.option("--fail-on", type=click.Choice(["fail", "warn"]), default=None,
                     help="Exit 1 on FAIL (default, or the suite's fail_on) or also on WARN."),
        click.option("--baseline-report", type=click.Path(path_type=Path),
                     help="Gate against this report.json: exit 1 when a gated metric fell beyond its tolerance and noise."),
        click.option("--max-drop", multiple=True, metavar="METRIC=VALUE",
                     help="Gate tolerance, e.g. rank1=0.01 or verification.eer=0.02 (repeatable; over the suite's [gate])."),
        click.option("--save-baseline", type=click.Path(path_type=Path),
                     help="Also write this run's report.json here, to gate later runs against."),
        click.option("--force-baseline", is_flag=True, help="Accept a --baseline-report made on different data."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run_and_report(names, weights, arch, baseline_weights, suite, out, fail_on, **kw):
    from facediag.gate import BaselineGate
    from facediag.render import render_terminal, write_all
    from facediag.runner import exit_code, run_suite
    from facediag.session import Session
    from facediag.suites import load_suite

    baseline_report, max_drop = kw.pop("baseline_report"), kw.pop("max_drop")
    save_baseline, force_baseline = kw.pop("save_baseline"), kw.pop("force_baseline")
    suite_obj = load_suite(suite)
    if names:
        suite_obj = suite_obj.only(list(names))
    session = Session(session_config(weights, baseline_weights=baseline_weights, arch=arch, **kw))
    session.model("model")  # a bad checkpoint is bad input: fail before any work
    if baseline_weights:
        session.model("baseline")
    gate = None
    if baseline_report:
        gate = BaselineGate.load(baseline_report, suite_obj, max_drop, session.dataset_info(), force=force_baseline)
    elif max_drop or force_baseline:
        raise FacediagError("--max-drop and --force-baseline need --baseline-report")
    report = run_suite(session, suite_obj)
    if gate:
        report.gate = gate.evaluate(report, session)
    render_terminal(report, console)
    if out:
        paths = write_all(report, out)
        console.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)
    if save_baseline:
        console.print(f"baseline: {report.save(save_baseline)}", highlight=False)
    sys.exit(exit_code(report, fail_on or suite_obj.fail_on))


@cli.command("run-all")
@model_options
@data_options
@handle_errors
def run_all_cmd(weights, arch, baseline_weights, suite, out, fail_on, **kw):
    """Run every check of a suite on one checkpoint and diagnose what is wrong.

    The gallery is built from HR images only; probes go VLR → DSR → EdgeFace, as in
    deployment. Each image is decoded and embedded once and cached on disk, so a
    second run over the same data and weights embeds nothing.

    \b
    Exit codes: 0 pass, 1 a check failed, 2 bad input, 3 internal error.

    \b
    Examples:
      facediag run-all --weights edgeface_contrastive.pth --data faces/ --out reports/run1
      facediag run-all -w ft.pth --gallery-root train --probe-root val --baseline-weights edgeface_xxs.pt
      facediag run-all -w ft.pth --data orl_faces --vlr-size 16 --fail-on warn
    """
    _run_and_report((), weights, arch, baseline_weights, suite, out, fail_on, **kw)


@cli.command("run")
@click.argument("checks", nargs=-1, required=True)
@model_options
@data_options
@handle_errors
def run_cmd(checks, weights, arch, baseline_weights, suite, out, fail_on, **kw):
    """Run only the named checks (see `facediag list-checks`).

    \b
    Example:
      facediag run pair-gap identification --weights ft.pth --data faces/
    """
    _run_and_report(checks, weights, arch, baseline_weights, suite, out, fail_on, **kw)


@cli.command("list-checks")
@click.option("--suite", default=None, help="Show the thresholds a suite sets (default: the checks' own).")
@handle_errors
def list_checks(suite):
    """List every registered check, what it needs and its default thresholds.

    \b
    Example:
      facediag list-checks --suite checks/ci.toml
    """
    from rich.table import Table

    from facediag.checks.registry import all_checks
    from facediag.suites import load_suite

    suite_obj = load_suite(suite) if suite else None
    table = Table(title="facediag checks", title_justify="left")
    for col in ("check", "what it tells you", "needs", "thresholds"):
        table.add_column(col, overflow="fold")
    for name, cls in all_checks().items():
        params = suite_obj.params(name) if suite_obj and name in suite_obj.checks else cls.params
        mark = "" if suite_obj is None or name in suite_obj.checks else " (not in suite)"
        table.add_row(f"[bold]{name}[/]{mark}", cls.title, ", ".join(cls.requires) or "—",
                      ", ".join(f"{k}={v}" for k, v in params.items()))
    console.print(table)


@cli.command()
@click.argument("report_json", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "junit", "json", "terminal"]), default="terminal",
              show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
@handle_errors
def render(report_json, fmt, out):
    """Re-render a saved report.json (of run-all or compare) as HTML, Markdown, JUnit XML
    or in the terminal.

    \b
    Examples:
      facediag render reports/run1/report.json --format html -o run1.html
      facediag render reports/compare/report.json
    """
    from facediag.render import render as render_report
    from facediag.render import render_terminal
    from facediag.results import load_result

    report = load_result(report_json)
    if fmt == "terminal":
        render_terminal(report, console)
        return
    text = render_report(report, fmt)
    if out:
        from facediag.io import atomic_write_text

        atomic_write_text(out, text)
        console.print(f"wrote {out}")
    else:
        click.echo(text)


@cli.group()
def bench():
    """Benchmark checkpoints: accuracy per probe resolution (and DSR vs bicubic), speed and size.

    \b
    Examples:
      facediag bench accuracy -w edgeface_xxs.pt --data orl_faces --resolutions 12,16,24,32,hr
      facediag bench speed --variant xxs --variant base --device cpu --batch-sizes 1,8,64
    """


def _bench_data_options(fn):
    """run-all's data options, less the ones bench sets itself (--vlr-size: --resolutions)."""
    def probe():
        pass

    params = data_options(probe).__click_params__  # click stores a command's options here, last first
    for param in params:
        if param.name not in ("vlr_size", "train_root"):
            fn.__click_params__ = [*getattr(fn, "__click_params__", []), param]
    return fn


def _int_list(ctx, param, value):
    try:
        values = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter("give positive integers, e.g. 1,8,64")
    return values


def _command_line() -> str:
    import shlex

    return shlex.join(["facediag", *sys.argv[1:]])


def _bench_output(report, out, as_json):
    from facediag.render import render_terminal, write_all

    if as_json:
        click.echo(report.to_json())
    else:
        render_terminal(report, console)
    if out:
        paths = write_all(report, out)
        (err_console if as_json else console).print(
            f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False, soft_wrap=True)


@bench.command("accuracy")
@click.option("--weights", "-w", "weights", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A checkpoint; repeat to compare several in one table.")
@click.option("--label", "labels", multiple=True, help="A name per --weights, in the same order (default: file stem).")
@click.option("--arch", help="Force the variant of every checkpoint instead of detecting it.")
@click.option("--resolutions", default="12,16,24,32,hr", show_default=True,
              help="Probe sizes in pixels (area-downsampled from HR, then upsampled to 112) and/or 'hr'.")
@click.option("--threshold", type=float, default=0.35, show_default=True, help="Cosine acceptance threshold.")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for the CIs.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write bench-accuracy.json/.html/.md here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@_bench_data_options
@handle_errors
def bench_accuracy_cmd(weights, labels, arch, resolutions, threshold, n_boot, out, as_json, **kw):
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
    """
    from facediag.bench import bench_accuracy

    if labels and len(labels) != len(weights):
        raise FacediagError(f"{len(labels)} --label for {len(weights)} --weights: give one per checkpoint or none")
    report = bench_accuracy(
        list(weights), kw.pop("data"), resolutions=resolutions, dsr=kw.pop("dsr"), dsr_weights=kw.pop("dsr_weights"),
        threshold=threshold, labels=list(labels) or None, arch=arch, n_boot=n_boot,
        use_cache=not kw.pop("no_cache"), progress=not kw.pop("quiet"), command=_command_line(), **kw)
    _bench_output(report, out, as_json)


@bench.command("speed")
@click.option("--weights", "-w", "weights", multiple=True, type=click.Path(path_type=Path),
              help="A checkpoint; repeatable.")
@click.option("--variant", "variants", multiple=True,
              help="Benchmark a variant with random weights (xxs, xs_gamma_06, s_gamma_05, base, xs_q, xxs_q); repeatable.")
@click.option("--arch", help="Force the variant of every --weights file.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--batch-sizes", default="1,8,64", show_default=True, callback=_int_list,
              help="Throughput at each of these batch sizes.")
@click.option("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's own choice).")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="Time the model after torch.compile.")
@click.option("--channels-last", is_flag=True, help="Channels-last memory format for weights and input.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before latency is timed.")
@click.option("--iters", type=int, default=50, show_default=True, help="Timed batch-1 runs for the latency median and p95.")
@click.option("--min-seconds", type=float, default=1.0, show_default=True,
              help="Run each batch size for at least this long for its throughput.")
@click.option("--no-timing", is_flag=True, help="Parameters and FLOPs only.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write bench-speed.json/.html/.md here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
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
    from facediag.bench import bench_speed

    report = bench_speed(list(weights), variants=list(variants), device=device, batch_sizes=batch_sizes,
                         threads=threads, dtype=dtype, compile=compile_, channels_last=channels_last,
                         warmup=warmup, iters=iters, min_seconds=min_seconds, timing=not no_timing, arch=arch,
                         command=_command_line())
    _bench_output(report, out, as_json)


@cli.command("train-contrastive")
@click.option("--weights", "-w", type=click.Path(path_type=Path), help="Pretrained EdgeFace to fine-tune (never overwritten). Omit to train --arch from scratch.")
@click.option("--arch", default="edgeface_xxs", show_default=True, help="Variant to train from scratch when no --weights.")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Training faces (paired, folders or manifest layout).")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Output state_dict; the sidecar .json, .history.json, .curves.png and .resume.pt go beside it.")
@click.option("--val-data", type=click.Path(path_type=Path), help="Validation faces. Default: hold out part of --data.")
@click.option("--val-split", type=click.Choice(["subjects", "images"]), default="subjects", show_default=True,
              help="Without --val-data: validate on held-out subjects, or on held-out images of every subject.")
@click.option("--val-fraction", type=float, default=0.25, show_default=True, help="Share of subjects (or images) held out.")
@click.option("--train-subjects", help="Subjects that train, e.g. 's1-s30' or 'a,b,c' (default: all not validated).")
@click.option("--val-subjects", help="Subjects that validate, e.g. 's31-s40'.")
@click.option("--seen-holdout", type=int, default=0, show_default=True,
              help="Also hold out this many images per training subject and report their rank-1 ('seen' column).")
@click.option("--layout", type=click.Choice(["auto", "paired", "folders", "manifest"]), default="auto", show_default=True)
@click.option("--subject-regex", default=r"^([^_]+)_", show_default=True, help="Subject id from a paired-layout filename.")
@click.option("--gallery-per-subject", "-k", type=int, default=3, show_default=True, help="HR images per validation subject that enrol.")
@click.option("--dsr", help="Super-resolution model (TorchScript file or module:factory). Default: bicubic.")
@click.option("--dsr-weights", type=click.Path(path_type=Path), help="state_dict for --dsr module:factory.")
@click.option("--vlr-size", type=int, default=16, show_default=True, help="Images without a VLR file are downsampled to this size, then DSR'd.")
@click.option("--views", type=click.Choice(["hr+lr", "hr"]), default="hr+lr", show_default=True,
              help="hr+lr: each image as HR and as DSR(VLR); hr: HR-only pretraining.")
@click.option("--objective", type=click.Choice(["supcon", "paired", "instance"]), default="supcon", show_default=True,
              help="supcon is the fix. paired and instance reproduce the known failures on purpose.")
@click.option("--batch-subjects", "-P", type=int, default=16, show_default=True, help="Subjects per batch.")
@click.option("--images-per-subject", "-K", type=int, default=4, show_default=True, help="Images per subject per batch.")
@click.option("--temperature", type=float, default=0.07, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option("--warmup-steps", type=int, help="Linear warm-up before cosine decay (default: 5% of all steps).")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--steps-per-epoch", type=int, help="Default: one pass over the training images.")
@click.option("--anchor-weight", type=float, default=0.0, show_default=True,
              help="Keep HR embeddings near the frozen pretrained model's (1 - cos), weighted by this.")
@click.option("--threshold", type=float, default=0.35, show_default=True, help="Operating point reported by validation.")
@click.option("--patience", type=int, help="Stop after this many epochs without a better validation rank-1.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-hflip", is_flag=True, help="No random horizontal flips.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--no-amp", is_flag=True, help="No bf16 autocast on CUDA.")
@click.option("--resume", is_flag=True, help="Continue from the .resume.pt state beside --out.")
@click.option("--save-every", type=int, help="Also save the resume state every N steps (default: each epoch).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def train_contrastive(weights, arch, data, out, val_data, val_split, val_fraction, train_subjects,
                      val_subjects, seen_holdout, layout, subject_regex, gallery_per_subject, dsr,
                      dsr_weights, vlr_size, views, objective, batch_subjects, images_per_subject,
                      temperature, lr, weight_decay, warmup_steps, epochs, steps_per_epoch,
                      anchor_weight, threshold, patience, seed, no_hflip, device, no_amp, resume,
                      save_every, quiet):
    """Fine-tune EdgeFace so DSR probes match their person's HR gallery; validate every
    epoch by gallery matching.

    Batches of P subjects × K images, each image as HR and as DSR(VLR); supervised
    contrastive loss over [DSR; HR] with subject labels; AdamW with warm-up and cosine
    decay. The checkpoint kept is the best by held-out gallery rank-1, never by paired
    similarity (shown beside it). Several GPUs: launch with torchrun.

    \b
    Examples:
      facediag train-contrastive -w edgeface_xxs.pt --data faces/ --out edgeface_contrastive.pth
      facediag train-contrastive -w edgeface_xxs.pt --data orl_faces --train-subjects s1-s30 \\
          --val-subjects s31-s40 --seen-holdout 3 --epochs 10 --out orl_ft.pth
      facediag train-contrastive ... --out orl_ft.pth --resume     # after Ctrl-C
      torchrun --nproc_per_node 4 -m facediag.cli train-contrastive ...
    """
    from facediag.train.config import parse_subjects
    from facediag.train.trainer import TrainConfig, train_contrastive as run_training

    cfg = TrainConfig(
        weights=weights, arch=arch, data=data, out=out, val_data=val_data, val_split=val_split,
        val_fraction=val_fraction, train_subjects=parse_subjects(train_subjects),
        val_subjects=parse_subjects(val_subjects), seen_holdout=seen_holdout, layout=layout,
        subject_regex=subject_regex, gallery_per_subject=gallery_per_subject, dsr=dsr,
        dsr_weights=dsr_weights, vlr_size=vlr_size, views=views, objective=objective,
        batch_subjects=batch_subjects, images_per_subject=images_per_subject,
        temperature=temperature, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
        epochs=epochs, steps_per_epoch=steps_per_epoch, anchor_weight=anchor_weight,
        threshold=threshold, patience=patience, seed=seed, hflip=not no_hflip, device=device,
        amp=not no_amp, resume=resume, save_every=save_every, progress=not quiet)
    run_training(cfg, console=console)



@cli.command("compare")
@click.argument("weights_a", type=click.Path(path_type=Path))
@click.argument("weights_b", type=click.Path(path_type=Path))
@click.option("--arch", help="Force the variant of both checkpoints instead of detecting it.")
@click.option("--suite", default="default", show_default=True,
              help="A suite TOML (checks, thresholds and [gate.max_drop]): a path, or a name from checks/.")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Write report.json, report.html, report.md and junit.xml here.")
@click.option("--max-drop", multiple=True, metavar="METRIC=VALUE",
              help="Gate: B may be worse than A by this much, e.g. rank1=0.01 (repeatable; over the suite's [gate]).")
@click.option("--n-boot", type=click.IntRange(100), default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--alpha", type=click.FloatRange(0, 0.5, min_open=True), default=0.05, show_default=True,
              help="Significance level (intervals at 1 − alpha).")
@data_options
@handle_errors
def compare_cmd(weights_a, weights_b, arch, suite, out, max_drop, n_boot, alpha, **kw):
    """Compare checkpoint B with A on the same data: is B better, worse, or the same?

    Both run the suite over the same records and the same DSR outputs (each image
    embedded once per model). Every metric is shown for A and B with the delta; rank-k,
    threshold accuracy and false accepts, EER and TAR@FAR get subject-level bootstrap
    intervals of B − A, per-probe correctness McNemar's exact test, and a verdict: better,
    worse or no significant change. Linear CKA and the score shifts say how far B moved.

    \b
    Exit codes: 0 B is not significantly worse on a gated metric, 1 it is, 2 bad input.

    \b
    Examples:
      facediag compare edgeface_xxs.pt finetuned.pth --data faces/ --out reports/cmp
      facediag compare a.pt b.pt --data orl_faces --suite checks/ci.toml --max-drop rank1=0.01
    """
    from facediag.compare import compare_session, exit_code
    from facediag.gate import tolerances
    from facediag.render import render_terminal as render_compare_terminal, write_all as write_compare
    from facediag.session import Session
    from facediag.suites import load_suite

    suite_obj = load_suite(suite)
    max_drop = tolerances(suite_obj, max_drop)
    session = Session(session_config(weights_a, baseline_weights=weights_b, arch=arch, baseline_arch=arch, **kw))
    session.model("model")  # bad checkpoints are bad input: fail before any work
    session.model("baseline")
    report = compare_session(session, suite_obj, max_drop=max_drop, n_boot=n_boot, alpha=alpha)
    render_compare_terminal(report, console)
    if out:
        paths = write_compare(report, out)
        console.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)
    sys.exit(exit_code(report))


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/demo"), show_default=True,
              help="Where the faces, checkpoints, reports and summary.md go.")
@click.option("--quick", is_flag=True, help="The same story at a smaller scale (about 4 min on 2 CPU cores; CI runs it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the faces and every training run.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes drawing the faces (default: up to 4).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def demo(out, quick, seed, device, workers, quiet):
    """The whole story offline on synthetic identities: no data, weights or network needed.

    About 9½ minutes on 2 CPU cores, most of it training.

    \b
    1. draws synthetic faces (training identities + disjoint held-out identities)
    2. trains a "pretrained" EdgeFace-xxs from scratch (contrastive, HR views)
    3. reproduces the failure: paired-only fine-tune, whose training metric reads ~1.000
    4. run-all + compare: facediag diagnoses the collapse
    5. the fix: contrastive fine-tune on HR + 16 px views, compared again
    6. writes faces, three checkpoints, every report and summary.md under --out

    Exit code 0 when all three verdicts hold (collapse caught, pretrained healthy, 16 px
    rank-1 gain from the fix), else 1.

    \b
    Example:
      facediag demo --quick --out /tmp/demo
    """
    from facediag.demo.story import DemoConfig, run_demo

    result = run_demo(DemoConfig(out=out, quick=quick, seed=seed, device=device, workers=workers,
                                 progress=not quiet), console=console)
    sys.exit(EXIT_OK if result.ok else EXIT_FAIL)


def main():
    """Console entry point: click usage errors are exit 2 already; keep ours consistent."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
