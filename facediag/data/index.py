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
from dataclasses import dataclass, field
from pathlib import Path

from facediag.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
LAYOUTS = ("auto", "paired", "folders", "manifest")
DEFAULT_SUBJECT_REGEX = r"^([^_]+)_"
_VLR_DIR = re.compile(r"^vlr_images(?:_(\d+)x(\d+))?$")
# Split folder names under one root: (enrols, probes), the first pair found wins.
SPLIT_PAIRS = (("train", "val"), ("train", "validation"), ("train", "test"), ("gallery", "probe"),
               ("gallery", "probes"))


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


@dataclass
class DatasetIndex:
    root: Path
    layout: str
    records: list[Record]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) skipped at indexing

    @property
    def hr(self) -> list[Record]:
        return [r for r in self.records if r.role == "hr"]

    @property
    def vlr(self) -> list[Record]:
        return [r for r in self.records if r.role == "vlr"]

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.records}, key=natural_key)

    def counts(self) -> dict[str, int]:
        return {"images": len(self.records), "hr": len(self.hr), "vlr": len(self.vlr),
                "subjects": len(self.subjects), "problems": len(self.problems)}


def natural_key(text: str):
    """'s2' < 's10', '2.pgm' < '10.pgm': the order a person expects, and deterministic."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", str(text))]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _sorted_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: natural_key(p.name))


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
                  allow_outside_root: bool = False) -> DatasetIndex:
    """Index one dataset root. ``allow_outside_root``: a manifest may name files outside its folder."""
    root = Path(root).expanduser().resolve()
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if layout == "manifest":
        index = _index_manifest(root, allow_outside_root)
    else:
        index = {"paired": _index_paired, "folders": _index_folders}[layout](root, subject_regex)
    if not index.records:
        raise DataError(f"{root}: the {layout} layout found no images")
    return index


def _subject_from_name(name: str, pattern: re.Pattern) -> str | None:
    m = pattern.search(name)
    if not m:
        return None
    return m.group(1) if m.groups() else m.group(0)


def _index_paired(root: Path, subject_regex: str) -> DatasetIndex:
    try:
        pattern = re.compile(subject_regex)
    except re.error as exc:
        raise DataError(f"--subject-regex {subject_regex!r} is not a valid regex: {exc}") from None
    problems: list[tuple[str, str]] = []

    def read(folder: Path, role: str, vlr_size: int | None) -> list[Record]:
        out = []
        for path in _sorted_images(folder):
            subject = _subject_from_name(path.name, pattern)
            if subject is None:
                problems.append((str(path), f"subject regex {subject_regex!r} does not match the filename"))
                continue
            out.append(Record(path, subject, role, path.stem, vlr_size))
        return out

    if not (root / "hr_images").is_dir():
        raise DataError(f"{root}: the paired layout needs an hr_images/ folder")
    hr = read(root / "hr_images", "hr", None)
    vlr_folders = []
    for sub in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        m = _VLR_DIR.match(sub.name)
        if sub.is_dir() and m:
            recs = read(sub, "vlr", int(m.group(1)) if m.group(1) else None)
            if recs:
                vlr_folders.append((sub.name, recs))
    records = list(hr)
    if not hr:  # VLR files only (e.g. a probe root): nothing to pair them with, nothing to report
        return DatasetIndex(root, "paired", records + [r for _, recs in vlr_folders for r in recs], problems)
    # Pairing is by identical filename: report the files that have no twin.
    hr_names = {r.path.name for r in hr}
    lookalike = _Lookalikes(hr_names)
    missing: dict[str, list[str]] = {}  # HR name -> VLR folders without it
    for folder, recs in vlr_folders:
        names = {r.path.name for r in recs}
        for name in sorted(hr_names - names, key=natural_key):
            missing.setdefault(name, []).append(folder)
        for rec in recs:
            if rec.path.name in hr_names:
                records.append(rec)
                continue
            twin = lookalike.find(rec.path.name)
            hint = f"; hr_images/{twin} looks like its twin" if twin else ""
            why = (f"VLR file without an HR twin (no hr_images/{rec.path.name}{hint}; "
                   f"paired files need identical names): not used")
            problems.append((str(rec.path), why))
    for rec in hr:
        if rec.path.name in missing:
            folders = ", ".join(f"{f}/" for f in missing[rec.path.name])
            why = (f"HR file without a VLR twin in {folders} (paired files need identical names): "
                   f"kept, probed from its HR image")
            problems.append((str(rec.path), why))
    return DatasetIndex(root, "paired", records, problems)


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


def _index_folders(root: Path, subject_regex: str) -> DatasetIndex:
    records = []
    for sub in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name)):
        for path in _sorted_images(sub):
            records.append(Record(path, sub.name, "hr", f"{sub.name}/{path.stem}"))
    return DatasetIndex(root, "folders", records, [])


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
    if Path(raw).is_absolute() or os.path.isabs(raw):
        return True
    norm = os.path.normpath(raw)
    return norm == os.pardir or norm.startswith(os.pardir + os.sep)


LANDMARK_COLUMNS = tuple(f"lm{i}{axis}" for i in range(5) for axis in "xy")


def _landmarks(row: dict, line: int, path: Path, problems: list) -> tuple[float, ...] | None:
    """A manifest row's five landmarks, or None (no lm columns, or blank: detect instead; a
    value that is not a finite number is reported and the row is detected instead)."""
    if not all(c in row for c in LANDMARK_COLUMNS):
        return None
    raw = [row[c].strip() for c in LANDMARK_COLUMNS]
    if not any(raw):
        return None
    try:
        values = tuple(float(v) for v in raw)
    except ValueError:
        values = ()
    if len(values) != 10 or not all(math.isfinite(v) for v in values):
        problems.append((str(path), f"line {line}: landmarks lm0x..lm4y are not ten finite numbers; "
                                    f"the face will be detected instead"))
        return None
    return values


def _index_manifest(root: Path, allow_outside_root: bool = False) -> DatasetIndex:
    base = root.parent
    records, problems = [], []
    reader = csv.reader(io.StringIO(_read_manifest_text(root), newline=""), strict=True)
    seen: dict[Path, tuple[str, int]] = {}  # resolved path -> (subject, line)
    try:
        header = next(reader, None)
        columns = [c.strip().lower() for c in header or []]
        missing = {"path", "subject"} - set(columns)
        if missing:
            raise DataError(f"{root}: manifest lacks the column(s) {', '.join(sorted(missing))} "
                            f"(found {', '.join(c for c in columns if c) or 'none'})")
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(columns):
                raise DataError(f"{root}: line {line} has {len(fields)} field(s), the header has "
                                f"{len(columns)} ({','.join(columns)})")
            row = dict(zip(columns, fields))
            raw = row["path"].strip()
            if not raw:
                problems.append((f"{root}:{line}", f"line {line}: empty path"))
                continue
            if not allow_outside_root and _outside(raw):
                raise DataError(f"{root}: line {line}: path {raw!r} is outside the manifest's folder {base} "
                                f"(absolute or ../); allow it with --allow-outside-root")
            role = (row.get("role") or "hr").strip().lower()
            try:
                path = (base / raw).resolve()
                is_file = path.is_file()
            except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
                problems.append((str(base / raw), f"line {line}: cannot read the path: {exc}"))
                continue
            if role not in ("hr", "vlr"):
                problems.append((str(path), f"line {line}: role {role!r} is not hr or vlr"))
                continue
            if not is_file:
                problems.append((str(path), f"line {line}: no such file"))
                continue
            subject = row["subject"].strip()
            if not subject:
                problems.append((str(path), f"line {line}: empty subject"))
                continue
            if path in seen:
                first_subject, first_line = seen[path]
                if first_subject != subject:
                    raise DataError(f"{root}: line {line}: {raw!r} is listed under subject {subject!r} and, "
                                    f"on line {first_line}, under {first_subject!r}: one file, one person")
                why = f"line {line}: listed again (first on line {first_line}); the repeat is ignored"
                problems.append((str(path), why))
                continue
            seen[path] = (subject, line)
            landmarks = _landmarks(row, line, path, problems)
            records.append(Record(path, subject, role, (row.get("capture") or "").strip() or path.stem,
                                  landmarks=landmarks))
    except csv.Error as exc:
        raise DataError(f"{root}: line {reader.line_num}: not valid CSV ({exc})") from None
    return DatasetIndex(root, "manifest", records, problems)


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
