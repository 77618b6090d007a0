"""Find face images and who they belong to, in the three layouts seen in the wild.

1. ``paired``:  ``root/hr_images/*`` + ``root/vlr_images[_NxN]/*`` with identical filenames;
   the subject id comes from the filename by a regex (default: up to the first ``_``). A VLR
   file without an HR file of the same name is skipped (it may be a copy of any HR image, an
   enrolled one included) and an HR file without a VLR twin is kept; both are reported.
2. ``folders``: ``root/<subject>/*`` (LFW, ORL): any image PIL reads, PGM included.
3. ``manifest``: a UTF-8 CSV with columns ``path,subject[,role][,capture]``; paths are relative
   to the CSV and may not leave its folder unless ``allow_outside_root``; one file, one subject.

One root may also hold split folders (``train/`` + ``val/``, ``gallery/`` + ``probe/``, ...), each
a dataset in any layout: :func:`find_split_roots` finds them, the first enrols, the second probes.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
import re
import stat
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facediag.data.table import ROLES, Record, Records, RecordTable, TableBuilder
from facediag.errors import DataError
from facediag.progress import progress_bar

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
LAYOUTS = ("auto", "paired", "folders", "manifest")
DEFAULT_SUBJECT_REGEX = r"^([^_]+)_"
_VLR_DIR = re.compile(r"^vlr_images(?:_(\d+)x(\d+))?$")
# Split folder names under one root: (enrols, probes), the first pair found wins.
_BAR_FROM_FOLDERS, _BAR_FROM_ROWS, _BAR_STEP = 2_000, 50_000, 4_096  # a bar only where indexing takes a while
SPLIT_PAIRS = (("train", "val"), ("train", "validation"), ("train", "test"), ("gallery", "probe"),
               ("gallery", "probes"))


class DatasetIndex:
    """The image files of one root and who they belong to, held as a compact :class:`RecordTable`
    (``table``); ``records``, ``hr`` and ``vlr`` are list-like views that make a Record per access.
    ``records`` may also be given as Records (tests, subsets), which are packed into a table."""

    def __init__(self, root: Path, layout: str, records: RecordTable | Iterable[Record],
                 problems: list[tuple[str, str]] | None = None):
        self.root, self.layout = root, layout
        self.table = records if isinstance(records, RecordTable) else RecordTable.from_records(records)
        self.problems = list(problems or [])  # (path, why) skipped at indexing

    @property
    def records(self) -> Records:
        return Records(self.table)

    @property
    def hr(self) -> Records:
        return Records(self.table, self.table.rows_of_role("hr"))

    @property
    def vlr(self) -> Records:
        return Records(self.table, self.table.rows_of_role("vlr"))

    @property
    def subjects(self) -> list[str]:
        present = np.unique(self.table.subject_code)
        return sorted((self.table.subjects[c] for c in present.tolist()), key=natural_key)

    def counts(self) -> dict[str, int]:
        n_vlr = int(np.count_nonzero(self.table.role_code == ROLES.index("vlr")))
        return {"images": len(self.table), "hr": len(self.table) - n_vlr, "vlr": n_vlr,
                "subjects": len(self.subjects), "problems": len(self.problems)}

    def __repr__(self) -> str:
        return (f"DatasetIndex({str(self.root)!r}, {self.layout!r}, {len(self.table)} records, "
                f"{len(self.problems)} problems)")


def natural_key(text: str):
    """'s2' < 's10', '2.pgm' < '10.pgm': the order a person expects, and deterministic."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", str(text))]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _stem(name: str) -> str:
    """Path(name).stem without making a Path."""
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _image_names(folder: str) -> list[str]:
    """Names of the image files in a folder, natural order: one listing, no stat for a plain file."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries
                 if not e.name.startswith(".") and e.name[len(_stem(e.name)):].lower() in IMAGE_SUFFIXES
                 and e.is_file()]
    return sorted(names, key=natural_key)


def detect_layout(root: Path) -> str:
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "manifest"
        raise DataError(f"{root}: a data root must be a folder or a .csv manifest")
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    if (root / "hr_images").is_dir():
        return "paired"
    if any(_is_image(p) for sub in root.iterdir() if sub.is_dir() for p in sub.iterdir()):
        return "folders"
    split = find_split_roots(root)
    if split is not None:
        raise DataError(f"{root}: holds split folders {split.gallery.name}/ and {split.probe.name}/, not one "
                        f"dataset: give one of them, or --gallery-root and --probe-root")
    raise DataError(
        f"{root}: no face images found (expected hr_images/ + vlr_images*/, one folder per subject, "
        f"or a .csv manifest)")


def index_dataset(root: str | Path, layout: str = "auto", subject_regex: str = DEFAULT_SUBJECT_REGEX, *,
                  allow_outside_root: bool = False, progress: bool = True) -> DatasetIndex:
    """Index one dataset root. ``allow_outside_root``: a manifest may name files outside its folder;
    ``progress``: a bar on a terminal when the folder or manifest is large."""
    root = Path(root).expanduser().resolve()
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if layout == "manifest":
        index = _index_manifest(root, allow_outside_root, progress)
    else:
        index = {"paired": _index_paired, "folders": _index_folders}[layout](root, subject_regex, progress)
    if not len(index.table):
        raise DataError(f"{root}: the {layout} layout found no images")
    return index


def _subject_from_name(name: str, pattern: re.Pattern) -> str | None:
    m = pattern.search(name)
    if not m:
        return None
    return m.group(1) if m.groups() else m.group(0)


def _index_paired(root: Path, subject_regex: str, progress: bool = True) -> DatasetIndex:
    try:
        pattern = re.compile(subject_regex)
    except re.error as exc:
        raise DataError(f"--subject-regex {subject_regex!r} is not a valid regex: {exc}") from None
    problems: list[tuple[str, str]] = []

    def read(folder: str) -> list[tuple[str, str]]:
        """(file name, subject) of every image in a folder, natural order."""
        out = []
        for name in _image_names(folder):
            subject = _subject_from_name(name, pattern)
            if subject is None:
                why = f"subject regex {subject_regex!r} does not match the filename"
                problems.append((os.path.join(folder, name), why))
                continue
            out.append((name, subject))
        return out

    if not (root / "hr_images").is_dir():
        raise DataError(f"{root}: the paired layout needs an hr_images/ folder")
    vlr_dirs = _vlr_dirs(root)
    hr_dir = str(root / "hr_images")
    with progress_bar("indexing", 1 + len(vlr_dirs), progress) as advance:  # one step per folder listed
        hr = read(hr_dir)
        advance()
        vlr_folders = []
        for folder, path, size in vlr_dirs:
            names = read(path)
            advance()
            if names:
                vlr_folders.append((folder, path, size, names))
    table = TableBuilder()
    for name, subject in hr:
        table.add(hr_dir, name, subject, "hr", _stem(name), None)
    if hr:
        _add_twins(table, problems, hr_dir, hr, vlr_folders)
    else:  # VLR files only (e.g. a probe root): nothing to pair them with, nothing to report
        for _, path, size, names in vlr_folders:
            for name, subject in names:
                table.add(path, name, subject, "vlr", _stem(name), size)
    return DatasetIndex(root, "paired", table.build(names_in_natural_order=True), problems)


def _vlr_dirs(root: Path) -> list[tuple[str, str, int | None]]:
    """(name, path, size or None) of each vlr_images[_NxN] folder of a paired root, natural order."""
    with os.scandir(root) as entries:
        return [(e.name, e.path, int(m.group(1)) if m.group(1) else None)
                for e in sorted(entries, key=lambda e: natural_key(e.name))
                if (m := _VLR_DIR.match(e.name)) and e.is_dir()]


def _add_twins(table: TableBuilder, problems: list, hr_dir: str, hr: list[tuple[str, str]],
               vlr_folders: list) -> None:
    """The VLR files with an HR twin of the same name into the table; the files of either side
    without a twin reported (a VLR one not used, an HR one kept and probed from its HR image)."""
    hr_names = {name for name, _ in hr}
    lookalike = None  # built on the first name without a twin
    missing: dict[str, list[str]] = {}  # HR name -> VLR folders without it
    for folder, path, size, names in vlr_folders:
        for name in sorted(hr_names - {n for n, _ in names}, key=natural_key):
            missing.setdefault(name, []).append(folder)
        for name, subject in names:
            if name in hr_names:
                table.add(path, name, subject, "vlr", _stem(name), size)
                continue
            lookalike = lookalike or _Lookalikes(hr_names)
            twin = lookalike.find(name)
            hint = f"; hr_images/{twin} looks like its twin" if twin else ""
            why = (f"VLR file without an HR twin (no hr_images/{name}{hint}; "
                   f"paired files need identical names): not used")
            problems.append((os.path.join(path, name), why))
    for name, _ in hr:
        if name in missing:
            folders = ", ".join(f"{f}/" for f in missing[name])
            why = (f"HR file without a VLR twin in {folders} (paired files need identical names): "
                   f"kept, probed from its HR image")
            problems.append((os.path.join(hr_dir, name), why))


class _Lookalikes:
    """Finds the HR filename a mismatched VLR filename most likely meant: the same stem with
    another extension or case (p1_1.jpg for p1_1.png), or one with a suffix token more or less
    (p1_1.png for p1_1_lr.png, p1_1_hr.png for p1_1.png)."""

    def __init__(self, names: set[str]):
        self.by_key: dict[str, str] = {}
        self.by_prefix: dict[str, str] = {}
        for name in sorted(names, key=natural_key):
            stem = Path(name).stem.lower()
            self.by_key.setdefault(stem, name)
            for prefix in _token_prefixes(stem):
                self.by_prefix.setdefault(prefix, name)

    def find(self, name: str) -> str | None:
        stem = Path(name).stem.lower()
        if stem in self.by_key:
            return self.by_key[stem]
        for prefix in _token_prefixes(stem):
            if prefix in self.by_key:
                return self.by_key[prefix]
        return self.by_prefix.get(stem)


def _token_prefixes(stem: str) -> list[str]:
    """'p1_1_lr' -> ['p1_1', 'p1']: the stem with trailing _/-/. tokens removed, longest first."""
    cuts = [m.start() for m in re.finditer(r"[_.\-]", stem) if m.start() > 0]
    return [stem[:c] for c in reversed(cuts)]


def _index_folders(root: Path, subject_regex: str, progress: bool = True) -> DatasetIndex:
    table = TableBuilder()
    with os.scandir(root) as entries:
        subs = sorted((e for e in entries if not e.name.startswith(".") and e.is_dir()),
                      key=lambda e: natural_key(e.name))
    # One directory listing per subject streamed into the table; the bar counts folders.
    with progress_bar("indexing", len(subs), progress and len(subs) >= _BAR_FROM_FOLDERS) as advance:
        for sub in subs:
            for name in _image_names(sub.path):
                table.add(sub.path, name, sub.name, "hr", f"{sub.name}/{_stem(name)}", None)
            advance()
    return DatasetIndex(root, "folders", table.build(names_in_natural_order=True), [])


def _read_manifest_text(root: Path) -> str:
    """The manifest as text: UTF-8, with or without a byte-order mark; anything else is refused
    (decoding it as Latin-1 would silently turn names into other names)."""
    if not root.is_file():
        raise DataError(f"{root}: a manifest must be a .csv file")
    try:
        data = root.read_bytes()
    except OSError as exc:
        raise DataError(f"{root}: cannot read the manifest: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{root}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); "
                        f"save the manifest as UTF-8") from None
    if "\x00" in text:
        raise DataError(f"{root}: line {text[:text.index(chr(0))].count(chr(10)) + 1} holds a NUL byte: "
                        f"not a text CSV")
    return text


def _outside(raw: str) -> bool:
    """Does a manifest path leave the manifest's folder (absolute, or ../ above it)?"""
    if os.path.isabs(raw):  # Path(raw).is_absolute() implies it
        return True
    if ".." not in raw:  # the common case, without normpath
        return False
    norm = os.path.normpath(raw)
    return norm == os.pardir or norm.startswith(os.pardir + os.sep)


