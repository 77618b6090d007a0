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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from facediag.data.index import (
    DatasetIndex,
    file_digest,
    natural_key,
    split_notes,
)
from facediag.data.table import ROLES, Record, Records, RecordTable
from facediag.errors import DataError


DISTRACTOR_PREFIX = "distractor:"  # a distractor probe's subject: in no gallery, whatever its name


def is_distractor(subject: str) -> bool:
    """A probe added by --distractors (people in no gallery, as in watch-list benchmarks)."""
    return subject.startswith(DISTRACTOR_PREFIX)


@dataclass(frozen=True)
class Probe:
    subject: str
    hr: Record | None  # its own HR image (None when the data has only the VLR file)
    vlr: Record | None  # a real VLR file; None means "downsample hr to vlr_size"

    @property
    def source(self) -> Record:
        return self.vlr if self.vlr is not None else self.hr


class Probes(Sequence):
    """A list-like view of probes as two row columns of one table (-1 = none): a Probe is made
    per access, so a million probes cost two int64 arrays."""

    def __init__(self, table: RecordTable, hr_rows: np.ndarray, vlr_rows: np.ndarray):
        self.table, self.hr_rows, self.vlr_rows = table, hr_rows, vlr_rows

    def __len__(self) -> int:
        return len(self.hr_rows)

    def _probe(self, hr: int, vlr: int) -> Probe:
        record = self.table.record
        hr_rec, vlr_rec = record(hr) if hr >= 0 else None, record(vlr) if vlr >= 0 else None
        return Probe((hr_rec or vlr_rec).subject, hr_rec, vlr_rec)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Probes(self.table, self.hr_rows[i], self.vlr_rows[i])
        return self._probe(int(self.hr_rows[i]), int(self.vlr_rows[i]))

    def __iter__(self):
        for hr, vlr in zip(self.hr_rows.tolist(), self.vlr_rows.tolist()):
            yield self._probe(hr, vlr)

    @property
    def subject_codes(self) -> np.ndarray:
        return self.table.subject_code[np.where(self.hr_rows >= 0, self.hr_rows, self.vlr_rows)]

    @property
    def n_real_vlr(self) -> int:
        return int(np.count_nonzero(self.vlr_rows >= 0))


@dataclass
class Protocol:
    gallery: Sequence[Record]  # Records (a view of the index) or a list
    probes: Sequence[Probe]  # Probes (a view of the index) or a list
    vlr_size: int | None
    description: str
    notes: list[str] = field(default_factory=list)  # what the result means (also in the description)

    @property
    def gallery_subjects(self) -> list[str]:
        if isinstance(self.gallery, Records):
            t = self.gallery.table
            return sorted((t.subjects[c] for c in np.unique(t.subject_code[self.gallery.rows]).tolist()),
                          key=natural_key)
        return sorted({r.subject for r in self.gallery}, key=natural_key)

    @property
    def probe_subjects(self) -> list[str]:
        if isinstance(self.probes, Probes):
            subjects = self.probes.table.subjects
            return [subjects[c] for c in self.probes.subject_codes.tolist()]
        return [p.subject for p in self.probes]

    def fingerprint(self) -> str:
        """Content fingerprint of exactly what is evaluated: files, subjects, roles, degradation."""
        h = hashlib.sha256(f"vlr={self.vlr_size}".encode())
        for rec in self.gallery:
            h.update(f"G|{rec.subject}|{file_digest(rec.path)}".encode())
        for p in self.probes:
            h.update(f"P|{p.subject}|{file_digest(p.source.path)}|{p.hr is not None}".encode())
        return h.hexdigest()


