"""scores (run-all's verification comparisons written as a score file) and bench scores (facediag's
metrics from a score file any system wrote)."""
from __future__ import annotations

import click

from facediag.cli.bench import _bench_output, _bench_outputs
from facediag.cli.options import (
    AS_JSON,
    ARCH,
    CARD,
    DATA_OPTIONS,
    OUT,
    PATH,
    WEIGHTS,
    command_line,
    console,
    handle_errors,
    options,
    print_paths,
    session_config,
    without,
)
from facediag.errors import FacediagError
from facediag.outputs import check_outputs, data_paths, out_cache, out_file
from facediag.scores import FORMATS, input_paths, output_paths

SCORES_DATA_OPTIONS = without(DATA_OPTIONS, "train_root", "index")
"""run-all's data options, less the two that change no score: the training root (subject overlap)
and the candidate index (rank-k only; scores come from the exact products)."""

FORMAT_HELP = ("bob4: bob.bio.base 4-column (claimed_id real_id test_label score); bob5: 5-column (claimed_id "
               "model_label real_id test_label score); bob-csv: bob's CSV score file; openbr: OpenBR's .mtx similarity "
               "matrix with its .mask; pyeer: pyeer's genuine and impostor lists.")


@click.command("scores")
@WEIGHTS(help="The checkpoint whose comparisons to write (state_dict, training dict, TorchScript, ONNX).")
@ARCH(help="Force the variant instead of detecting it from the keys.")
@CARD()
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help=FORMAT_HELP)
@OUT("--out", "-o", required=True,
     help="The score file (openbr: the .mtx, its .mask written beside it; pyeer: a folder for genuine_scores.txt "
          "and impostor_scores.txt). Written atomically.")
@options(SCORES_DATA_OPTIONS)
@handle_errors
def scores_cmd(weights, arch, card, fmt, out, **kw):
    """Write the comparisons run-all's verification makes as a score file other tools read.

    Every readable probe (degraded and brought back by the DSR stage, as run-all probes) against
    every person's template (the mean of the person's gallery embeddings), cosine; a comparison is
    genuine when the probe's person is the template's. Streamed a block of probes at a time: no
    score matrix is held. The embeddings come from the cache when run-all embedded them before.

    \b
    Examples:
      facediag scores -w edgeface_xxs.pt --data orl_faces --format bob4 --out orl-scores.txt
      facediag scores -w ft.pt --gallery-root gallery --probe-root probes --format openbr --out ft.mtx
      facediag scores -w ft.pt --data faces/ --distractors others/ --format bob-csv --out scores.csv
      facediag scores -w ft.pt --data faces/ --format pyeer --out pyeer_scores/
      facediag bench scores orl-scores.txt            # facediag's metrics back from the file
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.scores import write_run_scores

    paths = output_paths(out, fmt)  # a wrong --out for the format is refused before any work
    inputs, roots = data_paths(kw)
    check_outputs([*(o for p in paths for o in out_file("--out", p)), *out_cache(kw["cache_dir"], not kw["no_cache"])],
                  inputs=[("--weights", weights), ("--card", card), *inputs], roots=roots)
    done = write_run_scores(session_config(weights, arch=arch, card=card, **kw), out, fmt)
    console.print(f"{done['comparisons']:,} comparisons ({done['probes']:,} probes × {done['templates']:,} templates; "
                  f"{done['genuine']:,} genuine, {done['impostor']:,} impostor) as {fmt}"
                  + (f"; {done['unreadable']} file(s) could not be used and were left out" if done["unreadable"]
                     else ""), highlight=False, soft_wrap=True)
    print_paths("scores", done["paths"])


def far_list(ctx, param, value):
    """--fars 1e-1,1e-2: FAR targets in (0, 1)."""
    try:
        fars = [float(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
    if not fars or any(not 0 < f < 1 for f in fars):
        raise click.BadParameter("give FAR targets between 0 and 1, e.g. 1e-1,1e-2,1e-3")
    return tuple(fars)


@click.command("scores")
@click.argument("file", type=PATH)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help=f"{FORMAT_HELP} Default: told from FILE (a folder or --impostors: pyeer; .mtx: openbr; .csv: "
                   "bob-csv; else 4 or 5 fields on the first line: bob4 or bob5).")
@click.option("--impostors", type=PATH, help="pyeer's impostor list (FILE is then its genuine list).")
@click.option("--mask", type=PATH, help="OpenBR's mask (default: FILE's name ending in .mask).")
@click.option("--fars", default="1e-1,1e-2,1e-3,1e-4", show_default=True, callback=far_list,
              help="TAR at these FARs (each reported only when impostor comparisons × FAR ≥ 10).")
@click.option("--threshold", type=float, default=None,
              help="An operating threshold on the file's scale: FMR and FNMR there, and the open set's TPIR/FPIR "
                   "(default for the open set: the EER threshold).")
@OUT(help="Write bench-scores.json/.html/.md here.")
@AS_JSON()
@handle_errors
def bench_scores_cmd(file, fmt, impostors, mask, fars, threshold, out, as_json):
    """ROC, EER, TAR@FAR and DET from a score file any system wrote; CMC and the open set where the
    file is a search (every probe against every gallery entry).

    Reads bob.bio.base's 4-column, 5-column and CSV score files, OpenBR's .mtx + .mask and pyeer's
    genuine/impostor lists as those tools read them, a chunk at a time (a second pass only when
    the impostors are too many to keep every one). A malformed file is one line naming the line
    (or the matrix cell), exit 2.

    \b
    Examples:
      facediag bench scores scores-dev.txt
      facediag bench scores scores.mtx --mask scores.mask --out reports/scores
      facediag bench scores genuine.txt --impostors impostor.txt --format pyeer --json
      facediag bench scores scores.csv --threshold 0.35 --fars 1e-2,1e-3
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.bench.scores import bench_scores

    if impostors is not None and fmt not in (None, "pyeer"):
        raise FacediagError("--impostors is pyeer's impostor list: it goes with --format pyeer")
    if mask is not None and fmt not in (None, "openbr"):
        raise FacediagError("--mask is OpenBR's mask: it goes with --format openbr")
    check_outputs(_bench_outputs("scores", out),
                  inputs=[("score file", input_paths(file, fmt, impostors=impostors, mask=mask))])
    report = bench_scores(file, fmt, impostors=impostors, mask=mask, fars=fars, threshold=threshold,
                          command=command_line())
    _bench_output(report, out, as_json)
