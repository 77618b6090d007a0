"""The dataset index as a compact columnar table: a million files cost a few numpy arrays and
two byte blobs, not a million Record and Path objects. A :class:`Record` is made only when a
caller asks for one row; code that walks millions of rows reads the columns instead.

Repeated values (folders, subjects, capture keys) are interned to integer codes, so pairing an
HR file with the VLR file of the same capture is an integer join, exact, with no hashing guess.
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROLES = ("hr", "vlr")  # role codes are positions in this tuple


@dataclass(frozen=True)
class Record:
    """One image file. ``capture`` pairs the HR and VLR files of the same shot."""

    path: Path
    subject: str
    role: str = "hr"  # "hr" | "vlr"
    capture: str = ""
    vlr_size: int | None = None  # from the folder name (vlr_images_16x16), when it says
    # Five (x, y) landmarks in the file's pixels, when the data gives them (a manifest's
    # lm0x,lm0y..lm4x,lm4y columns: left eye, right eye, nose, left and right mouth corner).
    landmarks: tuple[float, ...] | None = None


class Strings(Sequence):
    """Many strings as one UTF-8 blob and their end offsets. File names that are not valid
    UTF-8 survive the round trip (surrogateescape), as os.fsdecode gave them to us."""

    def __init__(self, blob: bytes, ends: np.ndarray):
        self._blob, self._ends = blob, ends

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str:
        start = int(self._ends[i - 1]) if i > 0 else 0
        return self._blob[start:int(self._ends[i])].decode("utf-8", "surrogateescape")

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._ends.nbytes

    def take(self, rows: np.ndarray) -> Strings:
        """The strings at ``rows`` (in that order), as a new blob; vectorised, no per-row str."""
        ends = self._ends.astype(np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        lengths = (ends - starts)[rows]
        new_ends = np.cumsum(lengths)
        # Byte positions of every kept string, laid end to end.
        pos = np.repeat(starts[rows] - (new_ends - lengths), lengths) + np.arange(int(new_ends[-1]) if len(rows) else 0)
        blob = np.frombuffer(self._blob, dtype=np.uint8)[pos].tobytes()
        return Strings(blob, new_ends)


class _StringsBuilder:
    def __init__(self):
        self._buf, self._ends = bytearray(), array("q")

    def append(self, text: str) -> None:
        self._buf += text.encode("utf-8", "surrogateescape")
        self._ends.append(len(self._buf))

    def extend(self, texts: list[str]) -> None:
        """Many strings at once: one encode of the whole run when it is ASCII (the usual case)."""
        blob = "".join(texts).encode("utf-8", "surrogateescape")
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        if len(blob) != int(lengths.sum()):  # some multi-byte character: the byte length of each
            lengths = np.fromiter((len(t.encode("utf-8", "surrogateescape")) for t in texts), np.int64, len(texts))
        self._ends.frombytes((np.cumsum(lengths) + len(self._buf)).tobytes())
        self._buf += blob

    def build(self) -> Strings:
        return Strings(bytes(self._buf), np.frombuffer(self._ends, dtype=np.int64).copy())


class _Interner:
    """str -> small integer code, in order of first appearance."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def __call__(self, text: str) -> int:
        code = self.codes.get(text)
        if code is None:
            code = self.codes[text] = len(self.values)
            self.values.append(text)
        return code

    def many(self, texts: list[str]) -> list[int]:
        """The codes of many strings, in C loops (dict.fromkeys, map) rather than a call per string."""
        codes = self.codes
        fresh = [t for t in dict.fromkeys(texts) if t not in codes]
        codes.update(zip(fresh, range(len(self.values), len(self.values) + len(fresh))))
        self.values.extend(fresh)
        return list(map(codes.__getitem__, texts))


