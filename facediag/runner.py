"""Run a suite over a Session: checks -> diagnoses -> Report. The Python API behind run-all."""
from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from facediag.diagnosis import diagnose
from facediag.models.card import missing_card_note
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.models.loaded import preset_of
from facediag.errors import FacediagError
from facediag.checks.base import Status
from facediag.checks.operating_point import criteria as dev_criteria
from facediag.checks.registry import get_check, run_check
from facediag.metrics.operating_point import criterion_key, parse_threshold_from
from facediag.results import Report
from facediag.session import Session, SessionConfig
from facediag.suites import Suite, load_suite


def checkpoint_info(loaded) -> dict[str, Any]:
    head = loaded.head
    return {
        "path": str(loaded.path or ""),
        "sha256": loaded.sha256,
        "variant": loaded.variant,
        "format": loaded.format,
        "parameters": loaded.parameters,
        "matched_fraction": loaded.matched_fraction,
        "head": None if head is None else {"classes": int(head.shape[0]), "dim": int(head.shape[1])},
        "card": getattr(loaded, "card", None),
        "preset": preset_of(loaded).as_dict(),
    }


def with_card_threshold(suite: Suite, loaded) -> tuple[Suite, str | None]:
    """The suite with the model card's operating threshold where the suite sets none ([suite]
    threshold; a check's own table still wins), and the note that says so."""
    preset = preset_of(loaded)
    if suite.threshold is not None or preset.threshold == DEFAULT_THRESHOLD:
        return suite, None
    return replace(suite, threshold=preset.threshold), (
        f"threshold {preset.threshold:g} is the model card's ({preset.name}): the suite sets none")


def model_notes(session: Session) -> list[str]:
    """What the run's models and their cards mean for the result, one line each."""
    notes = [missing_card_note(session.model(role)) for role in ("model", "baseline") if session.has_role(role)]
    return [n for n in notes if n]


def settle_alignment(session: Session, suite: Suite | None = None) -> None:
    """``--align auto``: run the alignment check's measurement on the sample as given, and align
    with MTCNN only when it WARNs or FAILs (with the suite's thresholds, else the check's own). The
    report says which it was, with the measurement (a dataset note). Does nothing otherwise."""
    if session.alignment is not None:
        return
    params = suite.params("alignment") if suite is not None and "alignment" in suite.checks \
        else get_check("alignment").params
    res = run_check(get_check("alignment")(), session, params, session.available)
    m = {k: "?" if v is None else f"{v:.2f}" if isinstance(v, float) else v for k, v in res.metrics.items()}
    measured = (f"landmarks {m.get('nme_median')} inter-ocular distances from the template, turn "
                f"{m.get('rotation_median')}°, zoom {m.get('scale_median')}×, faces found in "
                f"{m.get('faces_found')}/{m.get('sample_images')}")
    if res.status in (Status.WARN, Status.FAIL):
        session.settle_alignment("mtcnn", f"--align auto: the faces as given are not aligned (alignment check "
                                          f"{res.status.value}: {measured}): aligned with MTCNN")
    elif res.status == Status.PASS:
        session.settle_alignment("none", f"--align auto: the faces as given are aligned ({measured}): used as given")
    else:
        raise FacediagError(f"--align auto could not measure the alignment ({res.status.value}: {res.summary}); "
                            "give --align mtcnn or --align none")


def threshold_provenance(given: Suite, loaded) -> dict[str, Any]:
    """Where the operating threshold of a run comes from, as reports state it: ``source`` "suite"
    ([suite] threshold) or "preset" (the model card's, else EdgeFace's preset), with ``set``,
    ``criterion`` and ``fmr_target`` None (no data fixed it); ``checks``: the check tables that
    set their own."""
    preset = preset_of(loaded)
    if given.threshold is not None:
        out = {"threshold": given.threshold, "source": "suite", "where": "[suite] threshold"}
    else:
        where = f"the model card's ({preset.name})" if getattr(loaded, "card", None) else "EdgeFace's preset"
        out = {"threshold": preset.threshold, "source": "preset", "where": where}
    out.update(set=None, criterion=None, fmr_target=None)
    own = {name: params["threshold"] for name, params in given.checks.items() if "threshold" in params}
    if own:
        out["checks"] = {name: {"threshold": t, "source": "suite", "where": f"[checks.{name}]"}
                         for name, t in own.items()}
    return out


