"""Who is enrolled (gallery, HR only) and who is probed (low resolution through DSR).

Either two roots (``gallery_root`` enrols everyone in it, ``probe_root`` probes) or one
root split per subject: the first K HR images (natural filename order) enrol, the rest probe.
A probe keeps its own HR image (for paired similarity) and its low-resolution source:
the real VLR file of the same capture when the data has one, else the HR image
area-downsampled to ``vlr_size`` (``None`` = probe at full resolution, no DSR).

A VLR file with no HR image of the same capture is a probe only with a separate probe root.
In one root it is never probed: nothing shows it is not a copy of an enrolled image (a paired
layout whose names differ, p1_1.png vs p1_1_lr.png, would otherwise probe the gallery with
itself). With two roots it is a probe without a paired score.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from facediag.data.index import (
    DatasetIndex,
    Record,
    file_digest,
    natural_key,
    split_notes,
)
from facediag.errors import DataError


@dataclass(frozen=True)
class Probe:
    subject: str
    hr: Record | None  # its own HR image (None when the data has only the VLR file)
    vlr: Record | None  # a real VLR file; None means "downsample hr to vlr_size"

    @property
    def source(self) -> Record:
        return self.vlr if self.vlr is not None else self.hr


@dataclass
class Protocol:
    gallery: list[Record]
    probes: list[Probe]
    vlr_size: int | None
    description: str
    notes: list[str] = field(default_factory=list)  # what the result means (also in the description)

    @property
    def gallery_subjects(self) -> list[str]:
        return sorted({r.subject for r in self.gallery}, key=natural_key)

    @property
    def probe_subjects(self) -> list[str]:
        return [p.subject for p in self.probes]

    def fingerprint(self) -> str:
        """Content fingerprint of exactly what is evaluated: files, subjects, roles, degradation."""
        h = hashlib.sha256(f"vlr={self.vlr_size}".encode())
        for rec in self.gallery:
            h.update(f"G|{rec.subject}|{file_digest(rec.path)}".encode())
        for p in self.probes:
            h.update(f"P|{p.subject}|{file_digest(p.source.path)}|{p.hr is not None}".encode())
        return h.hexdigest()


def _probes_from(records: list[Record], vlr_size: int | None) -> list[Probe]:
    """Pair each HR record with the VLR record of the same capture (the first VLR folder wins,
    or the one whose size equals ``vlr_size``)."""
    vlr_by_capture: dict[tuple[str, str], Record] = {}
    for rec in records:
        if rec.role == "vlr":
            key = (rec.subject, rec.capture)
            if key not in vlr_by_capture or (vlr_size is not None and rec.vlr_size == vlr_size):
                vlr_by_capture[key] = rec
    probes = []
    hr_captures = set()
    for rec in records:
        if rec.role == "hr":
            hr_captures.add((rec.subject, rec.capture))
            probes.append(Probe(rec.subject, rec, vlr_by_capture.get((rec.subject, rec.capture))))
    # VLR files without an HR twin are still probes (no paired score for them).
    for key, rec in vlr_by_capture.items():
        if key not in hr_captures:
            probes.append(Probe(rec.subject, None, rec))
    return probes


def build_protocol(index: DatasetIndex, *, probe_index: DatasetIndex | None = None,
                   gallery_per_subject: int = 3, vlr_size: int | None = 16) -> Protocol:
    if probe_index is not None:
        gallery = index.hr
        if not gallery:
            raise DataError(f"{index.root}: the gallery root has no HR images")
        probes = _probes_from(probe_index.records, vlr_size)
        desc = f"gallery = all HR images of {index.root}; probes = {probe_index.root}"
        notes = split_notes(index.root, probe_index.root)
    else:
        if gallery_per_subject < 1:
            raise DataError("--gallery-per-subject must be at least 1")
        by_subject: dict[str, list[Record]] = defaultdict(list)
        for rec in index.hr:
            by_subject[rec.subject].append(rec)
        gallery, probe_records = [], []
        for subject in sorted(by_subject, key=natural_key):
            recs = sorted(by_subject[subject], key=lambda r: natural_key(r.path.name))
            gallery += recs[:gallery_per_subject]
            probe_records += recs[gallery_per_subject:]
        probed = {(r.subject, r.capture) for r in probe_records}
        # A VLR file is probed only with its own HR capture among the probes: never one of an
        # enrolled capture, nor one without an HR twin (it may be a copy of an enrolled image).
        probe_records += [r for r in index.vlr if (r.subject, r.capture) in probed]
        probes = _probes_from(probe_records, vlr_size)
        desc = (f"first {gallery_per_subject} HR image(s) per subject enrol, the rest probe"
                f" ({index.root})")
        hr_captures = {(r.subject, r.capture) for r in index.hr}
        unpaired = sum((r.subject, r.capture) not in hr_captures for r in index.vlr)
        note = (f"{unpaired} VLR file(s) without an HR image of the same capture not probed "
                f"(they may be copies of enrolled images)")
        notes = [note] if unpaired else []
    if not gallery:
        raise DataError("the gallery is empty: no HR images to enrol")
    if not probes:
        raise DataError(f"no probes: every subject has at most {gallery_per_subject} HR image(s); "
                        f"lower --gallery-per-subject or give --probe-root")
    res = "HR" if vlr_size is None else f"{vlr_size} px"
    desc = "; ".join([f"{desc}; probes without a VLR file degraded to {res}", *notes])
    return Protocol(gallery, probes, vlr_size, desc, notes)
