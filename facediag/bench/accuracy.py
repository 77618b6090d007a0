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

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facediag.distributed import Distributed
from facediag.results import BenchReport
from facediag.errors import FacediagError
from facediag.metrics.verdict import BETTER, WORSE, excludes_zero
from facediag.metrics.verdict import verdict as change_verdict
from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.models.protocol import preset_of
from facediag.protocols.gallery import Evaluation, headline_metrics
from facediag.protocols.index import recall_metrics
from facediag.metrics.distribution import dprime_from_moments
from facediag.metrics.identification import open_set_from
from facediag.metrics.significance import bootstrap_rank1, mcnemar_exact, paired_bootstrap_rank1
from facediag.metrics.verification import verification_metrics

DEFAULT_RESOLUTIONS: tuple[int | None, ...] = (12, 16, 24, 32, None)  # None = HR (no degradation)
DEFAULT_FARS = (1e-1, 1e-2, 1e-3, 1e-4)


def parse_resolutions(text: str | Sequence) -> tuple[int | None, ...]:
    """"12,16,hr" -> (12, 16, None): low resolutions ascending, HR last, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    sizes: set[int] = set()
    hr = False
    for item in items:
        token = str(item).strip().lower() if item is not None else "hr"
        if token in ("hr", "none", "full"):
            hr = True
            continue
        try:
            size = int(token)
        except ValueError:
            raise FacediagError(f"resolution {item!r} is neither a size in pixels nor 'hr'") from None
        if not 4 <= size <= 112:
            raise FacediagError(f"resolution {size}: must be between 4 and 112 pixels (or 'hr')")
        sizes.add(size)
    if not sizes and not hr:
        raise FacediagError("no resolutions given (e.g. 12,16,24,32,hr)")
    return tuple(sorted(sizes)) + ((None,) if hr else ())


def _labels(checkpoints: Sequence, labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(checkpoints) or len(set(labels)) != len(labels):
            raise FacediagError("give one distinct label per checkpoint")
        return list(labels)
    names = [Path(str(getattr(c, "path", c) or f"model{i}")).stem for i, c in enumerate(checkpoints)]
    # Two files with the same name from different folders still need two table rows.
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def card_per_checkpoint(checkpoints: Sequence, cards: Sequence | None) -> list:
    """``cards`` as one entry per checkpoint (None: the card beside it); FacediagError on a wrong count."""
    cards = list(cards) if cards else [None] * len(checkpoints)
    if len(cards) != len(checkpoints):
        raise FacediagError(f"{len(cards)} --card for {len(checkpoints)} --weights: give one per checkpoint or none")
    return cards


def _load(checkpoints: Sequence, arch: str | None, cards: Sequence | None = None) -> list:
    """Each checkpoint loaded (paths) or as given; ``cards``: a model card per checkpoint (None: each one's own)."""
    from facediag.models.checkpoint import load_checkpoint
    from facediag.models.loaded import LoadedModel

    return [c if isinstance(c, LoadedModel) else load_checkpoint(c, arch=arch, card=card)
            for c, card in zip(checkpoints, card_per_checkpoint(checkpoints, cards))]


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
                   arch: str | None = None, cards: Sequence | None = None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                   command: str | None = None, dist: Distributed | None = None,
                   **options) -> BenchReport | None:
    """Accuracy table per probe resolution × checkpoint (and DSR vs bicubic with ``dsr``).

    ``checkpoints``: weights paths or already loaded checkpoints. ``resolutions``: sizes in
    pixels and/or None ("hr") or a string like "12,16,24,32,hr". ``threshold``: None takes the
    models' preset's; ``cards``: a model card per checkpoint (None: the card beside each). ``options``: other
    SessionConfig fields (gallery_root, probe_root, layout, gallery_per_subject, device,
    batch_size, cache_dir, use_cache, progress, ...). Under torchrun (``dist``) every rank must
    call this; only rank 0 gets the report, the others None.

    Example::

        report = bench_accuracy(["edgeface_xxs.pt"], "orl_faces", resolutions="12,16,hr")
        report.rows_where(resolution=16)[0]["rank1"]
    """
    from facediag.runner import checkpoint_info, settle_alignment
    from facediag.session import Session, SessionConfig

    for key in ("weights", "baseline_weights", "vlr_size", "dsr", "dsr_weights"):
        if key in options:
            raise FacediagError(f"bench_accuracy sets {key} itself; do not pass it in options")
    if not checkpoints:
        raise FacediagError("give at least one checkpoint")
    if dsr_weights is not None and dsr in (None, "bicubic"):
        raise FacediagError("DSR weights given without a DSR model (--dsr module:factory)")
    resolutions = parse_resolutions(resolutions)
    names = _labels(checkpoints, labels)
    loaded = _load(checkpoints, arch, cards)
    threshold = resolve_threshold(threshold, [preset_of(m) for m in loaded])
    models = dict(zip(names, loaded))
    embedders: dict = {}  # one Embedder per checkpoint, shared by every session below

    def session(vlr_size, dsr_spec, dsr_w):
        cfg = SessionConfig(data=data, vlr_size=vlr_size, dsr=dsr_spec, dsr_weights=dsr_w, **options)
        sess = Session(cfg, models=models, embedders=embedders, dist=dist, aligner=aligner)
        if note is not None:  # --align auto, decided once on the first session, holds for all
            sess.settle_alignment(info_session.alignment, note)
        return sess

    aligner = note = None
    info_session = session(None, None, None)
    for label in names:  # a model that cannot take its input is bad input: one line, before any work
        info_session.check_card(label)
    settle_alignment(info_session)
    if info_session.config.align == "auto":
        note = info_session.alignment_info().get("note", "")
    if info_session.alignment == "mtcnn":  # one set of landmarks for every resolution's session
        aligner = info_session.aligner
    notes = []
    if any(p.vlr is not None for p in info_session.protocol.probes):
        notes.append("the data has real VLR files: probes with one use it at every resolution (only "
                     "probes without one are area-downsampled), so rows may not be at the resolution named")

    # path name -> (DSR spec, weights). Bicubic always; the DSR model too when one is given.
    paths = {"bicubic": (None, None)}
    if dsr is not None and dsr != "bicubic":
        paths["dsr"] = (dsr, dsr_weights)
    rows, comparisons = [], []
    for res in resolutions:
        done: dict[tuple[str, str], tuple[Evaluation, dict]] = {}  # (path, checkpoint) -> (evaluation, row)
        for path, (spec, weights) in (paths.items() if res is not None else [("hr", (None, None))]):
            sess = session(res, spec, weights)
            sess.prepare(names)  # under torchrun: every rank its shard, in the same order
            if not sess.dist.main:
                continue
            upsampling = "none (HR)" if res is None else (sess.dsr.name if path == "dsr" else "bicubic")
            for label in names:
                ev = sess.evaluation(label)
                row = {"resolution": "hr" if res is None else res, "checkpoint": label, "path": path,
                       "upsampling": upsampling, **row_metrics(ev, threshold, fars, n_boot, seed),
                       **recall_metrics(ev.matching.index)}  # --index faiss-ivf/hnsw: what it missed
                rows.append(row)
                done[path, label] = ev, row
        for label in names:
            if ("dsr", label) in done:
                (dsr_ev, dsr_row), (bic_ev, bic_row) = done["dsr", label], done["bicubic", label]
                cmp = compare_paths(dsr_ev, bic_ev, n_boot=n_boot, seed=seed, alpha=alpha)
                comparisons.append({"resolution": res, "checkpoint": label, "dsr": dsr_row["upsampling"], **cmp,
                                    "accuracy_delta": _diff(dsr_row, bic_row, "accuracy_at_threshold"),
                                    "eer_delta": _diff(dsr_row, bic_row, "eer")})

    # batches that reached each model, over all ranks (shards are whole batches: as one process)
    per_rank = info_session.dist.all_gather_object({label: e.forward_calls for label, e in embedders.items()})
    if not info_session.dist.main:
        return None
    calls = {label: sum(c[label] for c in per_rank) for label in embedders}
    dataset = info_session.dataset_info()  # after the rows: it counts the faces aligned
    for key in ("vlr_size", "dsr", "fingerprint"):  # per-resolution; rows say how probes were made
        dataset.pop(key, None)
    dataset["protocol"] = (dataset["protocol"].rpartition("; ")[0]
                           + "; probes area-downsampled to each resolution, then upsampled to 112")
    notes += info_session.alignment_notes()
    if info_session.config.index != "exact":
        notes.append(f"rank-k from --index {info_session.config.index}: as that index answers (rows give an "
                     "approximate index's recall against exact search); verification metrics from the exact pass")
    settings = {"resolutions": ["hr" if r is None else r for r in resolutions], "threshold": threshold,
                "fars": list(fars), "dsr": dsr, "n_boot": n_boot, "alpha": alpha, "seed": seed,
                "batch_size": info_session.config.batch_size, "device": str(info_session.device),
                "model_forward_batches": calls}
    return BenchReport(
        kind="accuracy",
        command=command or "facediag.bench.bench_accuracy(...)",
        checkpoints={label: checkpoint_info(m) for label, m in models.items()},
        settings=settings, rows=rows, comparisons=comparisons, dataset=dataset, notes=notes,
        environment=_environment(info_session.device))


def _diff(a: dict, b: dict, key: str):
    return None if a.get(key) is None or b.get(key) is None else a[key] - b[key]


def _environment(device) -> dict[str, Any]:
    import torch

    env = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
