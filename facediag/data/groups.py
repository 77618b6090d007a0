"""Demographic groups: who belongs to which group, read from ``--groups FILE``.

The file is a UTF-8 CSV with a header: a ``subject`` column, optionally an ``image`` (or
``path``) column, and one column per attribute (``sex``, ``age_band``, ``skin_tone``, ...)::

    subject,sex,age_band
    s1,F,18-30
    s2,M,31-50

A row without an image gives the subject's groups; a row with one gives that image's (an age
band that differs between photos), over the subject's. The data's own manifest can serve as the
file when it carries attribute columns: its ``path`` column is the image, and its ``role``,
``capture`` and landmark columns are not attributes. An empty cell means "not known": the
subject (or image) is in no group of that attribute.

A malformed file is one DataError naming the file and the line. Matching the file to the data
(:func:`assign`) says which of the file's subjects the data does not hold, and which of the
data's subjects the file does not name; a file that names none of them is refused.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facediag.data.protocol import DISTRACTOR_PREFIX, Protocol
from facediag.errors import DataError

IMAGE_COLUMNS = ("image", "path")
# A manifest's own columns (data.index): not attributes when the manifest serves as the groups file.
NOT_ATTRIBUTES = frozenset({"role", "capture", *(f"lm{i}{a}" for i in range(5) for a in "xy")})
MAX_GROUPS = 64     # values one attribute may take: more is an id column, not a demographic attribute
LISTED = 5          # names a note lists before "and N more"


@dataclass(frozen=True)
class Groups:
    """The groups file as read: each subject's and each image's value per attribute ("" unknown)."""

    path: str
    attributes: tuple[str, ...]
    subjects: dict[str, tuple[str, ...]]            # subject -> value per attribute
    images: dict[str, tuple[str, tuple[str, ...]]]  # image as written -> (subject, value per attribute)
    sha256: str

    def values(self, attribute: str) -> list[str]:
        """The groups of an attribute (its distinct non-empty values), sorted."""
        a = self.attributes.index(attribute)
        found = {v[a] for v in self.subjects.values()} | {v[a] for _, v in self.images.values()}
        return sorted(found - {""})


@dataclass(frozen=True)
class GroupAssignment:
    """The groups matched to one protocol: per attribute, each probe's group and each enrolled
    subject's ("" where not known, or where the subject's gallery images disagree)."""

    attributes: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]             # per attribute: its groups, sorted
    probe_values: tuple[np.ndarray, ...]            # per attribute: str [n_protocol_probes]
    subject_values: tuple[dict[str, str], ...]      # per attribute: enrolled subject -> group
    notes: tuple[str, ...]                          # what matching the file to the data found


def read_groups(path: str | Path) -> Groups:
    """Read and check a groups CSV (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    Groups

    Raises
    ------
    DataError
        One line naming the file (and the line, where one is at fault): not a readable UTF-8 file,
        not valid CSV, no subject column, no attribute column, a row with the wrong number of
        fields, an empty subject, a subject or image given two different values, an attribute
        with more than MAX_GROUPS values.
    """
    path = Path(path)
    data = _read_bytes(path)
    text = _decode(path, data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        columns = _Columns.of(path, header)
        table = _Table(path, columns)
        for fields in reader:
            table.add(fields, reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not table.subjects and not table.images:
        raise DataError(f"{path}: no rows under the header")
    groups = Groups(str(path), columns.attributes, table.subjects,
                    {k: (s, v) for k, (s, v, _) in table.images.items()}, hashlib.sha256(data).hexdigest())
    for attribute in groups.attributes:
        n = len(groups.values(attribute))
        if n > MAX_GROUPS:
            raise DataError(f"{path}: attribute {attribute!r} takes {n} values; at most {MAX_GROUPS} groups per "
                            "attribute (is it an id column?)")
    return groups


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: no such groups file")
    if not path.is_file():
        raise DataError(f"{path}: the groups file must be a CSV file, not a folder")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the groups file: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 with or without a byte-order mark; anything else is refused (read as Latin-1 it would
    turn names into other names, and match nobody)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); save the groups "
                        "file as UTF-8") from None
    if "\x00" in text:
        raise DataError(f"{path}: line {text[:text.index(chr(0))].count(chr(10)) + 1} holds a NUL byte: not a "
                        "text CSV")
    if not text.strip():
        raise DataError(f"{path}: the groups file is empty (it needs a header: subject[,image],attribute...)")
    return text


@dataclass(frozen=True)
class _Columns:
    """Where the subject, the image and each attribute sit in a row."""

    n: int
    subject: int
    image: int | None
    attributes: tuple[str, ...]
    attribute_at: tuple[int, ...]

    @classmethod
    def of(cls, path: Path, header: list[str] | None) -> _Columns:
        names = [c.strip() for c in header or []]
        lower = [c.lower() for c in names]
        if "subject" not in lower:
            raise DataError(f"{path}: line 1: the header has no subject column (found "
                            f"{', '.join(c for c in names if c) or 'none'}); it needs subject[,image],attribute...")
        for i, name in enumerate(names):
            if not name:
                raise DataError(f"{path}: line 1: column {i + 1} has no name")
            if lower.index(name.lower()) != i:
                raise DataError(f"{path}: line 1: column {name!r} appears twice")
        images = [i for i, c in enumerate(lower) if c in IMAGE_COLUMNS]
        if len(images) > 1:
            raise DataError(f"{path}: line 1: both an image and a path column; give one")
        special = {"subject", *IMAGE_COLUMNS, *NOT_ATTRIBUTES}
        at = tuple(i for i, c in enumerate(lower) if c not in special)
        if not at:
            raise DataError(f"{path}: line 1: no attribute column (the header names only "
                            f"{', '.join(names)}); add one column per attribute, e.g. subject,sex,age_band")
        return cls(len(names), lower.index("subject"), images[0] if images else None,
                   tuple(names[i] for i in at), at)


class _Table:
    """The rows read so far; a subject or an image given two different values is refused."""

    def __init__(self, path: Path, columns: _Columns):
        self.path, self.columns = path, columns
        self.subjects: dict[str, tuple[str, ...]] = {}
        self.subject_line: dict[str, int] = {}
        self.images: dict[str, tuple[str, tuple[str, ...], int]] = {}

    def add(self, fields: list[str], line: int) -> None:
        c = self.columns
        if len(fields) != c.n:
            if not any(f.strip() for f in fields):
                return  # a blank line
            raise DataError(f"{self.path}: line {line} has {len(fields)} field(s), the header has {c.n}")
        subject = fields[c.subject].strip()
        if not subject:
            raise DataError(f"{self.path}: line {line}: empty subject")
        values = tuple(fields[i].strip() for i in c.attribute_at)
        image = fields[c.image].strip() if c.image is not None else ""
        if image:
            self._image(image, subject, values, line)
        else:
            self._subject(subject, values, line)

    def _subject(self, subject: str, values: tuple[str, ...], line: int) -> None:
        before = self.subjects.get(subject)
        if before is not None and before != values:
            a = next(i for i, (x, y) in enumerate(zip(before, values)) if x != y)
            raise DataError(f"{self.path}: line {line}: subject {subject!r} is {self.columns.attributes[a]}="
                            f"{values[a]!r} here and {before[a]!r} on line {self.subject_line[subject]}")
        self.subjects[subject] = values
        self.subject_line.setdefault(subject, line)

    def _image(self, image: str, subject: str, values: tuple[str, ...], line: int) -> None:
        before = self.images.get(image)
        if before is not None and before[:2] != (subject, values):
            raise DataError(f"{self.path}: line {line}: image {image!r} is given other groups (or another subject) "
                            f"on line {before[2]}")
        self.images.setdefault(image, (subject, values, line))


# ------------------------------------------------------------------------ matching to the data
def assign(groups: Groups, protocol: Protocol, roots: Sequence[str | Path | None] = ()) -> GroupAssignment:
    """Each probe's and each enrolled subject's group per attribute.

    Parameters
    ----------
    groups : Groups
        The file as read.
    protocol : Protocol
        The gallery and probes of the run.
    roots : sequence of path
        The data roots: an image of the file written relative to one of them (or to the file's own
        folder, as a manifest writes it) matches the data's file.

    Returns
    -------
    GroupAssignment

    Raises
    ------
    DataError
        When the file names none of the data's subjects (another naming, or another data set).
    """
    probe_subjects = [subject_name(s) for s in protocol.probe_subjects]
    gallery_subjects = [subject_name(r.subject) for r in protocol.gallery]
    data_subjects = set(probe_subjects) | set(gallery_subjects)
    image_subjects = {s for s, _ in groups.images.values()}
    named = set(groups.subjects) | image_subjects
    known = data_subjects & named
    if data_subjects and not known:
        raise DataError(f"{groups.path}: names none of the data's {len(data_subjects)} subjects (the file's look like "
                        f"{_some(sorted(named))}; the data's like {_some(sorted(data_subjects))})")
    by_image = _image_keys(groups, roots) if groups.images else {}
    n_attr = len(groups.attributes)
    empty = ("",) * n_attr
    probe_values = [groups.subjects.get(s, empty) for s in probe_subjects]
    gallery_values = [groups.subjects.get(s, empty) for s in gallery_subjects]
    matched_images = 0
    if by_image:
        for i, p in enumerate(protocol.probes):
            hit = _lookup(by_image, [r for r in (p.hr, p.vlr) if r is not None])
            if hit is not None:
                probe_values[i] = _over(hit, probe_values[i])
                matched_images += 1
        for i, r in enumerate(protocol.gallery):
            hit = _lookup(by_image, [r])
            if hit is not None:
                gallery_values[i] = _over(hit, gallery_values[i])
                matched_images += 1
    subject_values, mixed = _enrolled(gallery_subjects, gallery_values, n_attr)
    notes = _notes(groups, named - data_subjects, data_subjects - named, mixed, matched_images)
    return GroupAssignment(
        groups.attributes, tuple(tuple(groups.values(a)) for a in groups.attributes),
        tuple(np.array([v[a] for v in probe_values], dtype=object) for a in range(n_attr)),
        tuple(subject_values), tuple(notes))


def subject_name(subject: str) -> str:
    """A distractor's name as the groups file writes it (without the protocol's prefix)."""
    return subject[len(DISTRACTOR_PREFIX):] if subject.startswith(DISTRACTOR_PREFIX) else subject


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (", ..." if len(names) > 3 else "") if names else "none"


def _key(path: str | Path) -> str:
    return os.path.normcase(os.path.normpath(os.path.abspath(path)))


def _image_keys(groups: Groups, roots) -> dict[str, tuple[str, ...]]:
    """Every absolute path an image of the file may mean -> its values: as written (absolute), or
    relative to the file's folder or to a data root."""
    bases = [Path(groups.path).parent, *(Path(r) for r in roots if r)]
    bases = [b if b.is_dir() else b.parent for b in bases]  # a manifest root: its folder
    out: dict[str, tuple[str, ...]] = {}
    for image, (_, values) in groups.images.items():
        if os.path.isabs(image):
            out.setdefault(_key(image), values)
            continue
        for base in bases:
            out.setdefault(_key(base / image), values)
    return out


