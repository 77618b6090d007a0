"""compare: checkpoint B against A on the same data."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from facediag.cli.options import (
    ARCH,
    CARD,
    MAX_DROP,
    N_BOOT,
    OUT,
    SUITE,
    THRESHOLD_FROM,
    console,
    data_options,
    handle_errors,
    print_paths,
    save_rank_counts,
    session_config,
)
from facediag.distributed import launched
from facediag.outputs import check_outputs, data_paths, out_cache, out_dir
from facediag.render import FILENAMES, render_terminal, write_all
from facediag.runner import settle_alignment
from facediag.session import Session
from facediag.suites import load_suite


@click.command("compare")
@click.argument("weights_a", type=click.Path(path_type=Path))
@click.argument("weights_b", type=click.Path(path_type=Path))
@ARCH(help="Force the variant of both checkpoints instead of detecting it.")
@CARD("--card-a", "card_a",
      help="The model card of A (default: WEIGHTS_A.toml beside it, if any; else EdgeFace's preset).")
@CARD("--card-b", "card_b", help="The model card of B (default: WEIGHTS_B.toml beside it, if any).")
@SUITE(help="A suite TOML (checks, thresholds and [gate.max_drop]): a path, or a name from checks/.")
@OUT()
@MAX_DROP(help="Gate: B may be worse than A by this much, e.g. rank1=0.01 (repeatable; over the suite's [gate]).")
@N_BOOT()
@click.option("--alpha", type=click.FloatRange(0, 0.5, min_open=True), default=0.05, show_default=True,
              help="Significance level (intervals at 1 − alpha).")
@click.option("--parity/--no-parity", default=None,
              help="Add the parity section (A and B one network in two formats) always / never. "
                   "Default: when both are the same EdgeFace variant and one is an export or int8.")
@click.option("--parity-min-cosine", type=float, default=None, metavar="COS",
              help="Gate parity: every image's cosine between A's and B's embedding at least COS "
                   "(default 0.9999 once parity is gated).")
@click.option("--parity-max-rank1-changed", type=int, default=None, metavar="N",
              help="Gate parity: at most N probes (a count) name another subject with B than with A "
                   "(default 0 once parity is gated).")
@THRESHOLD_FROM()
@data_options
@handle_errors
def compare_cmd(weights_a, weights_b, arch, card_a, card_b, suite, out, max_drop, n_boot, alpha, parity,
                parity_min_cosine, parity_max_rank1_changed, threshold_from, **kw):
    """Compare checkpoint B with A on the same data: is B better, worse, or the same?

    Both run the suite over the same records and the same DSR outputs (each image
    embedded once per model). Every metric is shown for A and B with the delta; rank-k,
    threshold accuracy and false accepts, EER and TAR@FAR get subject-level bootstrap
    intervals of B − A, per-probe correctness McNemar's exact test, and a verdict: better,
    worse or no significant change. Linear CKA and the score shifts say how far B moved.

    When A and B are one network in two formats (the same EdgeFace variant, one of them an
    ONNX/TorchScript export or int8; or with --parity), a parity section adds the per-image
    cosine between A's and B's embeddings of every image (min, p1, p5, median, mean,
    quantiles, 1 − cosine by decade), the largest coordinate difference, and the probes whose
    rank-1 decision (best gallery template) changed. --parity-min-cosine and
    --parity-max-rank1-changed (or [gate.parity] in the suite) gate it: the gate fails when
    any image's cosine is below the bound or more rank-1 decisions changed than allowed.

    \b
    Exit codes: 0 B is not significantly worse on a gated metric and parity
    holds where gated, 1 otherwise, 2 bad input.

    \b
    Examples:
      facediag compare edgeface_xxs.pt finetuned.pth --data faces/ --out reports/cmp
      facediag compare a.pt b.pt --data orl_faces --suite checks/ci.toml --max-drop rank1=0.01
      facediag compare edgeface_xxs.pt edgeface_xxs.onnx --data faces/ --parity-min-cosine 0.9999 \\
          --parity-max-rank1-changed 0
      facediag compare edgeface_xxs.pt arcface.onnx --card-b arcface.toml --data faces/
      facediag compare a.pt b.pt --data eval/ --dev-data dev/ --threshold-from dev:fmr=1e-3
    """
    # the comparison's own modules load when the command runs, not at every start of the CLI
    from facediag.compare import check_parity_options, compare_session, exit_code
    from facediag.gate import parity_bounds, tolerances
    from facediag.runner import check_dev_options
    from facediag.workflow import check_dsr

    suite_obj = load_suite(suite)
    max_drop = tolerances(suite_obj, max_drop)
    bounds = parity_bounds(suite_obj, parity_min_cosine, parity_max_rank1_changed)
    check_parity_options(parity, bounds)
    inputs, roots = data_paths(kw)
    check_outputs([*out_dir("--out", out, FILENAMES.values()),
                   *out_cache(kw["cache_dir"], not kw["no_cache"])],
                  inputs=[("WEIGHTS_A", weights_a), ("WEIGHTS_B", weights_b), ("--card-a", card_a),
                          ("--card-b", card_b), ("--suite", suite_obj.path), *inputs],
                  roots=roots)
    with launched(kw["device"]) as dist:  # under torchrun: every rank embeds its shard, rank 0 compares
        session = Session(session_config(weights_a, baseline_weights=weights_b, arch=arch, baseline_arch=arch,
                                         card=card_a, baseline_card=card_b, **kw), dist=dist)
        session.check_card("model")  # bad checkpoints (or model cards) are bad input: fail before any work
        session.check_card("baseline")
        settle_alignment(session, suite_obj)  # --align auto: decided before anything is embedded
        check_dsr(session)  # a DSR that cannot serve the probes: one line before any work
        check_dev_options(session, threshold_from)  # the development set, and a criterion it can support
        session.check_groups()  # a --groups file naming none of the data's people: likewise
        session.prepare()
        code = 0
        if dist.main:
            report = compare_session(session, suite_obj, max_drop=max_drop, n_boot=n_boot, alpha=alpha,
                                     parity=parity, parity_gate=bounds, threshold_from=threshold_from)
            render_terminal(report, console)
            if out:
                paths = write_all(report, out)
                print_paths("reports", paths.values())
            save_rank_counts(session.rank_counts)
            code = exit_code(report)
        code = dist.decide(code)
    sys.exit(code)
