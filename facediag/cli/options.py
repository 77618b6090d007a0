"""What every command shares: exit codes, consoles, error handling, and each option defined once.

An option is defined here once, as a factory: ``DEVICE()`` is the decorator, and
``OUT(help=...)`` the same option with the text a command needs. Groups of options are
plain lists (``DATA_OPTIONS``, ``MODEL_OPTIONS``) applied with ``apply``; a command that
needs most of a group takes ``without(DATA_OPTIONS, "vlr_size")``.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from facediag.data.aligner import ALIGN_CHOICES
from facediag.data.degradation import MODES as DEGRADE_MODES
from facediag.data.detect import missing_extra as missing_align_extra
from facediag.data.index import DEFAULT_SUBJECT_REGEX, LAYOUTS
from facediag.errors import FacediagError
from facediag.metrics.operating_point import parse_threshold_from
from facediag.io import atomic_write_text
from facediag.models.dsr import trust_dsr_code as set_dsr_trust
from facediag.protocols.index import INDEXES
from facediag.protocols.index import missing_extra as missing_index_extra
from facediag.session import SessionConfig

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

console = Console()
err_console = Console(stderr=True)

PATH = click.Path(path_type=Path)
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."


# ------------------------------------------------------------------------ errors, exit codes
def error_line(message: str) -> None:
    """One line on stderr: ``error: <message>`` (never wrapped, never read as markup)."""
    err_console.print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}",
                      highlight=False, soft_wrap=True)


def handle_errors(fn):
    """FacediagError -> one line, exit 2; anything unexpected -> exit 3."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacediagError as exc:
            error_line(str(exc))
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            err_console.print(f"[bold red]internal error:[/] {escape(f'{type(exc).__name__}: {exc}')}",
                              highlight=False)
            err_console.print("This is a bug in facediag; run with FACEDIAG_DEBUG=1 for the traceback.")
            if debug():
                raise
            sys.exit(EXIT_INTERNAL)

    return wrapper


def debug() -> bool:
    return os.environ.get("FACEDIAG_DEBUG", "") not in ("", "0")


def usage_line(exc: click.ClickException) -> str:
    """Click's three-line usage error as one: ``no such option: --foo (see facediag run-all --help)``."""
    message = " ".join(exc.format_message().split())
    if message[:1].isupper() and message[1:2].islower():  # "No such option" -> "no such option"; "DSR ..." stays
        message = message[0].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message = f"{message.removesuffix('.')} (see {ctx.command_path} --help)"
    return message


class FacediagGroup(click.Group):
    """A click group whose usage errors are one line on stderr (exit 2), also under CliRunner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            err_console.print("aborted")
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `facediag`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            error_line(usage_line(exc))
            sys.exit(exc.exit_code)
        # --help and --version end by click.exceptions.Exit, returned as its code here
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


# ----------------------------------------------------------------------------- the options
def config_default(config: type, name: str):
    """The default of a config dataclass's field: an option's default is its owner's."""
    return next(f.default for f in fields(config) if f.name == name and f.default is not MISSING)


def option(*decls, **attrs) -> Callable[..., Callable]:
    """An option defined once: call the result for its decorator, with overrides where a
    command needs them (``help=...``, ``required=True``; names, e.g. ``"--out"`` without ``-o``)."""

    def make(*names, **overrides):
        return click.option(*(names or decls), **{**attrs, **overrides})

    return make


def apply(*decorators):
    """Apply option decorators so they show in --help in the order given."""

    def deco(fn):
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return deco


def without(group: list, *names: str) -> list:
    """A group of (name, decorator) less the named options."""
    unknown = set(names) - {n for n, _ in group}
    if unknown:
        raise ValueError(f"no such option in the group: {', '.join(sorted(unknown))}")
    return [(n, d) for n, d in group if n not in names]


def options(group: list):
    """The decorator for a group of (name, decorator)."""
    return apply(*(d for _, d in group))


