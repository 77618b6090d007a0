"""Validation of the model in training: a facediag.Monitor per held-out set, read into history rows.

Each epoch's validation is a Monitor call on the live module: run-all's checks (the ``monitor``
suite at the run's ``--threshold``), conditions and diagnosis rules, its trends against the first
call (epoch 0) and its stop decision. A row keeps, per set, the numbers it always kept, read from
the Monitor's metrics of the same meaning (CATALOGUE), and for ``val`` the diagnoses and trends
as its flags. The DSR, the protocol of the trainer's split and its Aligner are handed to the
Monitor, so nothing is indexed, loaded or detected twice.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from facediag.data.protocol import Protocol
from facediag.monitor import Monitor, MonitorResult
from facediag.monitor.trends import describe
from facediag.suites import load_suite

# A row's ``<set>_<name>`` -> the metric-catalogue name it is read from. rank1 selects the checkpoint.
CATALOGUE = {
    "rank1": "identification.rank1",
    "accuracy_at_threshold": "identification.accuracy_at_threshold",
    "far_at_threshold": "identification.far_at_threshold",
    "genuine_mean": "pair-gap.genuine_mean",
    "impostor_mean": "pair-gap.impostor_mean",
    "paired_mean": "pair-gap.paired_mean",
    "pair_gap": "pair-gap.gap",
    "threshold_at_far_1pct": "identification.threshold_for_far_0.01",
    "n_probes": "identification.n_probes",
    "n_subjects": "identification.n_gallery_subjects",
}
_COUNTS = ("n_probes", "n_subjects")


def build_monitor(protocol: Protocol, root: Path, *, threshold: float, dsr, aligner, device, cfg) -> Monitor:
    """The Monitor of one held-out set of the trainer's split."""
    suite = dataclasses.replace(load_suite("monitor"), threshold=threshold)
    return Monitor(data=root, layout=cfg.layout, vlr_size=protocol.vlr_size, degrade=cfg.degrade,
                   align="none" if aligner is None else
                   "mtcnn", suite=suite, device=str(device), batch_size=cfg.batch_size, progress=cfg.progress,
                   gallery_per_subject=cfg.gallery_per_subject, subject_regex=cfg.subject_regex,
                   protocol=protocol, dsr_model=dsr, aligner=aligner)


def row_fields(name: str, result: MonitorResult) -> dict:
    """``<name>_<metric>`` for every CATALOGUE entry (None where the Monitor measured none); for
    ``val`` also its diagnoses, trends, flag lines and the Monitor's stop decision."""
    out = {}
    for key, metric in CATALOGUE.items():
        value = result.metrics.get(metric)
        out[f"{name}_{key}"] = int(value) if value is not None and key in _COUNTS else value
    if name == "val":
        out.update(val_diagnoses=list(result.diagnoses), val_trends=list(result.trends),
                   should_stop=result.should_stop, stop_reason=result.reason)
    return out


def flag_lines(result: MonitorResult, first: MonitorResult | None) -> list[str]:
    """One line per diagnosis (its summary, as run-all states it) and per trend (its numbers)."""
    said = {d.id: d.summary for d in result.report.diagnoses} if result.report is not None else {}
    lines = [f"{d}: {said[d]}" if d in said else d for d in result.diagnoses]
    lines += [f"{t}: {describe(t, first.metrics, result.metrics)}" if first is not None else t for t in result.trends]
    return lines


def first_call(row: dict) -> MonitorResult:
    """The val Monitor's first call (epoch 0) as a resumed run's history row keeps it: what its
    trends are read against."""
    metrics = {metric: float(row[f"val_{key}"]) for key, metric in CATALOGUE.items()
               if row.get(f"val_{key}") is not None}
    return MonitorResult(step=int(row.get("steps") or 0), metrics=metrics, statuses={},
                         diagnoses=list(row.get("val_diagnoses") or []), trends=[], should_stop=False, reason=None)


def protocol_info(protocol: Protocol, root: Path) -> dict:
    return {"root": str(root), "protocol": protocol.description,
            "subjects": len(protocol.gallery_subjects), "gallery_images": len(protocol.gallery),
            "probes": len(protocol.probes), "vlr_size": protocol.vlr_size,
            "fingerprint": protocol.fingerprint()}