LANDMARK_COLUMNS = tuple(f"lm{i}{axis}" for i in range(5) for axis in "xy")


def _landmarks(values: list[str], line: int, path: str, problems: list) -> tuple[float, ...] | None:
    """A manifest row's five landmarks (the lm0x..lm4y fields, in order), or None (blank: detect
    instead; a value that is not a finite number is reported and the row is detected instead)."""
    raw = [v.strip() for v in values]
    if not any(raw):
        return None
    try:
        parsed = tuple(float(v) for v in raw)
    except ValueError:
        parsed = ()
    if len(parsed) != 10 or not all(math.isfinite(v) for v in parsed):
        problems.append((path, f"line {line}: landmarks lm0x..lm4y are not ten finite numbers; "
                               f"the face will be detected instead"))
        return None
    return parsed


class _Resolver:
    """``(base / raw).resolve()`` and ``is_file()`` for a million rows: each folder is resolved
    and listed once (a listing costs far less than a stat per file), a symlinked file is
    resolved in full, and a name the listing lacks is looked up (case-insensitive
    file systems)."""

    _KEEP = 1024  # folder listings kept: manifests list a folder's files together

    def __init__(self, base: Path):
        self.base, self.dirs = str(base), {}  # raw folder as written -> resolved folder
        # The folder of the previous row: the manifest path up to its last "/" (prefix), the folder
        # it resolved to (real) and that folder's listing (names), for the caller's fast path.
        self._head, self.prefix, self.real, self.names = None, "", "", {}
        self.listings: OrderedDict[str, dict[str, int] | None] = OrderedDict()

    def _listing(self, folder: str) -> dict[str, int] | None:
        """name -> 0 regular file, 1 symlink, 2 anything else; None when it cannot be listed."""
        if folder in self.listings:
            self.listings.move_to_end(folder)
            return self.listings[folder]
        try:
            with os.scandir(folder) as entries:
                listing = {e.name: 0 if e.is_file(follow_symlinks=False) else 1 if e.is_symlink() else 2
                           for e in entries}
        except (FileNotFoundError, NotADirectoryError):
            listing = {}
        except OSError:  # e.g. a name too long: the lstat below says so, row by row
            listing = None
        self.listings[folder] = listing
        if len(self.listings) > self._KEEP:
            self.listings.popitem(last=False)
        return listing

    def __call__(self, raw: str) -> tuple[str, str, bool]:
        """(resolved folder, file name, is a file) of a manifest path. Rows of one folder come
        together: the folder is resolved and its listing found once per run of such rows."""
        cut = raw.rfind("/")
        head, tail = (raw[:cut] if cut > 0 else raw[:cut + 1]), raw[cut + 1:]  # "/x.png": head "/"
        if tail in ("", ".", ".."):
            return self._full(str(Path(os.path.join(self.base, raw)).resolve()))
        if head != self._head:
            real = self._folder(head)
            self._head, self.real, self.names = head, real, self._listing(real) or {}
            self.prefix = raw[:cut + 1]
        real = self.real
        kind = self.names.get(tail)
        if kind is None:
            try:
                mode = os.lstat(os.path.join(real, tail)).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return real, tail, False
            kind = 0 if stat.S_ISREG(mode) else 1 if stat.S_ISLNK(mode) else 2
        if kind == 1:
            return self._full(os.path.realpath(os.path.join(real, tail)))
        return real, tail, kind == 0

    def _folder(self, head: str) -> str:
        """os.path.realpath(base / head), memoised per folder and built on its parent's: one lstat
        for a folder whose parent is known, not one per component of its path."""
        real = self.dirs.get(head)
        if real is not None:
            return real
        cut = head.rfind("/")
        parent, last = (head[:cut] if cut > 0 else head[:cut + 1]), head[cut + 1:]
        if last in ("", ".", "..") or not parent or parent == head:
            real = os.path.realpath(os.path.join(self.base, head))
        else:
            real = os.path.join(self._folder(parent), last)
            try:
                if stat.S_ISLNK(os.lstat(real).st_mode):
                    real = os.path.realpath(real)
            except OSError:  # missing or unreadable: kept as written, as realpath does
                pass
        self.dirs[head] = real
        return real

    @staticmethod
    def _full(path: str) -> tuple[str, str, bool]:
        folder, name = os.path.split(path)
        return folder, name, os.path.isfile(path)