def vlr_size(ctx, param, value):
    """A probe size in pixels (4-112), or 'hr' for full resolution."""
    if value is None or str(value).strip().lower() == "hr":
        return None
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size in pixels or 'hr'") from None
    if not 4 <= size <= 112:
        raise click.BadParameter(f"{size} is not a VLR size: give 4 to 112 pixels, or 'hr' for full resolution")
    return size


# bench verification's --degrade once chose which image of a pair is degraded; that is --degrade-side now.
_OLD_DEGRADE = ("second", "both")


def degrade_mode(ctx, param, value):
    """--degrade: bicubic or realistic; the old side values are refused with the option's new name."""
    if value in DEGRADE_MODES:
        return value
    if value in _OLD_DEGRADE and ctx is not None and any(p.name == "degrade_side" for p in ctx.command.params):
        raise click.BadParameter(f"{value!r} is a side of the pair: that option is now --degrade-side {value} "
                                 f"(--degrade picks how images are degraded: {' or '.join(DEGRADE_MODES)})")
    raise click.BadParameter(f"{value!r}: choose {' or '.join(DEGRADE_MODES)}")


def int_list(ctx, param, value):
    try:
        values = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter("give positive integers, e.g. 1,8,64")
    return values


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)b?", re.IGNORECASE)


def byte_size(ctx, param, value):
    """A size in bytes from 500MB, 5GB, 1.5GiB, 2e9 or 1000000 (kB, MB, GB, TB: powers of 1000; KiB, MiB,
    GiB, TiB: powers of 1024)."""
    if value is None:
        return None
    text = str(value).strip()
    match = _SIZE.fullmatch(text)
    try:
        number, prefix, binary = (float(match[1]), match[2].lower(), match[3]) if match else (float(text), "", "")
    except ValueError:  # neither 5GB-like nor a plain number of bytes (2e9)
        number, prefix, binary = math.nan, "", ""
    size = number * (1024 if binary else 1000) ** " kmgtp".index(prefix or " ")
    if binary and not prefix or not 0 <= size < 2 ** 63:  # "5iB", nonsense, negative, endless
        raise click.BadParameter(f"{value!r} is not a size: give e.g. 500MB, 5GB or 1.5GiB")
    return int(size)


# data
DATA = option("--data", type=PATH, help="One data root: split per subject into gallery (first K HR images) and probes; "
                                        "or a root holding split folders (train/ + val/, gallery/ + probe/): gallery "
                                        "from the first, probes from the second.")
GALLERY_ROOT = option("--gallery-root", type=PATH, help="Enrol every HR image under this root (use with --probe-root).")
PROBE_ROOT = option("--probe-root", type=PATH, help="Probe with the images under this root.")
TRAIN_ROOT = option("--train-root", type=click.Path(exists=True, path_type=Path),
                    help="Training data (any layout), to check subject overlap with the evaluation data and find "
                         "training images that are copies or near-duplicates of evaluation images.")
DISTRACTORS = option("--distractors", type=click.Path(exists=True, path_type=Path),
                     help="Also probe with every HR image under this root (any layout): people in no gallery, as "
                          "in watch-list benchmarks. Identification then reports TPIR against FPIR (open set).")
GROUPS = option("--groups", type=PATH, metavar="FILE",
                help="Demographic groups: a CSV with a subject column, optionally an image (or path) column, and one "
                     "column per attribute (sex, age band, skin tone, ...); the data's manifest serves when it "
                     "carries such columns. Runs the demographic check: FMR and FNMR per group at one global "
                     "threshold, the cross-group FMR matrix, NIST's max/min and max/geomean ratios, FDR and GARBE.")
DEV_DATA = option("--dev-data", type=click.Path(exists=True, file_okay=False, path_type=Path),
                   help="A development set (any layout, split as --data is): the models evaluate it too, the same way, "
                        "and thresholds are fixed on it (at the EER, at each target FMR, at the minimum HTER: the "
                        "operating-point check) and applied to the evaluation data; scores are calibrated on it.")