class RecordTable:
    """Columns, one row per image file: folder code + file name (the path), subject code, role
    code, capture code, VLR size (0 = not stated), and given landmarks ([N, 10] float32, NaN rows
    without; None when no row has any)."""

    def __init__(self, dirs: list[str], dir_code: np.ndarray, names: Strings, subjects: list[str],
                 subject_code: np.ndarray, role_code: np.ndarray, captures: Strings, capture_code: np.ndarray,
                 vlr_size: np.ndarray, names_in_natural_order: bool = False, landmarks: np.ndarray | None = None):
        self.landmarks = landmarks
        self.dirs, self.dir_code, self.names = dirs, dir_code, names
        # True when the rows of each subject are already in natural file-name order (a folder
        # listing sorted once): the protocol then need not sort a million names again.
        self.names_in_natural_order = names_in_natural_order
        self.subjects, self.subject_code = subjects, subject_code
        self.role_code, self.captures, self.capture_code, self.vlr_size = role_code, captures, capture_code, vlr_size

    def __len__(self) -> int:
        return len(self.dir_code)

    def path(self, i: int) -> str:
        return os.path.join(self.dirs[self.dir_code[i]], self.names[i])

    def name(self, i: int) -> str:
        return self.names[i]

    def subject(self, i: int) -> str:
        return self.subjects[self.subject_code[i]]

    def capture(self, i: int) -> str:
        return self.captures[self.capture_code[i]]

    def record(self, i: int) -> Record:
        size = int(self.vlr_size[i])
        lm = None
        if self.landmarks is not None and not np.isnan(self.landmarks[i, 0]):
            lm = tuple(float(v) for v in self.landmarks[i])
        return Record(Path(self.path(i)), self.subject(i), ROLES[self.role_code[i]], self.capture(i), size or None, lm)

    def rows_of_role(self, role: str) -> np.ndarray:
        return np.flatnonzero(self.role_code == ROLES.index(role))

    def capture_keys(self, rows: np.ndarray) -> np.ndarray:
        """One int64 per row, equal exactly when (subject, capture) are equal."""
        return self.subject_code[rows].astype(np.int64) * max(len(self.captures), 1) + self.capture_code[rows]

    def take(self, rows: np.ndarray) -> RecordTable:
        """The rows at ``rows``, in that order (the interned values are shared, not copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        return RecordTable(self.dirs, self.dir_code[rows], self.names.take(rows), self.subjects,
                           self.subject_code[rows], self.role_code[rows], self.captures, self.capture_code[rows],
                           self.vlr_size[rows], landmarks=None if self.landmarks is None else self.landmarks[rows])

    @property
    def nbytes(self) -> int:
        arrays = (self.dir_code, self.subject_code, self.role_code, self.capture_code, self.vlr_size)
        return sum(a.nbytes for a in arrays) + self.names.nbytes + self.captures.nbytes

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> RecordTable:
        builder = TableBuilder()
        for rec in records:
            path = Path(rec.path)
            builder.add(str(path.parent), path.name, rec.subject, rec.role, rec.capture, rec.vlr_size,
                        getattr(rec, "landmarks", None))
        return builder.build()


class TableBuilder:
    """Appends rows one at a time into growing arrays: what an indexer streams into."""

    def __init__(self):
        self._dirs, self._subjects, self._captures = _Interner(), _Interner(), _Interner()
        self._names = _StringsBuilder()
        self._dir, self._subject, self._capture = array("i"), array("i"), array("i")
        self._role, self._size = array("b"), array("i")
        self._landmarks: dict[int, tuple[float, ...]] = {}  # row -> 10 floats (rare: manifests that give them)

    def __len__(self) -> int:
        return len(self._dir)

    def subject_of(self, row: int) -> str:
        return self._subjects.values[self._subject[row]]

    def add(self, directory: str, name: str, subject: str, role: str, capture: str, vlr_size: int | None,
            landmarks: tuple[float, ...] | None = None) -> None:
        if landmarks is not None:
            self._landmarks[len(self._dir)] = landmarks
        self._dir.append(self._dirs(directory))
        self._names.append(name)
        self._subject.append(self._subjects(subject))
        self._role.append(ROLES.index(role))
        self._capture.append(self._captures(capture))
        self._size.append(vlr_size or 0)

    def extend(self, directories: list[str], names: list[str], subjects: list[str], roles: list[int],
               captures: list[str], landmarks: dict[int, tuple[float, ...]] | None = None) -> None:
        """Many rows at once, as columns (``roles`` as codes; ``landmarks``: position in this batch ->
        10 floats): what a bulk reader (a manifest) appends, without a Python call per row."""
        start = len(self._dir)
        self._dir.extend(self._dirs.many(directories))
        self._names.extend(names)
        self._subject.extend(self._subjects.many(subjects))
        self._role.extend(roles)
        self._capture.extend(self._captures.many(captures))
        self._size.frombytes(bytes(self._size.itemsize * len(names)))  # no VLR size in a bulk read
        for row, values in (landmarks or {}).items():
            self._landmarks[start + row] = values

    def build(self, names_in_natural_order: bool = False) -> RecordTable:
        captures = _StringsBuilder()
        for text in self._captures.values:
            captures.append(text)
        col = {k: np.frombuffer(getattr(self, k), dtype=t).copy()
               for k, t in (("_dir", np.int32), ("_subject", np.int32), ("_role", np.int8),
                            ("_capture", np.int32), ("_size", np.int32))}
        landmarks = None
        if self._landmarks:
            landmarks = np.full((len(self), 10), np.nan, dtype=np.float32)
            for row, values in self._landmarks.items():
                landmarks[row] = values
        return RecordTable(self._dirs.values, col["_dir"], self._names.build(), self._subjects.values,
                            col["_subject"], col["_role"], captures.build(), col["_capture"], col["_size"],
                            names_in_natural_order, landmarks)


class Records(Sequence):
    """A list-like view of some rows of a table: Records are made one at a time, on access."""

    def __init__(self, table: RecordTable, rows: np.ndarray | None = None):
        self.table = table
        self.rows = np.arange(len(table), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Records(self.table, self.rows[i])
        return self.table.record(int(self.rows[i]))

    def __iter__(self):
        record = self.table.record
        for i in self.rows.tolist():
            yield record(i)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __repr__(self) -> str:
        head = ", ".join(repr(r) for r in self[:3])
        return f"Records({len(self)} rows: [{head}{', ...' if len(self) > 3 else ''}])"