@dataclass(frozen=True)
class _ManifestColumns:
    """Where each field sits in a manifest row (a repeated column name: its last position)."""

    names: list[str]
    path: int
    subject: int
    role: int | None
    capture: int | None
    landmarks: list[int] | None  # lm0x..lm4y, when every one of them is a column

    @classmethod
    def from_header(cls, root: Path, header: list[str] | None) -> _ManifestColumns:
        names = [c.strip().lower() for c in header or []]
        missing = {"path", "subject"} - set(names)
        if missing:
            raise DataError(f"{root}: manifest lacks the column(s) {', '.join(sorted(missing))} "
                            f"(found {', '.join(c for c in names if c) or 'none'})")
        at = dict(zip(names, range(len(names))))
        landmarks = [at[c] for c in LANDMARK_COLUMNS] if all(c in at for c in LANDMARK_COLUMNS) else None
        return cls(names, at["path"], at["subject"], at.get("role"), at.get("capture"), landmarks)


class _ManifestRows:
    """The rows kept so far: gathered in a batch of plain lists and appended to the table in
    bulk, with each row's manifest line and its resolved (folder, name), to report a repeat."""

    def __init__(self):
        self.table = TableBuilder()
        self.batch: tuple[list, ...] = ([], [], [], [], [])  # folders, names, subjects, role codes, captures
        self.batch_landmarks: dict[int, tuple[float, ...]] = {}
        self.row_of: dict[tuple[str, str], int] = {}
        self.line_of_row = array("q")

    def flush(self) -> None:
        self.table.extend(*self.batch, self.batch_landmarks)
        for column in self.batch:
            column.clear()
        self.batch_landmarks.clear()

    def pending(self) -> int:
        return len(self.batch[1])

    def subject_of(self, row: int) -> str:
        done = len(self.table)
        return self.table.subject_of(row) if row < done else self.batch[2][row - done]

    def add(self, folder: str, name: str, subject: str, role_code: int, capture: str,
            landmarks: tuple[float, ...] | None, line: int) -> None:
        folders, names, subjects, roles, captures = self.batch
        self.row_of[folder, name] = len(self.line_of_row)
        self.line_of_row.append(line)
        if landmarks is not None:
            self.batch_landmarks[len(names)] = landmarks
        folders.append(folder)
        names.append(name)
        subjects.append(subject)
        roles.append(role_code)
        captures.append(capture or _stem(name))