def _probes_from(table: RecordTable, rows: np.ndarray, vlr_size: int | None) -> Probes:
    """Pair each HR row with the VLR row of the same capture (the first VLR folder wins, or the
    last one whose size equals ``vlr_size``); then the VLR captures without an HR row, in order."""
    is_vlr = table.role_code[rows] == ROLES.index("vlr")
    hr, vlr = rows[~is_vlr], rows[is_vlr]
    vlr_keys = table.capture_keys(vlr)
    keys, first = np.unique(vlr_keys, return_index=True)
    chosen = vlr[first]
    if vlr_size is not None:
        fits = table.vlr_size[vlr] == vlr_size
        fit_keys = vlr_keys[fits][::-1]
        fit_keys, last = np.unique(fit_keys, return_index=True)
        chosen[np.searchsorted(keys, fit_keys)] = vlr[fits][::-1][last]
    hr_keys = table.capture_keys(hr)
    at = np.minimum(np.searchsorted(keys, hr_keys), max(len(keys) - 1, 0))
    paired = (keys[at] == hr_keys) if len(keys) else np.zeros(len(hr), dtype=bool)
    hr_vlr = np.where(paired, chosen[at] if len(keys) else -1, -1)
    # VLR captures with no HR twin are probes too (no paired score), in order of first appearance.
    alone = np.flatnonzero(~np.isin(keys, hr_keys))
    alone = alone[np.argsort(first[alone], kind="stable")]
    none = np.full(len(alone), -1, dtype=np.int64)
    return Probes(table, np.concatenate([hr, none]).astype(np.int64),
                  np.concatenate([hr_vlr, chosen[alone]]).astype(np.int64))


def probes_from_hr(proto: Protocol) -> Protocol:
    """``proto`` with every probe made from its own HR image: real VLR files ignored.

    What a synthetic benchmark would probe with, on data that has real low-resolution files
    (bench accuracy's native-vs-synthetic comparison). A probe with only a VLR file has nothing
    to degrade and is dropped; the gallery and ``vlr_size`` are ``proto``'s.

    Raises
    ------
    DataError
        No probe has an HR image.
    """
    probes = proto.probes
    if isinstance(probes, Probes):
        keep = probes.hr_rows >= 0
        kept = Probes(probes.table, probes.hr_rows[keep], np.full(int(keep.sum()), -1, dtype=np.int64))
    else:
        kept = [Probe(p.subject, p.hr, None) for p in probes if p.hr is not None]
    if not len(kept):
        raise DataError("no probe has an HR image to degrade: probes made from HR images need some")
    note = "real VLR files ignored: every probe degraded from its own HR image (probes with no HR image dropped)"
    return Protocol(proto.gallery, kept, proto.vlr_size, f"{proto.description}; {note}", [*proto.notes, note])


def _natural_order(table: RecordTable, rows: np.ndarray) -> np.ndarray:
    """``rows`` ordered by subject then file name, both in natural order (stable)."""
    by_subject = sorted(range(len(table.subjects)), key=lambda c: natural_key(table.subjects[c]))
    rank = np.empty(len(table.subjects), dtype=np.int64)
    rank[by_subject] = np.arange(len(by_subject))
    subject_rank = rank[table.subject_code[rows]]
    if not table.names_in_natural_order:  # a manifest: sort the names of each subject
        names = table.names
        order = sorted(range(len(rows)), key=lambda j: (subject_rank[j], natural_key(names[rows[j]])))
        return rows[np.asarray(order, dtype=np.int64)]
    return rows[np.argsort(subject_rank, kind="stable")]


def build_protocol(index: DatasetIndex, *, probe_index: DatasetIndex | None = None,
                   distractor_index: DatasetIndex | None = None,
                   gallery_per_subject: int = 3, vlr_size: int | None = 16) -> Protocol:
    """The gallery and probes of ``index`` (and ``probe_index``), plus every HR image of
    ``distractor_index`` as a probe of nobody enrolled (its subject prefixed DISTRACTOR_PREFIX)."""
    proto = _build_protocol(index, probe_index, gallery_per_subject, vlr_size)
    if distractor_index is None:
        return proto
    distractors = [Probe(DISTRACTOR_PREFIX + rec.subject, rec, None) for rec in distractor_index.hr]
    if not distractors:
        raise DataError(f"{distractor_index.root}: the distractor root has no HR images")
    _refuse_enrolled_distractors(proto.gallery, {p.hr.subject for p in distractors}, distractor_index.root)
    note = (f"{len(distractors)} distractor probe(s) of {len(set(p.subject for p in distractors))} people from "
            f"{distractor_index.root}: in no gallery, they measure false positive identification (open set)")
    return Protocol(proto.gallery, [*proto.probes, *distractors], proto.vlr_size,
                    f"{proto.description}; {note}", [*proto.notes, note])