def _lookup(by_image: dict, records) -> tuple[str, ...] | None:
    for r in records:
        hit = by_image.get(_key(r.path))
        if hit is not None:
            return hit
    return None


def _over(image_values: tuple[str, ...], subject_values: tuple[str, ...]) -> tuple[str, ...]:
    """An image's values where it gives one, its subject's elsewhere."""
    return tuple(i or s for i, s in zip(image_values, subject_values))


def _enrolled(subjects: list[str], values: list[tuple[str, ...]], n_attr: int):
    """Each enrolled subject's group per attribute: the one its gallery images share ("" when they
    disagree: its template mixes groups); and the subjects whose images disagree, per attribute."""
    out: list[dict[str, str]] = [{} for _ in range(n_attr)]
    mixed: list[set[str]] = [set() for _ in range(n_attr)]
    for subject, v in zip(subjects, values):
        for a in range(n_attr):
            before = out[a].get(subject)
            if before is None:
                out[a][subject] = v[a]
            elif before != v[a]:
                out[a][subject] = ""
                mixed[a].add(subject)
    return out, mixed


def _notes(groups: Groups, not_in_data: set[str], not_in_file: set[str], mixed, matched_images: int) -> list[str]:
    notes = []
    if not_in_data:
        notes.append(f"{len(not_in_data)} subject(s) of {Path(groups.path).name} are not in the data: "
                     f"{_listed(not_in_data)}")
    if not_in_file:
        notes.append(f"{len(not_in_file)} subject(s) of the data are not in {Path(groups.path).name} (in no "
                     f"group): {_listed(not_in_file)}")
    if groups.images:
        notes.append(f"{matched_images} of the data's images matched one of the file's {len(groups.images)} image "
                     "rows (their groups over their subject's)")
    for attribute, subjects in zip(groups.attributes, mixed):
        if subjects:
            notes.append(f"{attribute}: {len(subjects)} enrolled subject(s) whose gallery images are in different "
                         f"groups: their templates are in no {attribute} group ({_listed(subjects)})")
    return notes


def _listed(names: set[str]) -> str:
    ordered = sorted(names)
    more = len(ordered) - LISTED
    return ", ".join(ordered[:LISTED]) + (f" and {more} more" if more > 0 else "")