_ROLE_CODES = {r: ROLES.index(r) for r in ROLES}


class _ManifestReader:
    """Reads a manifest's rows into a DatasetIndex: a row that cannot be used is a problem (and
    skipped), a path outside the manifest's folder or one file under two subjects is refused."""

    def __init__(self, root: Path, allow_outside_root: bool):
        self.root, self.base, self.allow_outside_root = root, root.parent, allow_outside_root
        self.resolve = _Resolver(self.base)
        self.rows = _ManifestRows()
        self.problems: list[tuple[str, str]] = []

    def read(self, text: str, progress: bool) -> DatasetIndex:
        n_lines = text.count("\n")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        bar = progress_bar("reading the manifest", n_lines, progress and n_lines >= _BAR_FROM_ROWS)
        rows = self.rows
        try:
            with bar as advance:
                columns = _ManifestColumns.from_header(self.root, next(reader, None))
                for fields in reader:
                    line = reader.line_num
                    if not line % _BAR_STEP:
                        advance(_BAR_STEP)
                        if rows.pending() >= _BAR_STEP:
                            rows.flush()
                    self.row(fields, line, columns)
                rows.flush()
        except csv.Error as exc:
            raise DataError(f"{self.root}: line {reader.line_num}: not valid CSV ({exc})") from None
        return DatasetIndex(self.root, "manifest", rows.table.build(), self.problems)

    def row(self, fields: list[str], line: int, columns: _ManifestColumns) -> None:
        """Check one row and keep it, or note why not."""
        if len(fields) != len(columns.names):
            if not any(f.strip() for f in fields):
                return  # a blank line
            raise DataError(f"{self.root}: line {line} has {len(fields)} field(s), the header has "
                            f"{len(columns.names)} ({','.join(columns.names)})")
        raw = fields[columns.path].strip()
        if not raw:
            if any(f.strip() for f in fields):
                self.problems.append((f"{self.root}:{line}", f"line {line}: empty path"))
            return  # else a line of empty fields
        if not self.allow_outside_root and (raw[0] == "/" or ".." in raw) and _outside(raw):
            raise DataError(f"{self.root}: line {line}: path {raw!r} is outside the manifest's folder "
                            f"{self.base} (absolute or ../); allow it with --allow-outside-root")
        role = (fields[columns.role].strip().lower() or "hr") if columns.role is not None else "hr"
        located = self.locate(raw, line)
        if located is None:
            return
        folder, name, is_file = located
        role_code = _ROLE_CODES.get(role)
        subject = fields[columns.subject].strip()
        if role_code is None:
            why = f"role {role!r} is not hr or vlr"
        elif not is_file:
            why = "no such file"
        elif not subject:
            why = "empty subject"
        elif (folder, name) in self.rows.row_of:
            why = self.repeat(folder, name, subject, raw, line)
        else:
            why = None
        if why:
            self.problems.append((os.path.join(folder, name), f"line {line}: {why}"))
            return
        landmarks = None
        if columns.landmarks is not None:
            landmarks = _landmarks([fields[i] for i in columns.landmarks], line, os.path.join(folder, name),
                                   self.problems)
        capture = fields[columns.capture].strip() if columns.capture is not None else ""
        self.rows.add(folder, name, subject, role_code, capture, landmarks, line)

    def locate(self, raw: str, line: int) -> tuple[str, str, bool] | None:
        """(resolved folder, name, is a file) of a manifest path, or None (a problem noted)."""
        resolve = self.resolve
        name = raw[len(resolve.prefix):]
        if resolve.names.get(name) == 0 and raw.startswith(resolve.prefix) and "/" not in name:
            return resolve.real, name, True  # a plain file in the previous row's folder
        try:
            return resolve(raw)
        except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
            self.problems.append((str(self.base / raw), f"line {line}: cannot read the path: {exc}"))
            return None

    def repeat(self, folder: str, name: str, subject: str, raw: str, line: int) -> str:
        """Why a row that lists a file already kept is skipped; the same file under another
        subject is refused."""
        first = self.rows.row_of[folder, name]
        first_subject, first_line = self.rows.subject_of(first), self.rows.line_of_row[first]
        if first_subject != subject:
            raise DataError(f"{self.root}: line {line}: {raw!r} is listed under subject {subject!r} and, "
                            f"on line {first_line}, under {first_subject!r}: one file, one person")
        return f"listed again (first on line {first_line}); the repeat is ignored"


