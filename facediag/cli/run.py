"""run-all, run and list-checks: a suite over one checkpoint, gated; and what checks exist."""
from __future__ import annotations

import sys

import click
from rich.table import Table

from facediag.checks.registry import all_checks
from facediag.distributed import launched
from facediag.render import render_terminal
from facediag.suites import load_suite

from facediag.cli.options import (
    SUITE,
    console,
    data_options,
    error_line,
    handle_errors,
    model_options,
    print_paths,
    save_rank_counts,
    session_config,
)


def _run_and_report(names, weights, arch, baseline_weights, suite, out, fail_on, **kw):
    # loaded when a run starts, not at every start of the CLI
    from facediag.workflow import run_and_gate

    gate_kw = {k: kw.pop(k) for k in ("baseline_report", "max_drop", "save_baseline", "force_save_baseline",
                                      "force_baseline", "threshold_from")}
    with launched(kw["device"]) as dist:  # under torchrun: rank 0 shows and writes, every rank exits as it decides
        run = run_and_gate(session_config(weights, baseline_weights=baseline_weights, arch=arch, **kw), suite,
                           checks=names, fail_on=fail_on, out=out, dist=dist, **gate_kw)
        code = dist.decide(_show_and_write(run) if run is not None else 0)
    sys.exit(code)


def _show_and_write(run) -> int:
    render_terminal(run.report, console)
    written = run.write()
    reports = [p for fmt, p in written.items() if fmt != "baseline"]
    if reports:
        print_paths("reports", reports)
    if "baseline" in written:
        print_paths("baseline", [written["baseline"]])
    if run.baseline_refused:
        error_line(run.baseline_refused)
    save_rank_counts(run.rank_counts)
    return run.exit_code


@click.command("run-all")
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
      facediag run-all -w ft.pth --data raw_photos --align mtcnn   # detect + align each face on the fly
      facediag run-all -w ft.pth --data big_gallery --index faiss-hnsw   # rank-k as HNSW answers, recall shown
      facediag run-all -w arcface_r18.onnx --card arcface_r18.toml --data faces/
      facediag run-all -w ft.pth --data eval/ --dev-data dev/ --threshold-from dev:fmr=1e-3   # threshold fixed on dev

    \b
    A face embedder of another family (ONNX or TorchScript) runs with its model card
    (--card, or <weights>.toml beside it): its input size, mean/std, channel order,
    embedding size and threshold; the EdgeFace-only checks then say SKIP with the reason.
    """
    _run_and_report((), weights, arch, baseline_weights, suite, out, fail_on, **kw)


@click.command("run")
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


@click.command("list-checks")
@SUITE(default=None, show_default=False, help="Show the thresholds a suite sets (default: the checks' own).")
@handle_errors
def list_checks(suite):
    """List every registered check, what it needs and its default thresholds.

    \b
    Example:
      facediag list-checks --suite checks/ci.toml
    """
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
