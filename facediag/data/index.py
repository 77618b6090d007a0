"""Find face images and who they belong to, in the three layouts seen in the wild.

1. ``paired``:  ``root/hr_images/*`` + ``root/vlr_images[_NxN]/*`` with identical filenames;
   the subject id comes from the filename by a regex (default: up to the first ``_``).
2. ``folders``: ``root/<subject>/*`` (LFW, ORL): any image PIL reads, PGM included.
3. ``manifest``: a CSV with columns ``path,subject[,role][,capture]`` (paths relative to the CSV).
"""
from __future__ import annotations

import csv
import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from facediag.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
LAYOUTS = ("auto", "paired", "folders", "manifest")
DEFAULT_SUBJECT_REGEX = r"^([^_]+)_"
_VLR_DIR = re.compile(r"^vlr_images(?:_(\d+)x(\d+))?$")


@dataclass(frozen=True)
class Record:
    """One image file. ``capture`` pairs the HR and VLR files of the same shot."""

    path: Path
    subject: str
    role: str = "hr"  # "hr" | "vlr"
    capture: str = ""
    vlr_size: int | None = None  # from the folder name (vlr_images_16x16), when it says


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
    raise DataError(
        f"{root}: no face images found (expected hr_images/ + vlr_images*/, one folder per subject, "
        f"or a .csv manifest)")


def index_dataset(root: str | Path, layout: str = "auto", subject_regex: str = DEFAULT_SUBJECT_REGEX) -> DatasetIndex:
    root = Path(root).expanduser().resolve()
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.exists():
        raise DataError(f"{root}: no such file or folder")
    index = {"paired": _index_paired, "folders": _index_folders, "manifest": _index_manifest}[layout](
        root, subject_regex)
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
    records, problems = [], []

    def add(folder: Path, role: str, vlr_size: int | None):
        for path in _sorted_images(folder):
            subject = _subject_from_name(path.name, pattern)
            if subject is None:
                problems.append((str(path), f"subject regex {subject_regex!r} does not match the filename"))
                continue
            records.append(Record(path, subject, role, path.stem, vlr_size))

    if not (root / "hr_images").is_dir():
        raise DataError(f"{root}: the paired layout needs an hr_images/ folder")
    add(root / "hr_images", "hr", None)
    for sub in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        m = _VLR_DIR.match(sub.name)
        if sub.is_dir() and m:
            add(sub, "vlr", int(m.group(1)) if m.group(1) else None)
    return DatasetIndex(root, "paired", records, problems)


def _index_folders(root: Path, subject_regex: str) -> DatasetIndex:
    records = []
    for sub in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name)):
        for path in _sorted_images(sub):
            records.append(Record(path, sub.name, "hr", f"{sub.name}/{path.stem}"))
    return DatasetIndex(root, "folders", records, [])


def _index_manifest(root: Path, subject_regex: str) -> DatasetIndex:
    base = root.parent
    records, problems = [], []
    with root.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "subject"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{root}: manifest lacks the column(s) {', '.join(sorted(missing))} "
                            f"(found {', '.join(reader.fieldnames or []) or 'none'})")
        for line, row in enumerate(reader, start=2):
            path = (base / row["path"]).resolve()
            role = (row.get("role") or "hr").strip().lower()
            if role not in ("hr", "vlr"):
                problems.append((str(path), f"line {line}: role {role!r} is not hr or vlr"))
                continue
            if not path.is_file():
                problems.append((str(path), f"line {line}: no such file"))
                continue
            subject = (row["subject"] or "").strip()
            if not subject:
                problems.append((str(path), f"line {line}: empty subject"))
                continue
            records.append(Record(path, subject, role, (row.get("capture") or path.stem).strip()))
    return DatasetIndex(root, "manifest", records, problems)


def file_digest(path: Path) -> str:
    """sha256 of the file bytes: the content key of the embedding cache and fingerprints.

    Memoised on (path, size, mtime) so a run reads each file's bytes for hashing once."""
    st = Path(path).stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