def with_dev_threshold(session: Session, suite: Suite, spec: str) -> tuple[Suite, dict[str, Any]]:
    """``--threshold-from dev:CRITERION``: the suite with the threshold fixed on the development set
    for the model (every check's, over the suite's and its tables': the command line wins), and
    that threshold's provenance. A criterion the development set cannot support is refused."""
    try:
        criterion, target = parse_threshold_from(spec)
    except ValueError as exc:
        raise FacediagError(f"--threshold-from {exc}") from None
    key = criterion_key(criterion, target)
    points = session.dev_thresholds("model", [key])
    if points is None:
        raise FacediagError(f"--threshold-from {spec} needs a development set: give --dev-data, or --dev-gallery-root "
                            "and --dev-probe-root")
    point = points[key]
    if point["threshold"] is None:
        raise FacediagError(f"--threshold-from {spec}: the development set cannot fix it: {point['reason']}")
    checks = {name: {k: v for k, v in params.items() if k != "threshold"} for name, params in suite.checks.items()}
    return replace(suite, threshold=point["threshold"], checks=checks), {**point, "source": "dev",
                                                                          "where": f"--threshold-from {spec}"}


def expect_dev_thresholds(session, suite: Suite) -> None:
    """With a development set and the operating-point check: its criteria fixed now, and their
    thresholds counted in the evaluation's one matching pass (not one more pass each)."""
    if "operating-point" not in suite.checks or session.available("dev") is not None:
        return
    session.expect_dev_criteria(dev_criteria(suite.params("operating-point")))
    points = session.dev_thresholds("model") or {}
    session.expect_thresholds({p["threshold"] for p in points.values() if p["threshold"] is not None})


def run_suite(session: Session, suite: Suite, command: str | None = None,
              threshold_from: str | None = None) -> Report:
    """The suite over a Session (or a RoleView of one) -> Report. ``threshold_from``
    (``dev:fmr=1e-3``, ``dev:eer``, ``dev:min-hter``): every check's threshold fixed on the
    development set for this model instead of the suite's or the preset's."""
    provenance = threshold_provenance(suite, session.model("model"))
    suite, threshold_note = with_card_threshold(suite, session.model("model"))
    settle_alignment(session, suite)
    if threshold_from:
        suite, provenance = with_dev_threshold(session, suite, threshold_from)
        threshold_note = None  # the card's threshold is not the one used
    expect_dev_thresholds(session, suite)
    session.expect_thresholds({suite.params(name).get("threshold") for name in suite.checks} - {None})
    results = [run_check(get_check(name)(), session, suite.params(name), session.available)
               for name in suite.checks]
    checkpoints = {role: checkpoint_info(session.model(role)) for role in ("model", "baseline")
                   if session.has_role(role)}
    dataset = session.dataset_info()
    dataset["notes"] = [*dataset.get("notes", []), *model_notes(session),
                        *([threshold_note] if threshold_note else [])]
    return Report(
        command=command if command is not None else shlex.join(["facediag", *sys.argv[1:]]),
        checkpoints=checkpoints,
        dataset=dataset,
        suite={**suite.as_dict(), "operating_threshold": provenance},
        results=results,
        diagnoses=diagnose(results),
    )


def run_all(weights: str | Path | None = None, data: str | Path | None = None, *,
            suite: str | Path | Suite | None = None, checks: list[str] | None = None,
            model=None, baseline=None, threshold_from: str | None = None, **options) -> Report:
    """Run every check of a suite and return the Report (for notebooks and scripts).

    ``model``/``baseline`` may be already-loaded checkpoints (``load_checkpoint(...)``)
    instead of paths; ``options`` are SessionConfig fields (vlr_size, dsr, device, dev_data, ...);
    ``threshold_from`` ("dev:fmr=1e-3", "dev:eer", "dev:min-hter") runs every check at the threshold
    fixed on the development set (``dev_data``, or ``dev_gallery_root`` and ``dev_probe_root``).
    """
    config = SessionConfig(weights=weights, data=data, **options)
    models = {role: m for role, m in (("model", model), ("baseline", baseline)) if m is not None}
    session = Session(config, models=models)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if checks:
        suite = suite.only(checks)
    check_dev_options(session, threshold_from)
    return run_suite(session, suite, command="facediag.run_all(...)", threshold_from=threshold_from)


def check_dev_options(session: Session, threshold_from: str | None) -> None:
    """Before any work: the development set indexes (a bad root is one line), and ``threshold_from``
    names a criterion it can support (an FMR target its impostor pairs allow)."""
    target = None
    if threshold_from:
        try:
            criterion, target = parse_threshold_from(threshold_from)
        except ValueError as exc:
            raise FacediagError(f"--threshold-from {exc}") from None
    if session.available("dev") is not None:
        if threshold_from:
            raise FacediagError(f"--threshold-from {threshold_from} needs a development set: give --dev-data, or "
                                "--dev-gallery-root and --dev-probe-root")
        return
    session.dev_impostor_pairs()  # indexes the development set now
    if target is not None:
        session.check_dev_target(target)


def exit_code(report: Report, fail_on: str = "fail") -> int:
    """0 pass; 1 a check failed (or warned, with fail_on=warn) or the gate failed."""
    statuses = {r.status for r in report.results}
    bad = {Status.FAIL, Status.ERROR} | ({Status.WARN} if fail_on == "warn" else set())
    if statuses & bad:
        return 1
    if report.gate is not None and not report.gate.get("passed", True):
        return 1
    return 0