def _index_manifest(root: Path, allow_outside_root: bool = False, progress: bool = True) -> DatasetIndex:
    return _ManifestReader(root, allow_outside_root).read(_read_manifest_text(root), progress)


@dataclass(frozen=True)
class SplitRoots:
    """One root holding a gallery split and a probe split (each a dataset in any layout)."""

    root: Path
    gallery: Path
    probe: Path


def find_split_roots(root: str | Path | None) -> SplitRoots | None:
    """``root/train/`` + ``root/val/`` (or test/, or gallery/ + probe[s]/), each a dataset of its
    own: the first enrols, the second probes. None when ``root`` is not such a folder (a dataset
    root with ``hr_images/`` or subject folders holding images is never split)."""
    if root is None:
        return None
    root = Path(root).expanduser().resolve()
    if not root.is_dir() or (root / "hr_images").is_dir():
        return None
    dirs = {p.name.lower(): p for p in sorted(root.iterdir(), key=lambda p: natural_key(p.name))
            if p.is_dir() and not p.name.startswith(".")}
    if any(_is_image(p) for d in dirs.values() for p in d.iterdir()):
        return None  # some folder holds images itself: a subject folder, so root is a dataset
    for gallery, probe in SPLIT_PAIRS:
        if gallery in dirs and probe in dirs and _holds_dataset(dirs[gallery]) and _holds_dataset(dirs[probe]):
            return SplitRoots(root, dirs[gallery], dirs[probe])
    return None


