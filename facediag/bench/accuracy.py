"""bench accuracy: recognition per probe resolution and per checkpoint, and DSR vs bicubic.

One Session per (resolution, upsampling path) holds every checkpoint as a role, so DSR
outputs are computed once per resolution and shared by all checkpoints. All sessions share
one Embedder per checkpoint (``Session(..., embedders=...)``), whose in-run memo is keyed
by image content: the HR gallery (and each probe's own HR image) is embedded once per
checkpoint and reused by every resolution, with or without the on-disk cache. Under torchrun
every rank embeds its shard of each session's images (``Session.prepare``); rank 0 alone
measures and gets the report.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facediag.bench.common import checkpoint_labels, environment, load_models, parse_resolutions
from facediag.bench.native_gap import SECTION as NATIVE_GAP
from facediag.bench.native_gap import degradations as gap_degradations
from facediag.bench.native_gap import native_vs_synthetic
from facediag.bench.native_quality import NativeQuality
from facediag.checks.demographic import Demographic, judged_label, settings_of
from facediag.data.degradation import check_mode as check_degradation
from facediag.data.degradation import describe as describe_degradation
from facediag.distributed import Distributed
from facediag.results import BenchReport
from facediag.errors import FacediagError
from facediag.metrics.verdict import BETTER, WORSE, excludes_zero
from facediag.metrics.verdict import verdict as change_verdict
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.models.loaded import preset_of
from facediag.protocols.gallery import Evaluation, headline_metrics
from facediag.protocols.index import recall_metrics
from facediag.protocols.demographics import demographic_section, operating_thresholds
from facediag.metrics.distribution import dprime_from_moments
from facediag.metrics.identification import open_set_from
from facediag.metrics.operating_point import apply_threshold
from facediag.metrics.significance import bootstrap_rank1, mcnemar_exact, paired_bootstrap_rank1
from facediag.metrics.verification import verification_metrics
from facediag.runner import checkpoint_info, settle_alignment
from facediag.session import Session, SessionConfig

DEFAULT_RESOLUTIONS: tuple[int | None, ...] = (12, 16, 24, 32, None)  # None = HR (no degradation)
DEFAULT_FARS = (1e-1, 1e-2, 1e-3, 1e-4)


def resolve_threshold(threshold: float | None, presets: Sequence) -> float:
    """None: the models' preset's operating threshold (a model card's, else EdgeFace's 0.35);
    one table has one threshold, so models whose cards disagree need --threshold."""
    if threshold is not None:
        return float(threshold)
    chosen = {p.threshold for p in presets}
    if len(chosen) > 1:
        raise FacediagError("the checkpoints' model cards disagree on the threshold: give --threshold")
    return chosen.pop() if chosen else DEFAULT_THRESHOLD


def row_metrics(ev: Evaluation, threshold: float, fars: Sequence[float], n_boot: int, seed: int) -> dict[str, Any]:
    """The bench numbers for one (resolution, checkpoint, path): identification and verification."""
    head = headline_metrics(ev, threshold)
    genuine, impostor = ev.genuine_scores(), ev.impostors
    out: dict[str, Any] = {k: head[k] for k in ("rank1", "accuracy_at_threshold", "far_at_threshold",
                                                "genuine_mean", "impostor_mean", "n_probes", "n_subjects")}
    correct = ev.rank1_correct()
    if correct.size:
        ci = bootstrap_rank1(correct, ev.probe_subjects[ev.mated], n_boot=n_boot, seed=seed)
        out.update(rank1_low=ci.low, rank1_high=ci.high)
    if genuine.size and impostor.n:
        ver = verification_metrics(genuine, impostor, fars=fars)
        out["eer"] = ver.eer
        out["auc"] = ver.auc
        out["dprime"] = dprime_from_moments(genuine.mean(), genuine.var(), impostor.mean, impostor.var)
        out["tar_at_far"] = {f"{p.far:g}": p.tar for p in ver.tar_at_far}
        out["tar_unsupported"] = {f"{p.far:g}": p.reason for p in ver.tar_at_far if not p.supported}
    out.update(n_genuine=int(genuine.size), n_impostor=int(impostor.n))
    if (~ev.mated).any() and ev.mated.any():  # open set (e.g. --distractors): TPIR/FPIR as identification defines them
        osr = open_set_from(ev.matching.summary(), threshold=threshold)
        out.update(tpir=osr.dir, fpir=osr.false_alarm_rate, n_nonmated=osr.n_nonmated,
                   tpir_at_fpir={f"{f:g}": v for f, v in osr.dir_at_false_alarm.items()})
    return out


def compare_paths(dsr_ev: Evaluation, bicubic_ev: Evaluation, *, n_boot: int, seed: int,
                  alpha: float = 0.05) -> dict[str, Any]:
    """Rank-1 of DSR minus bicubic on the same probes: exact McNemar + paired subject bootstrap."""
    def correct_by_row(ev):
        return dict(zip(ev.probe_rows[ev.mated].tolist(), ev.rank1_correct().tolist()))

    d, b = correct_by_row(dsr_ev), correct_by_row(bicubic_ev)
    rows = sorted(set(d) & set(b))  # probes that both paths could read (normally all)
    if not rows:
        raise FacediagError("DSR and bicubic share no readable mated probe to compare")
    c_dsr = np.array([d[r] for r in rows])
    c_bic = np.array([b[r] for r in rows])
    subj = dict(zip(dsr_ev.probe_rows.tolist(), dsr_ev.probe_subjects.tolist()))
    subjects = np.array([subj[r] for r in rows])
    mc = mcnemar_exact(c_bic, c_dsr)  # A = bicubic, B = DSR: b01 = bicubic wrong, DSR right
    boot = paired_bootstrap_rank1(c_bic, c_dsr, subjects, n_boot=n_boot, alpha=alpha, seed=seed)
    # Significant only when both tests agree: McNemar on the probes and the subject bootstrap.
    significant = mc["p_value"] < alpha and excludes_zero(boot.low, boot.high)
    verdict = {BETTER: "DSR helps", WORSE: "DSR hurts"}.get(
        change_verdict(boot.delta, significant, higher_is_better=True), "no significant difference")
    return {"rank1_dsr": float(c_dsr.mean()), "rank1_bicubic": float(c_bic.mean()), "delta": boot.delta,
            "ci_low": boot.low, "ci_high": boot.high, "mcnemar": mc, "n_probes": len(rows),
            "significant": bool(significant), "verdict": verdict}


def bench_accuracy(checkpoints: Sequence, data: str | Path | None = None, *,
                   resolutions: str | Sequence = DEFAULT_RESOLUTIONS, dsr: str | None = None,
                   dsr_weights: str | Path | None = None, threshold: float | None = None,
                   fars: Sequence[float] = DEFAULT_FARS, labels: Sequence[str] | None = None,
                   arch: str | None = None, cards: Sequence | None = None, n_boot: int = 1000, alpha: float = 0.05,
                   seed: int = 0,
                   command: str | None = None, dist: Distributed | None = None,
                   **options) -> BenchReport | None:
    """Accuracy table per probe resolution × checkpoint (and DSR vs bicubic with ``dsr``).

    ``checkpoints``: weights paths or loaded models (LoadedModel: a checkpoint, an ONNX graph, or a
    module wrapped with LoadedModel.from_module). ``resolutions``: sizes in
    pixels and/or None ("hr") or a string like "12,16,24,32,hr". ``threshold``: None takes the
    models' preset's; ``cards``: a model card per checkpoint (None: the card beside each). ``options``: other
    SessionConfig fields (gallery_root, probe_root, layout, gallery_per_subject, degrade, device,
    batch_size, cache_dir, use_cache, progress, ...); ``degrade="realistic"`` makes the low-resolution
    probes by :mod:`facediag.data.degradation`'s realistic chain instead of area downsampling.
    Under torchrun (``dist``) every rank must call this; only rank 0 gets the report, the others None.

    Example::

        report = bench_accuracy(["edgeface_xxs.pt"], "orl_faces", resolutions="12,16,hr")
        report.rows_where(resolution=16)[0]["rank1"]
    """
    _check_arguments(checkpoints, dsr, dsr_weights, options)
    resolutions = parse_resolutions(resolutions)
    names = checkpoint_labels(checkpoints, labels)
    models = dict(zip(names, load_models(checkpoints, arch, cards)))
    given_threshold = threshold
    threshold = resolve_threshold(threshold, [preset_of(m) for m in models.values()])
    sessions = _Sessions(data, options, models, dist)
    scoring = _Scoring(threshold, fars, n_boot, seed, alpha)
    paths = {"bicubic": (None, None)}  # path name -> (DSR spec, weights): bicubic, and the DSR model when given
    if dsr is not None and dsr != "bicubic":
        paths["dsr"] = (dsr, dsr_weights)
    rows, comparisons, gap_notes = [], [], []
    # real VLR files are the same at every resolution: their size/quality section once, on the first low
    # one, and there the same probes made synthetically from their HR images beside them (native_gap)
    first_low = next((r for r in resolutions if r is not None), None)
    for res in resolutions:
        native = NativeQuality() if res is not None and res == first_low else None
        kept = {} if native is not None else None
        res_rows, res_comparisons = _resolution_rows(sessions, res, paths, names, scoring, native, kept)
        if kept:
            gap_notes = _native_gap(sessions, kept, res_rows, paths, names, scoring)
        rows += res_rows
        comparisons += res_comparisons
    calls = sessions.forward_batches()  # a collective: before the other ranks leave
    info = sessions.info
    if not info.dist.main:
        return None
    degrade = options.get("degrade", "bicubic")
    settings = {"resolutions": ["hr" if r is None else r for r in resolutions], "threshold": threshold,
                "threshold_provenance": _provenance(threshold, given_threshold, models),
                "fars": list(fars), "dsr": dsr, "n_boot": n_boot, "alpha": alpha, "seed": seed,
                "degrade": degrade, "degradation": describe_degradation(degrade),
                "batch_size": info.config.batch_size, "device": str(info.device),
                "model_forward_batches": calls}
    if any(NATIVE_GAP in r for r in rows):  # every range of both synthetic sides, whatever --degrade
        settings["native_vs_synthetic_degradations"] = gap_degradations()
    notes = sessions.real_vlr_notes() + gap_notes
    dataset = _dataset(info, degrade)  # after the rows: it counts the faces aligned
    notes += info.alignment_notes() + _index_notes(info)
    return BenchReport(
        kind="accuracy",
        command=command or "facediag.bench.bench_accuracy(...)",
        checkpoints={label: checkpoint_info(m) for label, m in models.items()},
        settings=settings, rows=rows, comparisons=comparisons, dataset=dataset, notes=notes,
        environment=environment(info.device))


def _check_arguments(checkpoints: Sequence, dsr: str | None, dsr_weights, options: dict) -> None:
    for key in ("weights", "baseline_weights", "vlr_size", "dsr", "dsr_weights"):
        if key in options:
            raise FacediagError(f"bench_accuracy sets {key} itself; do not pass it in options")
    if not checkpoints:
        raise FacediagError("give at least one checkpoint")
    check_degradation(options.get("degrade", "bicubic"))  # before any model is loaded
    if dsr_weights is not None and dsr in (None, "bicubic"):
        raise FacediagError("DSR weights given without a DSR model (--dsr module:factory)")


@dataclass(frozen=True)
class _Scoring:
    """How every row is measured: the operating threshold, the FARs, the bootstrap and the test level."""

    threshold: float
    fars: Sequence[float]
    n_boot: int
    seed: int
    alpha: float


class _Sessions:
    """One Session per (resolution, upsampling path), all over the same models and one Embedder per
    checkpoint (so the HR gallery is embedded once for every resolution). The first, ``info``,
    checks each model's card and settles the alignment (``--align auto``) once for all."""

    def __init__(self, data, options: dict, models: dict, dist: Distributed | None):
        self.data, self.options, self.models, self.dist = data, options, models, dist
        self.embedders: dict = {}
        self.aligner = self.note = None
        self.info = self.make(None, None, None)
        for label in models:  # a model that cannot take its input is bad input: one line, before any work
            self.info.check_card(label)
        settle_alignment(self.info)
        self.info.check_groups()  # a --groups file naming none of the data's people: one line, before any work
        if self.info.config.align == "auto":  # decided once, on the first session, holds for all
            self.note = self.info.alignment_info().get("note", "")
        if self.info.alignment == "mtcnn":  # one set of landmarks for every resolution's session
            self.aligner = self.info.aligner
        if self.info.dev is not None:  # a development set that cannot be indexed: one line, before any work
            self.info.dev_impostor_pairs()

    def make(self, vlr_size: int | None, dsr: str | None, dsr_weights, **overrides) -> Session:
        """A Session at one resolution and upsampling path; ``overrides``: other SessionConfig fields
        than the run's options (native_gap's synthetic probes)."""
        options = {**self.options, **overrides}
        cfg = SessionConfig(data=self.data, vlr_size=vlr_size, dsr=dsr, dsr_weights=dsr_weights, **options)
        sess = Session(cfg, models=self.models, embedders=self.embedders, dist=self.dist, aligner=self.aligner)
        if self.note is not None:
            sess.settle_alignment(self.info.alignment, self.note)
        return sess

    def real_vlr_notes(self) -> list[str]:
        if not any(p.vlr is not None for p in self.info.protocol.probes):
            return []
        mode = self.info.config.degrade
        how = "area-downsampled" if mode == "bicubic" else f"made by the {mode} degradation"
        return ["the data has real VLR files: probes with one use it at every resolution (only "
                f"probes without one are {how}), so rows may not be at the resolution named"]

    def forward_batches(self) -> dict[str, int]:
        """Batches that reached each model, over all ranks (shards are whole batches: as one process)."""
        per_rank = self.info.dist.all_gather_object({label: e.forward_calls for label, e in self.embedders.items()})
        return {label: sum(c[label] for c in per_rank) for label in self.embedders}


