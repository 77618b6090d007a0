"""compare: checkpoint B against A on the same data."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from facediag.cli.options import (
    ARCH,
    MAX_DROP,
    N_BOOT,
    OUT,
    SUITE,
    console,
    data_options,
    handle_errors,
    print_paths,
    save_rank_counts,
    session_config,
)


@click.command("compare")
@click.argument("weights_a", type=click.Path(path_type=Path))
@click.argument("weights_b", type=click.Path(path_type=Path))
@ARCH(help="Force the variant of both checkpoints instead of detecting it.")
@SUITE(help="A suite TOML (checks, thresholds and [gate.max_drop]): a path, or a name from checks/.")
@OUT()
@MAX_DROP(help="Gate: B may be worse than A by this much, e.g. rank1=0.01 (repeatable; over the suite's [gate]).")
@N_BOOT()
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
    from facediag.distributed import launched
    from facediag.gate import tolerances
    from facediag.outputs import check_outputs, data_paths, out_dir
    from facediag.render import FILENAMES, render_terminal, write_all
    from facediag.runner import settle_alignment
    from facediag.session import Session
    from facediag.suites import load_suite

    suite_obj = load_suite(suite)
    max_drop = tolerances(suite_obj, max_drop)
    inputs, roots = data_paths(kw)
    check_outputs(out_dir("--out", out, FILENAMES.values()),
                  inputs=[("WEIGHTS_A", weights_a), ("WEIGHTS_B", weights_b), ("--suite", suite_obj.path), *inputs],
                  roots=roots)
    with launched(kw["device"]) as dist:  # under torchrun: every rank embeds its shard, rank 0 compares
        session = Session(session_config(weights_a, baseline_weights=weights_b, arch=arch, baseline_arch=arch,
                                         **kw), dist=dist)
        session.model("model")  # bad checkpoints are bad input: fail before any work
        session.model("baseline")
        settle_alignment(session, suite_obj)  # --align auto: decided before anything is embedded
        session.prepare()
        code = 0
        if dist.main:
            report = compare_session(session, suite_obj, max_drop=max_drop, n_boot=n_boot, alpha=alpha)
            render_terminal(report, console)
            if out:
                paths = write_all(report, out)
                print_paths("reports", paths.values())
            save_rank_counts(session.rank_counts)
            code = exit_code(report)
        code = dist.decide(code)
    sys.exit(code)
