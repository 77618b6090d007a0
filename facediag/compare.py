"""Compare two checkpoints on the same data: is B better or worse than A, and is it real?

Both models run in ONE Session (A as role "model", B as role "baseline"), so they see the
same records and the same DSR outputs and every image is embedded once per model; the
suite runs on each side through ``session.for_role``. On top of the two run reports:

- every metric of A and B with the delta;
- for the metrics that can be resampled (rank-k, accuracy and false accepts at the
  threshold, EER, TAR@FAR, genuine/impostor/paired means): subject-level bootstrap
  intervals for A, for B and for the paired difference B − A (the same resampled subjects
  on both sides), and McNemar's exact test where per-probe correctness exists;
- a verdict per tested metric: better, worse, or no significant change;
- how far B moved: linear CKA between A's and B's embeddings of the same images, and the
  shift of the genuine, impostor and paired score distributions;
- the diagnoses of each side, and a gate: B significantly worse than A on a gated metric
  (by more than its tolerance) fails;
- when A and B are one network in two formats (the same EdgeFace variant, one of them an
  export or an int8 model; or on request): parity, image by image (metrics/parity.py), and
  optionally the gate's parity condition (gate.py).
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from facediag.checks.registry import get_check
from facediag.checks.demographic import judged_threshold, settings_of
from facediag.errors import FacediagError
from facediag.gate import ParityBounds, gate_outcome, judge, judge_parity, parity_bounds, tolerances
from facediag.metrics.catalogue import higher_is_better
from facediag.metrics.distribution import linear_cka
from facediag.metrics.identification import l2_normalize
from facediag.metrics.operating_point import provenance_text
from facediag.metrics.parity import deployment_parity
from facediag.metrics.significance import mcnemar_exact
from facediag.metrics.verdict import BETTER, WORSE, interval_verdict, verdict
from facediag.models.edgeface import VARIANTS
from facediag.models.loaded import LoadedModel, preset_of
from facediag.protocols.gallery import Evaluation
from facediag.protocols.demographics import differential_tests
from facediag.protocols.resampling import Tested, bootstrap_tests
from facediag.results import CompareReport, MetricRow, Report
from facediag.runner import check_dev_options, run_suite, threshold_provenance, with_card_threshold
from facediag.session import Session, SessionConfig
from facediag.suites import Suite, load_suite


# ------------------------------------------------------------------------ comparing
def compare(weights_a=None, weights_b=None, data=None, *, suite: str | Path | Suite | None = None,
            model_a=None, model_b=None, max_drop: dict[str, float] | None = None, n_boot: int = 1000,
            alpha: float = 0.05, seed: int = 0, command: str | None = None, parity: bool | None = None,
            parity_min_cosine: float | None = None, parity_max_rank1_changed: int | None = None,
            threshold_from: str | None = None, **session_options) -> CompareReport:
    """Compare checkpoint B with A on the same data (the Python API behind ``facediag compare``).

    ``model_a``/``model_b`` may be already-loaded checkpoints instead of paths;
    ``session_options`` are SessionConfig fields (vlr_size, dsr, device, cache_dir, ...);
    ``max_drop`` gates metrics (``check.metric`` -> tolerance), over the suite's ``[gate]``;
    ``parity`` True/False forces the parity section on/off (None: when one network in two
    formats); a ``parity_*`` bound (or the suite's ``[gate.parity]``) gates it. ``threshold_from``
    ("dev:fmr=1e-3", "dev:eer", "dev:min-hter"): each side at its own threshold fixed on the
    development set (``dev_data``, or ``dev_gallery_root`` and ``dev_probe_root``) by that criterion.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    bounds = parity_bounds(suite, parity_min_cosine, parity_max_rank1_changed)
    max_drop = tolerances(suite, max_drop)
    check_parity_options(parity, bounds)
    config = SessionConfig(weights=weights_a, baseline_weights=weights_b, data=data, **session_options)
    models = {role: m for role, m in (("model", model_a), ("baseline", model_b)) if m is not None}
    session = Session(config, models=models)
    check_dev_options(session, threshold_from)
    return compare_session(session, suite, max_drop=max_drop, n_boot=n_boot, alpha=alpha, seed=seed,
                           command=command or "facediag.compare(...)", parity=parity, parity_gate=bounds,
                           threshold_from=threshold_from)


def check_parity_options(parity: bool | None, bounds: ParityBounds | None) -> None:
    if parity is False and bounds is not None:
        raise FacediagError("--no-parity with a parity gate ([gate.parity] or --parity-*): the gate needs the "
                            "parity section; drop one of them")


def compare_session(session: Session, suite: Suite, *, max_drop: dict[str, float], n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0, command: str | None = None, parity: bool | None = None,
                    parity_gate: ParityBounds | None = None, threshold_from: str | None = None) -> CompareReport:
    """Compare role "baseline" (B) with role "model" (A) of one Session.

    ``parity``: None adds the parity section when A and B are one network in two formats
    (same_network), True always, False never; ``parity_gate`` holds it to bounds (implies True).
    ``threshold_from`` ("dev:fmr=1e-3", ...): each side at the threshold fixed on the development
    set for it by that criterion (as each would be deployed), instead of one threshold for both."""
    command = command if command is not None else shlex.join(["facediag", *sys.argv[1:]])
    check_parity_options(parity, parity_gate)
    # One operating threshold for both sides: A's card's where the suite sets none (A is the reference).
    given = suite
    suite, threshold_note = with_card_threshold(given, session.model("model"))
    notes = [n for n in (threshold_note, _held_at_a(given, session.model("model"), session.model("baseline"))) if n
             and not threshold_from]  # with dev-fixed thresholds neither card's threshold is used
    # The comparison is the baseline here: a check that wants one would compare a side with itself.
    side_suite = replace(suite, checks={n: p for n, p in suite.checks.items()
                                        if "baseline" not in get_check(n).requires})
    a = run_suite(session.for_role("model"), side_suite, command, threshold_from)
    b = run_suite(session.for_role("baseline"), side_suite, command, threshold_from)
    if not threshold_from:  # both sides ran at the threshold set above: where it came from, as given
        a.suite["operating_threshold"] = b.suite["operating_threshold"] = threshold_provenance(
            given, session.model("model"))
    for side in (a, b):  # each side ran at the threshold already set: the note is compare's to give
        side.dataset["notes"] = [*side.dataset.get("notes", []), *notes]
    ev_a, ev_b = session.evaluation("model"), session.evaluation("baseline")
    params = {name: suite.params(name) for name in ("identification", "verification")}
    threshold = params["identification"]["threshold"]
    provenance = {"A": a.suite["operating_threshold"], "B": b.suite["operating_threshold"]}
    # Dev-fixed: each side at its own threshold (its identification check ran there), else one for both.
    thresholds = (a.suite["operating_threshold"]["threshold"], b.suite["operating_threshold"]["threshold"]) \
        if threshold_from else (threshold, threshold)
    tests = bootstrap_tests(ev_a, ev_b, threshold=thresholds, ranks=tuple(params["identification"]["ranks"]),
                            fars=tuple(params["verification"]["fars"]), n_boot=n_boot, alpha=alpha, seed=seed)
    tests.update(_demographic_tests(session, suite, n_boot, alpha, seed))
    rows = _rows(a, b, tests, alpha)
    by_key = {r.key: r for r in rows}
    judgements = []
    for key, tol in max_drop.items():
        row = by_key.get(key)
        judgements.append(judge(key, row.a if row else None, row.b if row else None, tol,
                                beyond_noise=None if row is None or row.verdict is None else row.verdict == WORSE,
                                noise=_noise_text(row) if row else "", labels=("A", "B")))
    reason = None if parity is False else same_network(session.model("model"), session.model("baseline"))
    if reason is None and (parity or parity_gate):
        reason = "asked for (--parity or a parity gate)"
    parity_section = {"reason": reason, **_parity(session, ev_a, ev_b)} if reason else None
    if parity_gate is not None:
        judgements.append(judge_parity(parity_section, parity_gate))
    shift = {"cka": _cka(session), "mcnemar_rank1": _mcnemar_rank1(ev_a, ev_b),
             "scores": {name: by_key[f"pair-gap.{name}_mean"].as_dict() for name in ("genuine", "impostor", "paired")
                        if f"pair-gap.{name}_mean" in by_key},
             "notes": [*_threshold_notes(provenance), *_cautions(by_key, thresholds),
                       *differential_notes(by_key)]}
    return CompareReport(command, a, b, rows, shift, gate_outcome(judgements),
                         {"n_boot": n_boot, "alpha": alpha, "seed": seed, "threshold": thresholds[0],
                          "thresholds": provenance,
                          "method": "verdicts: McNemar's exact test for per-probe correctness (rank-k, accuracy "
                                    "at the threshold), else the subject-level bootstrap interval of B − A (the "
                                    "same resampled subjects on both sides)"},
                         (_label(a), _label(b)), parity=parity_section)


def _held_at_a(suite: Suite, a: LoadedModel, b: LoadedModel) -> str | None:
    """The note that B, whose card (or EdgeFace's preset, against A's card) names another operating
    threshold than A's, was judged at A's; None when they agree or the suite sets the threshold."""
    pa, pb = preset_of(a), preset_of(b)
    if suite.threshold is not None or pa.threshold == pb.threshold:
        return None

    def source(m, p):
        return f"its model card's, {p.name}" if getattr(m, "card", None) else "EdgeFace's preset's"

    return (f"B's threshold is {pb.threshold:g} ({source(b, pb)}), A's {pa.threshold:g} ({source(a, pa)}): "
            "compare judged both at A's")


def same_network(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why A and B are one network in two formats (the same EdgeFace variant, stored differently
    or one of them int8), or None. Two checkpoints of one variant in one format are two models
    (a fine-tune, say): their embeddings are not expected to agree."""
    forms = [_form(m) for m in (a, b)]
    (va, fa, qa), (vb, fb, qb) = forms
    if a.variant not in VARIANTS or va != vb or (fa, qa) == (fb, qb):
        return None
    describe = [f"{f}{' int8' if q else ''}" for _, f, q in forms]
    return f"both {va}: {describe[0]} vs {describe[1]}"


def _form(m: LoadedModel) -> tuple[str, str, bool]:
    """(float variant, storage format, int8 weights) of a loaded model."""
    variant = str(m.variant)
    quantized = variant in VARIANTS and VARIANTS[variant].quantized
    if quantized:  # edgeface_xxs_q is int8 edgeface_xxs
        variant = variant.removesuffix("_q")
    return variant, str(m.format), quantized or bool(getattr(m, "int8", False))


def _parity(session: Session, ev_a: Evaluation, ev_b: Evaluation) -> dict:
    """Parity figures over every view compare embedded, and the probes' rank-1 decisions."""
    views = ("gallery", "probe_dsr", "probe_hr") if session.probes_need_dsr else ("gallery", "probe_dsr")
    pairs = {v: (session.embeddings("model", v).raw, session.embeddings("baseline", v).raw) for v in views}
    dims = {a.shape[1] for a, _ in pairs.values()} | {b.shape[1] for _, b in pairs.values()}
    if len(dims) > 1:
        raise FacediagError("parity compares embeddings image by image: A and B give "
                            f"{' and '.join(map(str, sorted(dims)))}-d embeddings, they are not one network")
    _, ia, ib = np.intersect1d(ev_a.probe_rows, ev_b.probe_rows, return_indices=True)
    return deployment_parity(pairs, ev_a.rank1_subjects()[ia], ev_b.rank1_subjects()[ib])


def _label(report: Report) -> str:
    path = report.checkpoints.get("model", {}).get("path") or ""
    return Path(path).name or "?"


def _rows(a: Report, b: Report, tests: dict[str, Tested], alpha: float) -> list[MetricRow]:
    """Every numeric metric of either side, in report order; tested ones carry intervals and a verdict."""
    keys: list[str] = []
    values: dict[str, list] = {}
    for side, report in enumerate((a, b)):
        for res in report.results:
            for name, v in res.metrics.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                key = f"{res.name}.{name}"
                if key not in values:
                    keys.append(key)
                    values[key] = [None, None]
                values[key][side] = float(v)
    keys += [k for k in tests if k not in values]
    rows = []
    for key in keys:
        direction = higher_is_better(key)
        t = tests.get(key)
        if t is None or t.b is None:
            va, vb = values.get(key, [None, None])
            rows.append(MetricRow(key, va, vb, direction))
            continue
        if t.p_value is not None:  # per-probe correctness: McNemar's exact test decides
            verdict_ = verdict(t.delta.point, t.p_value < alpha, direction)
        else:
            verdict_ = interval_verdict(t.delta.point, t.delta.low, t.delta.high, direction)
        rows.append(MetricRow(key, t.a.point, t.b.point, direction, [t.a.low, t.a.high], [t.b.low, t.b.high],
                              [t.delta.low, t.delta.high], t.p_value, verdict_))
    return rows


def _threshold_notes(provenance: dict[str, dict]) -> list[str]:
    """Where each side's threshold comes from (one line when both share one)."""
    a, b = provenance["A"], provenance["B"]
    if a.get("threshold") == b.get("threshold") and a.get("source") == b.get("source"):
        return [provenance_text(a, "both sides' operating threshold")]
    return [provenance_text(a, "A's operating threshold"), provenance_text(b, "B's operating threshold")]


def _cautions(by_key: dict[str, MetricRow], thresholds: tuple[float, float]) -> list[str]:
    """Changes that read better than they are."""
    acc, far = by_key.get("identification.accuracy_at_threshold"), by_key.get("identification.far_at_threshold")
    threshold = thresholds[0] if thresholds[0] == thresholds[1] else None
    at = f"{threshold:g}" if threshold is not None else "each side's threshold"
    if acc and far and acc.verdict == BETTER and far.verdict == WORSE:
        return [f"accuracy at {at} rose ({acc.a:.3f} → {acc.b:.3f}) only with the false-accept rate "
                f"({far.a:.2%} → {far.b:.2%}): B accepts more of everyone, it does not recognise people better"]
    return []


def _demographic_tests(session: Session, suite: Suite, n_boot: int, alpha: float, seed: int) -> dict[str, Tested]:
    """With --groups and the demographic check in the suite: its summaries (FDR, GARBE, the ratios) of A
    and B, each at the threshold the check judges that side at, and B − A on the same resampled subjects."""
    assignment = session.group_assignment()
    if assignment is None or "demographic" not in suite.checks:
        return {}
    params = suite.params("demographic")
    evs = [session.evaluation(role) for role in ("model", "baseline")]
    at = [judged_threshold(session.for_role(role), ev, params) for role, ev in zip(("model", "baseline"), evs)]
    settings = replace(settings_of(params), n_boot=n_boot, alpha=alpha, seed=seed)
    return differential_tests(*evs, assignment, *at, settings)


_DIFFERENTIALS = {"fdr": "FDR", "garbe": "GARBE", "fnmr_max_geomean": "FNMR max/geomean",
                  "fmr_max_geomean": "FMR max/geomean"}


def differential_notes(by_key: dict[str, MetricRow]) -> list[str]:
    """Whether the demographic differential grew or shrank from A to B, per summary, with its test."""
    lines = []
    rows = [(key.partition(".")[2].partition("."), row) for key, row in by_key.items()
            if key.startswith("demographic.") and row.verdict is not None]
    order = list(_DIFFERENTIALS)
    for (name, _, attribute), row in sorted(rows, key=lambda x: (x[0][2], order.index(x[0][0]) if x[0][0] in order
                                                                  else len(order))):
        if name not in _DIFFERENTIALS:
            continue
        moved = {BETTER: "the differential shrank", WORSE: "the differential grew"}.get(row.verdict,
                                                                                          "no significant change")
        ci = "" if row.delta_ci is None else f" (B − A interval [{row.delta_ci[0]:+.3f}, {row.delta_ci[1]:+.3f}])"
        lines.append(f"demographic {_DIFFERENTIALS[name]}{f' over {attribute}' if attribute else ''}: "
                     f"{row.a:.3f} → {row.b:.3f}{ci}: {moved}")
    return lines


def _noise_text(row: MetricRow) -> str:
    if row.delta_ci is None:
        return ""
    p = f", McNemar p {row.p_value:.2g}" if row.p_value is not None else ""
    return f"B − A interval [{row.delta_ci[0]:+.3f}, {row.delta_ci[1]:+.3f}]{p}"


def _mcnemar_rank1(ev_a: Evaluation, ev_b: Evaluation) -> dict:
    """Discordant probes of rank-1 on the probes both models scored."""
    ca, cb = (dict(zip(ev.probe_rows[ev.mated].tolist(), ev.rank1_correct().tolist())) for ev in (ev_a, ev_b))
    common = sorted(set(ca) & set(cb))
    return mcnemar_exact([ca[r] for r in common], [cb[r] for r in common])


def _cka(session: Session) -> dict[str, float | None]:
    """Linear CKA between A's and B's L2-normalised embeddings of the same images, per view."""
    out = {}
    for view in ("gallery", "probe_dsr"):
        ea, eb = session.embeddings("model", view), session.embeddings("baseline", view)
        ok = ea.valid & eb.valid
        out[view] = linear_cka(l2_normalize(ea.raw[ok]), l2_normalize(eb.raw[ok])) if ok.sum() > 1 else None
    return out


def exit_code(report: CompareReport) -> int:
    """0 unless B is significantly worse than A on a gated metric (then 1)."""
    return 0 if report.passed else 1
