"""export: a checkpoint as ONNX (optionally int8) or TorchScript, kept only when verified."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from facediag.errors import FacediagError
from facediag.models.card import card_beside, card_path_for
from facediag.outputs import check_outputs, out_file
from facediag.cli.options import ARCH, AS_JSON, CARD, EXIT_FAIL, EXIT_OK, PATH, QUIET, console, handle_errors


@click.command("export")
@click.argument("weights", type=PATH)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True,
              help="onnx (run with onnxruntime; needs facediag[onnx]) or torchscript.")
@click.option("--int8", is_flag=True, help="Quantise the ONNX graph's weights to int8 (onnxruntime dynamic "
                                           "quantisation); its parity figures are reported, not held to --min-cosine.")
@click.option("--out", "-o", type=PATH, required=True, help="The file to write (only once verified).")
@click.option("--data", type=PATH, help="Faces to verify on (any layout facediag reads; the first 5 HR images of "
                                        "the first 20 subjects). Default: 100 synthetic demo faces.")
@click.option("--min-cosine", type=float, default=0.99999, show_default=True,
              help="Smallest per-image cosine between the checkpoint's and the export's embeddings.")
@ARCH()
@CARD(help="A model card for a TorchScript embedder that is not EdgeFace (default: WEIGHTS.toml beside it). "
           "The export is the model itself (it takes the model's own input) and the card is copied beside it "
           "as OUT.toml.")
@AS_JSON(help="Print the figures as one JSON object.")
@QUIET()
@handle_errors
def export_cmd(weights, fmt, int8, out, data, min_cosine, arch, card, as_json, quiet):
    """Export a checkpoint and prove the export embeds faces as the checkpoint does.

    The export is verified on a sample of faces before it is kept: per-image cosine
    between the two embeddings (min, 1st percentile, mean), max absolute difference, and
    the rank-1 decision of every face (its nearest other face's subject). An fp32 export
    whose min cosine is below --min-cosine or that changes any rank-1 decision is not
    written: exit 1 with the figures. ONNX: opset 17, dynamic batch axis.

    A model with a model card (--card, or WEIGHTS.toml) is exported as itself, taking its
    own input (the card's size, channels, mean/std); the card is copied beside the export
    as OUT.toml, so every facediag command runs the export under that card.

    \b
    Example:
      facediag export edgeface_xxs.pt --format onnx --out edgeface_xxs.onnx --data faces/
      facediag export edgeface_xxs.pt --int8 --out edgeface_xxs_int8.onnx
      facediag export arcface.pt --card arcface.toml --out arcface.onnx   # writes arcface.onnx.toml too
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.export import export, validate

    validate(fmt, int8, min_cosine)
    beside = card_beside(weights) if card is None else None
    outputs = out_file("--out", out)
    if card is not None or beside is not None:  # the card travels with the export: OUT.toml
        outputs += out_file("--out's card", card_path_for(out))
    elif card_path_for(out).exists():  # every command would run the new export under that old card
        raise FacediagError(f"{card_path_for(out)}: a model card from another model sits where this export's "
                            "card would go, and would be read as the export's; remove it or choose another --out")
    check_outputs(outputs, inputs=[("WEIGHTS", weights), ("--card", card), ("WEIGHTS.toml", beside)],
                  roots=[("--data", data)])
    if data is not None and not Path(data).exists():
        raise FacediagError(f"--data {data}: no such file or folder")
    result = export(weights, out, fmt, int8=int8, data=data, min_cosine=min_cosine, arch=arch, card=card,
                    progress=not quiet)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _print(result)
    sys.exit(EXIT_OK if result.kept else EXIT_FAIL)


def _print(result) -> None:
    p = result.parity
    kind = f"{result.format}{' int8' if result.int8 else ''}" + (f", opset {result.opset}" if result.opset else "")
    console.print(f"export ({kind}) vs checkpoint on {result.sample}:", highlight=False, soft_wrap=True)
    console.print(f"  per-image cosine  min {p.cosine_min:.7f}  p1 {p.cosine_p1:.7f}  mean {p.cosine_mean:.7f}",
                  highlight=False, soft_wrap=True)
    console.print(f"  max |difference|  {p.max_abs_diff:.3g}", highlight=False, soft_wrap=True)
    console.print(f"  rank-1 decisions changed  {p.rank1_changed} of {p.images}", highlight=False, soft_wrap=True)
    if result.int8:
        console.print(f"  int8: reported, not held to a tolerance; written to {result.out}",
                      highlight=False, soft_wrap=True)
    elif result.kept:
        console.print(f"  within tolerance (min cosine ≥ {result.min_cosine}, no rank-1 change): "
                      f"written to {result.out}", highlight=False, soft_wrap=True)
    else:
        console.print(f"  [bold red]NOT FAITHFUL[/]: min cosine < {result.min_cosine} or rank-1 changed; "
                      f"{result.out} not written", highlight=False, soft_wrap=True)
    if result.card is not None:
        console.print(f"  model card written beside it: {result.card} (the export takes the model's own input)",
                      highlight=False, soft_wrap=True)