def canonical_subject(subject: str) -> str:
    """'007' ~ '7', 'Bob' ~ 'bob': ids that differ only like this are one person (as subject-overlap reads them)."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), subject.strip().lower())


def _refuse_enrolled_distractors(gallery: Records, distractor_subjects: set[str], root) -> None:
    """A distractor is someone in no gallery: one whose id is an enrolled person's (the gallery folder
    itself, or that person's other photos) would count as a false alarm. Refused, naming them."""
    table = gallery.table
    enrolled = {canonical_subject(table.subjects[c]): table.subjects[c]
                for c in np.unique(table.subject_code[gallery.rows]).tolist()}
    clash = sorted(s for s in distractor_subjects if canonical_subject(s) in enrolled)
    if clash:
        shown = ", ".join(s if enrolled[canonical_subject(s)] == s
                          else f"{s} (enrolled as {enrolled[canonical_subject(s)]})"
                          for s in clash[:3])
        raise DataError(f"{root}: {len(clash)} of {len(distractor_subjects)} distractor subject(s) are enrolled in the "
                        f"gallery (first: {shown}); a distractor must be someone in no gallery, or every one of "
                        "their images counts as a false alarm: give a folder of other people (rename the folders "
                        "if they are other people with the same ids)")


def _build_protocol(index: DatasetIndex, probe_index: DatasetIndex | None, gallery_per_subject: int,
                    vlr_size: int | None) -> Protocol:
    table = index.table
    hr, vlr = table.rows_of_role("hr"), table.rows_of_role("vlr")
    if probe_index is not None:
        gallery = Records(table, hr)
        if not len(gallery):
            raise DataError(f"{index.root}: the gallery root has no HR images")
        probes = _probes_from(probe_index.table, np.arange(len(probe_index.table), dtype=np.int64), vlr_size)
        desc = f"gallery = all HR images of {index.root}; probes = {probe_index.root}"
        notes = split_notes(index.root, probe_index.root)
    else:
        if gallery_per_subject < 1:
            raise DataError("--gallery-per-subject must be at least 1")
        ordered = _natural_order(table, hr)
        subject = table.subject_code[ordered]
        starts = np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]]) if len(ordered) else np.zeros(0, int)
        rank = np.arange(len(ordered)) - np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
        gallery = Records(table, ordered[rank < gallery_per_subject])
        probe_hr = ordered[rank >= gallery_per_subject]
        # A VLR file is probed only with its own HR capture among the probes: never one of an
        # enrolled capture, nor one without an HR twin (it may be a copy of an enrolled image).
        vlr_keys = table.capture_keys(vlr)
        probed_vlr = vlr[np.isin(vlr_keys, table.capture_keys(probe_hr))]
        probes = _probes_from(table, np.concatenate([probe_hr, probed_vlr]), vlr_size)
        desc = (f"first {gallery_per_subject} HR image(s) per subject enrol, the rest probe"
                f" ({index.root})")
        unpaired = int(np.count_nonzero(~np.isin(vlr_keys, table.capture_keys(hr))))
        note = (f"{unpaired} VLR file(s) without an HR image of the same capture not probed "
                f"(they may be copies of enrolled images)")
        notes = [note] if unpaired else []
    if not len(gallery):
        raise DataError("the gallery is empty: no HR images to enrol")
    if not len(probes):
        raise DataError(f"no probes: every subject has at most {gallery_per_subject} HR image(s); "
                        f"lower --gallery-per-subject or give --probe-root")
    res = "HR" if vlr_size is None else f"{vlr_size} px"
    desc = "; ".join([f"{desc}; probes without a VLR file degraded to {res}", *notes])
    return Protocol(gallery, probes, vlr_size, desc, notes)