def _holds_dataset(folder: Path) -> bool:
    """hr_images/, or at least one subfolder holding an image (a folders layout)."""
    if (folder / "hr_images").is_dir():
        return True
    return any(_is_image(p) for sub in folder.iterdir() if sub.is_dir() for p in sub.iterdir())


def split_notes(gallery_root: Path, probe_root: Path) -> list[str]:
    """What a gallery root and a probe root that are split folders of one root mean for the result."""
    gallery_root, probe_root = Path(gallery_root), Path(probe_root)
    if gallery_root.parent != probe_root.parent:
        return []
    pair = (gallery_root.name.lower(), probe_root.name.lower())
    if pair not in SPLIT_PAIRS:
        return []
    names = {n for split in SPLIT_PAIRS for n in split} - set(pair)
    unused = sorted((p.name for p in gallery_root.parent.iterdir() if p.is_dir() and p.name.lower() in names),
                    key=natural_key)
    notes = [f"split folders: gallery from {gallery_root.name}/, probes from {probe_root.name}/"
             + (f" ({', '.join(f'{n}/' for n in unused)} not used)" if unused else "")]
    if pair[0] == "train":
        notes.append(f"the gallery is the {gallery_root.name}/ split: if the model was trained on it, this is "
                     f"closed-set identification of people it has seen (optimistic)")
    return notes


def file_digest(path: Path) -> str:
    """sha256 of the file bytes: the content key of the embedding cache and fingerprints.

    Memoised on (path, size, mtime) so a run reads each file's bytes for hashing once."""
    st = Path(path).stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