DEV_GALLERY_ROOT = option("--dev-gallery-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                          help="A development set's gallery root (with --dev-probe-root), instead of --dev-data.")
DEV_PROBE_ROOT = option("--dev-probe-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="A development set's probe root (with --dev-gallery-root).")
LAYOUT = option("--layout", type=click.Choice(LAYOUTS), default=config_default(SessionConfig, "layout"),
                show_default=True,
                help="paired: hr_images/ + vlr_images*/; folders: root/<subject>/*; manifest: a CSV.")
SUBJECT_REGEX = option("--subject-regex", default=DEFAULT_SUBJECT_REGEX, show_default=True,
                       help="Subject id from a paired-layout filename (group 1).")
GALLERY_PER_SUBJECT = option("--gallery-per-subject", "-k", type=click.IntRange(min=1),
                             default=config_default(SessionConfig, "gallery_per_subject"), show_default=True,
                             help="HR images per subject that enrol (one-root split).")
VLR_SIZE = option("--vlr-size", default=str(config_default(SessionConfig, "vlr_size")), show_default=True,
                  callback=vlr_size,
                  help="Probes without a VLR file are area-downsampled to this many pixels, then DSR'd; "
                       "'hr' probes at full resolution.")
DEGRADE = option("--degrade", default=config_default(SessionConfig, "degrade"), show_default=True,
                 metavar="[" + "|".join(DEGRADE_MODES) + "]", callback=degrade_mode,
                 help="How a probe is brought to a low resolution: bicubic (area-downsampled, the field's synthetic "
                      "probe) or realistic (blur, downsampling, Gaussian + Poisson noise and JPEG drawn per image, "
                      "seeded by its content; every range in the report). Both are brought back to 112 by the DSR "
                      "stage.")
DSR_CODE_HELP = ("An ONNX DSR runs graph operators only (recommended). A TorchScript DSR is run as a plain "
                 "scripted module (one whose archive runs code on load is refused); a module:factory is your own "
                 "Python, imported and called like any import, so it needs --trust-dsr-code.")
DSR = option("--dsr", help="Super-resolution model: an ONNX or TorchScript file, or module:factory with "
                           f"--dsr-weights. Default: bicubic. {DSR_CODE_HELP}")
DSR_WEIGHTS = option("--dsr-weights", type=PATH, help="state_dict for --dsr module:factory.")


def trust_dsr_code(ctx, param, value):
    """--trust-dsr-code: the DSR's own code may run for this command (and only this one)."""
    if value:
        previous = set_dsr_trust(True)
        ctx.call_on_close(lambda: set_dsr_trust(previous))
    return value


TRUST_DSR_CODE = option("--trust-dsr-code", is_flag=True, expose_value=False, callback=trust_dsr_code,
                        help="Run the --dsr model's own code: a module:factory (Python, imported and called) "
                             "or a TorchScript archive whose code runs on load (__setstate__). Only for DSR "
                             "code you trust as you would a Python import.")
BATCH_SIZE = option("--batch-size", type=click.IntRange(min=1), default=config_default(SessionConfig, "batch_size"),
                    show_default=True)
CACHE_DIR = option("--cache-dir", type=PATH,
                   help="Embedding cache folder (default $FACEDIAG_CACHE, else ~/.cache/facediag/embeddings; "
                        "see facediag cache info).")
NO_CACHE = option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache.")


def align_choice(ctx, param, value):
    """--align mtcnn|auto needs the align extra: its install line now, before any work."""
    if value != "none":
        reason = missing_align_extra()
        if reason:
            raise click.BadParameter(reason)
    return value


ALIGN = option("--align", type=click.Choice(ALIGN_CHOICES), default=config_default(SessionConfig, "align"),
               show_default=True, callback=align_choice,
               help="mtcnn: detect each HR image's face and warp it to the ArcFace 112 template on the fly, "
                    "before degradation and DSR (landmarks cached by image content; an image with no face is "
                    "used as given and counted); auto: only when the alignment check finds the faces as given "
                    "not aligned; none: as given. Needs the align extra.")


def index_choice(ctx, param, value):
    """--index faiss* needs the faiss extra: its install line now, before any work."""
    reason = missing_index_extra(value)
    if reason:
        raise click.BadParameter(reason)
    return value


INDEX = option("--index", type=click.Choice(INDEXES), default=config_default(SessionConfig, "index"),
               show_default=True, callback=index_choice,
               help="Where each probe's best templates (rank-k, CMC, open set) come from. exact: chunked torch "
                    "matrix products; faiss: faiss flat inner product, the same answer; faiss-ivf, faiss-hnsw: "
                    "approximate, as a deployment on that index would answer, with the index's recall@1/@10 "
                    "against exact search reported. Verification metrics always come from the exact pass. "
                    "Needs the faiss extra.")
ALLOW_OUTSIDE_ROOT = option("--allow-outside-root", is_flag=True,
                            help="Let a manifest CSV name files outside its own folder (absolute or ../ paths).")

# shared by many commands
DEVICE = option("--device", default="auto", show_default=True, help=DEVICE_HELP)
QUIET = option("--quiet", "-q", is_flag=True, help="No progress bars.")
ARCH = option("--arch", help="Force the variant instead of detecting it from the keys.")
CARD = option("--card", type=PATH,
              help="A model card (TOML: input size, mean/std, channel order, embedding size, threshold, flip, "
                   "family) for a face embedder that is not EdgeFace. Default: <weights file>.toml beside the "
                   "model, if there is one; else EdgeFace's preset.")
CHECKPOINTS = option("--weights", "-w", "weights", multiple=True, required=True, type=PATH,
                     help="A checkpoint; repeat to compare several in one table.")
LABELS = option("--label", "labels", multiple=True,
                help="A name per --weights, in the same order (default: file stem).")
SUITE = option("--suite", default="default", show_default=True,
               help="A suite TOML (checks and thresholds): a path, or a name from checks/.")
OUT = option("--out", "-o", type=PATH, help="Write report.json, report.html, report.md and junit.xml here.")
MAX_DROP = option("--max-drop", multiple=True, metavar="METRIC=VALUE",
                  help="Gate tolerance, e.g. rank1=0.01 or verification.eer=0.02 "
                       "(repeatable; over the suite's [gate]).")
N_BOOT = option("--n-boot", type=click.IntRange(100), default=1000, show_default=True, help="Bootstrap resamples.")
AS_JSON = option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
SEED = option("--seed", type=int, default=0, show_default=True)

# the checkpoint under test and the gate
WEIGHTS = option("--weights", "-w", type=PATH, required=True,
                 help="The checkpoint to check (state_dict, training dict, TorchScript or safetensors).")
BASELINE_WEIGHTS = option("--baseline-weights", type=PATH,
                          help="A reference checkpoint (usually the pretrained one) for pretrained-baseline.")
BASELINE_CARD = option("--baseline-card", type=PATH,
                       help="The model card of --baseline-weights (default: the one beside it, if any).")
FAIL_ON = option("--fail-on", type=click.Choice(["fail", "warn"]), default=None,
                 help="Exit 1 on FAIL (default, or the suite's fail_on) or also on WARN.")
BASELINE_REPORT = option("--baseline-report", type=PATH,
                         help="Gate against this report.json: exit 1 when a gated metric fell beyond its tolerance "
                              "and noise.")
SAVE_BASELINE = option("--save-baseline", type=PATH,
                       help="Also write this run's report.json here, to gate later runs against "
                            "(only when the run passes, unless --force-save-baseline).")
FORCE_SAVE_BASELINE = option("--force-save-baseline", is_flag=True,
                             help="Save --save-baseline even from a run that failed.")


def threshold_from(ctx, param, value):
    """--threshold-from dev:CRITERION, checked as it is read (one line, exit 2)."""
    if value is None:
        return None
    try:
        parse_threshold_from(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value.strip()


THRESHOLD_FROM = option("--threshold-from", callback=threshold_from, metavar="dev:CRITERION",
                        help="Run every check (and the gate, and compare's verdicts) at the threshold fixed on the "
                             "development set (--dev-data) by CRITERION: fmr=TARGET (e.g. dev:fmr=1e-3), eer or "
                             "min-hter; compare fixes each checkpoint's own. Default: the suite's or the model "
                             "preset's threshold. Reports say which.")
FORCE_BASELINE = option("--force-baseline", is_flag=True, help="Accept a --baseline-report made on different data.")

ENGINE_OPTIONS = [
    ("device", DEVICE()), ("batch_size", BATCH_SIZE()), ("cache_dir", CACHE_DIR()), ("no_cache", NO_CACHE()),
    ("quiet", QUIET()),
]
"""How images are embedded: every command that embeds takes these."""

DATA_OPTIONS = [
    ("data", DATA()), ("gallery_root", GALLERY_ROOT()), ("probe_root", PROBE_ROOT()), ("train_root", TRAIN_ROOT()),
    ("distractors", DISTRACTORS()), ("groups", GROUPS()),
    ("dev_data", DEV_DATA()), ("dev_gallery_root", DEV_GALLERY_ROOT()), ("dev_probe_root", DEV_PROBE_ROOT()),
    ("layout", LAYOUT()), ("subject_regex", SUBJECT_REGEX()), ("gallery_per_subject", GALLERY_PER_SUBJECT()),
    ("vlr_size", VLR_SIZE()), ("degrade", DEGRADE()), ("dsr", DSR()), ("dsr_weights", DSR_WEIGHTS()),
    ("trust_dsr_code", TRUST_DSR_CODE()),
    ("align", ALIGN()), ("index", INDEX()),
    *ENGINE_OPTIONS,
    ("allow_outside_root", ALLOW_OUTSIDE_ROOT()),
]
"""Where the faces are and how probes are made: shared by every command that evaluates."""

MODEL_OPTIONS = [
    ("weights", WEIGHTS()), ("arch", ARCH()), ("card", CARD()), ("baseline_weights", BASELINE_WEIGHTS()),
    ("baseline_card", BASELINE_CARD()), ("suite", SUITE()),
    ("out", OUT()), ("fail_on", FAIL_ON()), ("baseline_report", BASELINE_REPORT()), ("max_drop", MAX_DROP()),
    ("save_baseline", SAVE_BASELINE()), ("force_save_baseline", FORCE_SAVE_BASELINE()),
    ("force_baseline", FORCE_BASELINE()), ("threshold_from", THRESHOLD_FROM()),
]
"""The checkpoint under test, the suite, the outputs and the gate (run-all and run)."""

data_options = options(DATA_OPTIONS)
model_options = options(MODEL_OPTIONS)


# SessionConfig fields set from an option of another name, in the opposite sense.
NEGATED_OPTIONS = {"use_cache": "no_cache", "progress": "quiet"}


def session_config(weights, **options) -> SessionConfig:
    """A SessionConfig from the parsed options (DATA_OPTIONS, the checkpoints, their model cards):
    each field from the option of its name, ``use_cache`` and ``progress`` from --no-cache and
    --quiet; a field that no option sets keeps its default."""
    values = {"weights": weights}
    for f in fields(SessionConfig):
        if f.name in options:
            values[f.name] = options[f.name]
        elif NEGATED_OPTIONS.get(f.name) in options:
            values[f.name] = not options[NEGATED_OPTIONS[f.name]]
    return SessionConfig(**values)


def command_line() -> str:
    return shlex.join(["facediag", *sys.argv[1:]])


def save_rank_counts(counts: list[dict] | None) -> None:
    """Under torchrun with FACEDIAG_RANK_COUNTS=FILE, rank 0 writes there what each rank embedded
    (Session.rank_counts): a debugging aid that shows the work was shared, and what tests read."""
    path = os.environ.get("FACEDIAG_RANK_COUNTS")
    if path and counts is not None:
        atomic_write_text(path, json.dumps(counts, indent=1) + "\n")


def print_paths(label: str, paths, on_stderr: bool = False) -> None:
    (err_console if on_stderr else console).print(f"{label}: {', '.join(str(p) for p in paths)}",
                                                  highlight=False, soft_wrap=True)
