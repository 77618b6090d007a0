"""inspect: what a checkpoint holds."""
from __future__ import annotations

import json
from pathlib import Path

import click

from facediag.cli.options import ARCH, AS_JSON, CARD, console, handle_errors
from facediag.inspect import inspect_dict, render_inspect
from facediag.models.checkpoint import load_checkpoint


@click.command()
@click.argument("weights", type=click.Path(path_type=Path))
@ARCH(help="Force a variant (edgeface_xxs, edgeface_xs_gamma_06, ...) instead of detecting it.")
@CARD()
@AS_JSON(help="Print one JSON object instead of a table.")
@handle_errors
def inspect(weights, arch, card, as_json):
    """What a checkpoint holds: variant, format, parameters, head, label map, fingerprint.
    For an ONNX file also its inputs, outputs and opset (read from the graph, never run);
    with a model card (--card, or WEIGHTS.toml beside it) the preset it gives.

    Loading is strict and safe: nothing in the file is executed, and a checkpoint that
    matches no EdgeFace variant is refused rather than loaded into a random backbone.

    \b
    Example:
      facediag inspect edgeface_xxs.pt --json
      facediag inspect edgeface_xxs.onnx --json
      facediag inspect arcface_r18.onnx --card arcface_r18.toml --json
    """
    info = inspect_dict(load_checkpoint(weights, arch=arch, runtime=False, card=card))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        render_inspect(info, console)
