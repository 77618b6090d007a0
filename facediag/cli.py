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

from facediag import __version__
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
      facediag demo                                   # the whole story offline, no data needed
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