def _resolution_rows(sessions: _Sessions, res: int | None, paths: dict, names: Sequence[str],
                     scoring: _Scoring, native: NativeQuality | None = None,
                     kept: dict | None = None) -> tuple[list[dict], list[dict]]:
    """One resolution's rows (each checkpoint through each upsampling path; HR: no path) and, with
    a DSR model, each checkpoint's DSR-vs-bicubic comparison. Empty on ranks other than 0. With
    ``native``, rows whose probes include real VLR files carry ``by_quality`` over those probes.
    ``kept`` (a dict) receives each path's Session, on every rank."""
    rows, done = [], {}  # (path, checkpoint) -> (evaluation, row)
    for path, (spec, weights) in (paths.items() if res is not None else [("hr", (None, None))]):
        sess = sessions.make(res, spec, weights)
        sess.prepare(names)  # under torchrun: every rank its shard, in the same order
        if kept is not None:
            kept[path] = sess
        if not sess.dist.main:
            continue
        expect_dev_points(sess, names)
        upsampling = "none (HR)" if res is None else (sess.dsr.name if path == "dsr" else "bicubic")
        for label in names:
            ev = sess.evaluation(label)
            row = {"resolution": "hr" if res is None else res, "checkpoint": label, "path": path,
                   "upsampling": upsampling,
                   **row_metrics(ev, scoring.threshold, scoring.fars, scoring.n_boot, scoring.seed),
                   **recall_metrics(ev.matching.index)}  # --index faiss-ivf/hnsw: what it missed
            if sess.dev is not None:  # --dev-data: thresholds fixed there for this checkpoint, resolution and path
                row["operating_points"] = dev_operating_points(sess, label, ev)
            section = native.section(ev, sess.protocol.probes, scoring.threshold) if native else None
            if section is not None:
                row["by_quality"] = section
            if sess.group_assignment() is not None:  # --groups: the demographic check's section, per row
                row["demographic"] = group_section(ev, sess.group_assignment(), scoring.threshold, scoring.n_boot,
                                                   scoring.seed)
            rows.append(row)
            done[path, label] = ev, row
    comparisons = []
    for label in names:
        if ("dsr", label) in done:
            (dsr_ev, dsr_row), (bic_ev, bic_row) = done["dsr", label], done["bicubic", label]
            cmp = compare_paths(dsr_ev, bic_ev, n_boot=scoring.n_boot, seed=scoring.seed, alpha=scoring.alpha)
            comparisons.append({"resolution": res, "checkpoint": label, "dsr": dsr_row["upsampling"], **cmp,
                                "accuracy_delta": _diff(dsr_row, bic_row, "accuracy_at_threshold"),
                                "eer_delta": _diff(dsr_row, bic_row, "eer")})
    return rows, comparisons


def _native_gap(sessions: _Sessions, native: dict, rows: list[dict], paths: dict, names: Sequence[str],
                scoring: _Scoring) -> list[str]:
    """Where the resolution's probes have real VLR files and their own HR images: each (path,
    checkpoint) row gets ``native_vs_synthetic`` (bench.native_gap); returns the report's notes.
    Every rank calls it (the synthetic Sessions' prepare is a collective)."""
    sections, notes = native_vs_synthetic(native, sessions.make, paths, names, n_boot=scoring.n_boot,
                                          seed=scoring.seed, alpha=scoring.alpha)
    for row in rows:
        section = sections.get((row["path"], row["checkpoint"]))
        if section is not None:
            row[NATIVE_GAP] = section
    return notes


def group_section(ev: Evaluation, assignment, threshold: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Per-group FMR and FNMR of one row (the demographic check's defaults), at the bench's threshold
    and at the one reaching the check's FMR target over all the row's impostor pairs."""
    params = {**Demographic.params, "threshold": threshold, "n_boot": n_boot}
    labels, notes = operating_thresholds(ev, threshold, params["fmr_target"], None)
    settings = replace(settings_of(params), seed=seed)
    section = demographic_section(ev, assignment, labels, settings, judged_label(labels, params["fmr_target"]))
    section["notes"] = [*notes, *section["notes"]]
    return section


def _dataset(info: Session, degrade: str = "bicubic") -> dict[str, Any]:
    """The dataset as every resolution shares it: the per-resolution fields left to the rows."""
    dataset = info.dataset_info()
    for key in ("vlr_size", "dsr", "fingerprint"):  # per-resolution; rows say how probes were made
        dataset.pop(key, None)
    how = ("area-downsampled" if degrade == "bicubic" else
           f"degraded by the {degrade} chain (blur, downsampling, noise, JPEG: settings.degradation)")
    dataset["protocol"] = (dataset["protocol"].rpartition("; ")[0]
                           + f"; probes {how} to each resolution, then upsampled to 112")
    return dataset


def _index_notes(info: Session) -> list[str]:
    if info.config.index == "exact":
        return []
    return [f"rank-k from --index {info.config.index}: as that index answers (rows give an "
            "approximate index's recall against exact search); verification metrics from the exact pass"]


def _provenance(threshold: float, given: float | None, models: dict) -> dict[str, Any]:
    """Where the table's threshold comes from: --threshold ("option"), or the models' preset."""
    if given is not None:
        return {"threshold": threshold, "source": "option", "where": "--threshold", "set": None, "criterion": None,
                "fmr_target": None}
    carded = [getattr(m, "card", None) for m in models.values()]
    where = "the model cards'" if any(carded) else "EdgeFace's preset"
    return {"threshold": threshold, "source": "preset", "where": where, "set": None, "criterion": None,
            "fmr_target": None}


def expect_dev_points(sess: Session, names: Sequence[str]) -> None:
    """With a development set: each checkpoint's dev-fixed thresholds counted in the evaluation's
    one matching pass (not one more pass each)."""
    if sess.dev is None:
        return
    for label in names:
        points = sess.dev_thresholds(label) or {}
        sess.expect_thresholds({p["threshold"] for p in points.values() if p["threshold"] is not None})


def dev_operating_points(sess: Session, label: str, ev: Evaluation) -> list[dict[str, Any]]:
    """The thresholds fixed on the development set for one checkpoint (at this row's resolution and
    path), each with its provenance and its rates on the development set and on this row's data."""
    genuine, n_impostor = ev.genuine_scores(), int(ev.matching.impostor_count.sum())
    out = []
    for key, p in (sess.dev_thresholds(label) or {}).items():
        point = {k: p[k] for k in ("key", "criterion", "fmr_target", "set", "threshold", "reason", "fmr", "fnmr",
                                   "hter", "n_genuine", "n_impostor")}
        point["eval"] = point["eval_supported"] = None
        if p["threshold"] is not None and len(genuine) and n_impostor:
            applied = apply_threshold(p["threshold"], genuine, int(ev.false_accepts(p["threshold"]).sum()), n_impostor)
            point["eval"] = applied.as_dict()
            point["eval_supported"] = None if p["fmr_target"] is None else applied.fmr_supported(p["fmr_target"])
        out.append(point)
    return out


def _diff(a: dict, b: dict, key: str):
    return None if a.get(key) is None or b.get(key) is None else a[key] - b[key]
