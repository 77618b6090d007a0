"""Verification pair sets: which two images make each pair, whether they are one person, and
(when the set says so) which fold each pair belongs to. Three formats:

- **insightface ``.bin``** (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ...): a pickle of
  ``(bins, issame_list)``; ``bins`` holds 2N encoded images (bytes, or numpy uint8 arrays of
  the encoded bytes), pair i = images 2i and 2i+1. Read without running anything: the
  project's dry pickle scan first (:func:`facediag.models.safe_load.scan_pickle_globals`: opcode,
  nesting and allocation bounds, every global named), any global outside numpy's array and
  dtype rebuilders refused, then an unpickler whose ``find_class`` admits only those.
- **LFW ``pairs.txt``**: an optional header (``10 300``: folds and same/different pairs per
  fold; or one number, the pair count), then ``name n1 n2`` (same person) and
  ``name1 n1 name2 n2`` (different people) lines; image ``n`` of ``name`` is
  ``ROOT/name/name_000n.*`` (LFW) or ``ROOT/name/n.*`` (ORL-style folders).
- **CSV**: ``path1,path2,same[,fold]`` (header optional; ``same`` 1/0, true/false, yes/no,
  same/different), paths relative to ``--images`` or else to the CSV's folder.

Every image becomes 3×112×112 in [0, 1] through facediag's one decoder
(:mod:`facediag.data.images`: pixel limit, fit-and-pad rule), so the embedding cache keys are
the same content digests the rest of facediag uses.
"""
from __future__ import annotations

import csv
import hashlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facediag.data.images import fit_canvas, load_face, read_rgb, to_tensor01
from facediag.data.index import IMAGE_SUFFIXES, file_digest
from facediag.errors import CheckpointError, DataError
from facediag.formatting import clip, display_name
from facediag.models.safe_load import is_gadget, scan_pickle_globals

# A .bin is read into memory whole, as the reference does; the largest public ones (CFP-FP,
# AgeDB-30, XQLFW) are under 200 MB.
MAX_BIN_BYTES = 2 * 2**30
MAX_PAIRS = 5_000_000
# A file or folder name (a person in pairs.txt, each part of a CSV path): the bytes most file
# systems allow (NAME_MAX).
MAX_NAME_BYTES = 255
_INT64 = 2**63 - 1
# Whole numbers as the formats write them: ASCII digits only (str.isdigit() also admits '²' and
# other Unicode digits that int() refuses or reads differently).
_ASCII_COUNT = re.compile(r"[0-9]{1,18}")
_ASCII_INT = re.compile(r"[+-]?[0-9]+")

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1').
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode is admitted only as latin1 bytes")
    return text.encode("latin1")


# What a .bin may name: numpy's array/dtype/scalar rebuilders (data only) under numpy 1 and 2
# names, and the latin1 bytes literal of protocol 2. Anything else is refused.
_BIN_GLOBALS: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype,
                                "_codecs.encode": _latin1_encode}
for _mod in ("numpy.core", "numpy._core"):
    _BIN_GLOBALS[f"{_mod}.multiarray._reconstruct"] = _multiarray._reconstruct
    _BIN_GLOBALS[f"{_mod}.multiarray.scalar"] = _multiarray.scalar
    _BIN_GLOBALS[f"{_mod}.numeric._frombuffer"] = _numeric._frombuffer


class _BinUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        found = _BIN_GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not admitted in a .bin")
        return found

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not admitted in a .bin")


@dataclass(frozen=True)
class PairImage:
    """One image of a pair set: its content key (cache key), a name for messages, its pixels."""

    key: str                              # "hr:<sha256 of the encoded bytes>", as facediag keys files
    name: str
    load: Callable[[], torch.Tensor]      # 3×112×112 float in [0, 1]


@dataclass(frozen=True, eq=False)
class PairSet:
    name: str                             # the set's name: the file's stem, lower case ("lfw", "cfp_fp")
    source: Path
    kind: str                             # "bin", "pairs.txt" or "csv"
    images: list[PairImage]
    first: np.ndarray                     # [N] index into images
    second: np.ndarray
    issame: np.ndarray                    # [N] bool
    fold_ids: np.ndarray | None = None    # [N] the set's own folds; None: the protocol's consecutive folds
    images_root: Path | None = None

    @property
    def n_pairs(self) -> int:
        return len(self.issame)

    def describe(self) -> dict:
        return {"name": self.name, "source": str(self.source), "format": self.kind,
                "images_root": None if self.images_root is None else str(self.images_root),
                "pairs": self.n_pairs, "same": int(self.issame.sum()), "different": int((~self.issame).sum()),
                "images": len(self.images), "folds_from_file": self.fold_ids is not None,
                "sha256": file_digest(self.source)}


def set_name(path: str | Path) -> str:
    """``AgeDB-30.bin`` -> ``agedb_30``: the name the published figures are filed under."""
    return re.sub(r"[^a-z0-9]+", "_", Path(path).stem.lower()).strip("_")


def load_pair_set(path: str | Path, images_root: str | Path | None = None, *,
                  allow_outside_root: bool = False) -> PairSet:
    """A .bin, pairs.txt (any other text file) or .csv pair set, by its extension."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return read_bin(path)  # a .bin holds its images: --images is for pairs.txt and CSV
    if suffix == ".csv":
        return read_pairs_csv(path, images_root, allow_outside_root=allow_outside_root)
    if images_root is None:
        raise DataError(f"{display_name(path)}: a pairs.txt needs --images ROOT (the folder of person folders)")
    return read_pairs_txt(path, images_root)


# ------------------------------------------------------------------------------ .bin
def _bin_image(data: bytes, name: str, seen: dict | None = None) -> PairImage:
    """``seen``: {id(bytes): (key, loader)} of this .bin's images so far; a pickle names one bytes
    object once however many pairs hold it, and it is hashed once (the list keeps it alive)."""
    known = seen.get(id(data)) if seen is not None else None
    if known is None:
        def load() -> torch.Tensor:
            return fit_canvas(to_tensor01(read_rgb(io.BytesIO(data))))

        known = (f"hr:{hashlib.sha256(data).hexdigest()}", load)
        if seen is not None:
            seen[id(data)] = known
    return PairImage(known[0], name, known[1])


def read_bin(path: str | Path) -> PairSet:
    """An insightface .bin, refused (DataError, nothing built) unless it holds only what the
    format holds: encoded images as bytes or uint8 arrays, and one bool per pair."""
    path = Path(path)
    name = display_name(path)
    size = path.stat().st_size
    if size > MAX_BIN_BYTES:
        raise DataError(f"{name}: {size / 2**30:.1f} GiB, over the {MAX_BIN_BYTES // 2**30} GiB a .bin may have")
    data = path.read_bytes()
    try:
        named = scan_pickle_globals(io.BytesIO(data), name)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    gadgets = sorted(g for g in named if is_gadget(g))
    if gadgets:
        raise DataError(f"{name}: refused, the pickle calls {', '.join(map(clip, gadgets))} "
                        "(code execution on load); nothing was run")
    foreign = sorted(g for g in named if g not in _BIN_GLOBALS)
    if foreign:
        raise DataError(f"{name}: refused, the pickle names {', '.join(map(clip, foreign[:3]))}, which a "
                        ".bin verification set never holds (only images and booleans); nothing was run")
    obj = _unpickle_bin(data, name)
    bins, issame = _bin_contents(obj, name)
    seen: dict = {}
    images = [_bin_image(b, f"{name}#{i}", seen) for i, b in enumerate(bins)]
    first = np.arange(0, len(images), 2)
    return PairSet(set_name(path), path, "bin", images, first, first + 1, issame)


def _unpickle_bin(data: bytes, name: str):
    # As the reference: the default (ASCII) first; Python 2 byte strings need encoding='bytes'.
    for encoding in ("ASCII", "bytes"):
        try:
            return _BinUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnicodeDecodeError:
            continue
        except Exception as exc:  # noqa: BLE001 - whatever the unpickler refuses is bad input
            raise DataError(f"{name}: refused, {clip(exc, 200)}") from None
    raise DataError(f"{name}: not a .bin verification set (text that is neither ASCII nor bytes)")


def _bin_contents(obj, name: str) -> tuple[list[bytes], np.ndarray]:
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(f"{name}: not a .bin verification set (expected (images, issame), "
                        f"found a {type(obj).__name__})")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)):
        raise DataError(f"{name}: the images are a {type(bins).__name__}, not a list")
    if isinstance(issame, np.ndarray):
        if issame.ndim != 1 or issame.dtype.kind not in "bui":
            raise DataError(f"{name}: issame is a {issame.dtype} array of shape {issame.shape}, not booleans")
        issame = issame.tolist()
    if not isinstance(issame, (list, tuple)):
        raise DataError(f"{name}: issame is a {type(issame).__name__}, not a list of booleans")
    flags = []
    for i, v in enumerate(issame):
        if isinstance(v, np.generic):
            v = v.item()
        if type(v) not in (bool, int) or v not in (0, 1):
            raise DataError(f"{name}: issame[{i}] is {clip(repr(v), 40)}, not a boolean")
        flags.append(bool(v))
    if not flags or len(flags) > MAX_PAIRS:
        raise DataError(f"{name}: {len(flags)} pairs (a set holds 1 to {MAX_PAIRS:,})")
    if len(bins) != 2 * len(flags):
        raise DataError(f"{name}: {len(bins)} images for {len(flags)} pairs (a .bin holds two per pair)")
    out = []
    for i, b in enumerate(bins):
        if isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.ndim == 1:
            b = b.tobytes()
        elif isinstance(b, bytearray):
            b = bytes(b)
        if not isinstance(b, bytes) or not b:
            what = f"a {b.dtype} array of shape {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
            raise DataError(f"{name}: image {i} is {what}, not encoded image bytes")
        out.append(b)
    return out, np.array(flags, dtype=bool)


# ------------------------------------------------------------------------------ pairs.txt
def _person_files(root: Path, person: str, cache: dict) -> dict[str, Path]:
    """{file stem: path} of the images in ROOT/person (listed once per person)."""
    if person not in cache:
        folder = root / person
        files: dict[str, Path] = {}
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    files.setdefault(p.stem, p)
        cache[person] = files
    return cache[person]


def _lfw_image(root: Path, person: str, number: str, cache: dict) -> Path | None:
    try:
        files = _person_files(root, person, cache)
    except OSError as exc:
        raise DataError(f"{root / clip(person, 40)}: cannot be listed ({exc.strerror or exc})") from None
    n = int(number)
    return files.get(f"{person}_{n:04d}") or files.get(str(n)) or files.get(number)


def read_pairs_txt(path: str | Path, images_root: str | Path) -> PairSet:
    path, root = Path(path), Path(images_root)
    name = display_name(path)
    if not root.is_dir():
        raise DataError(f"{root}: --images must be a folder of person folders")
    text = _read_text(path)
    lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines()) if line.strip()]
    header = None
    if lines and len(lines[0][1]) in (1, 2) and all(t.isdigit() for t in lines[0][1]):
        line_no, fields = lines.pop(0)
        if not all(_ASCII_COUNT.fullmatch(t) for t in fields):
            raise DataError(f"{name}: line {line_no}: the header {clip(' '.join(fields), 40)!r} is not whole "
                            "numbers in ASCII digits (folds and pairs per fold, or the pair count)")
        header = [int(t) for t in fields]
    pairs, listing, missing = [], {}, []
    for line_no, fields in lines:
        if len(fields) == 3:
            people, numbers, same = (fields[0], fields[0]), (fields[1], fields[2]), True
        elif len(fields) == 4:
            people, numbers, same = (fields[0], fields[2]), (fields[1], fields[3]), False
        else:
            raise DataError(f"{name}: line {line_no} has {len(fields)} fields (3: name n1 n2, same person; "
                            "4: name1 n1 name2 n2, different people)")
        paths = []
        for person, number in zip(people, numbers):
            if not _person_name(person) or not _ASCII_COUNT.fullmatch(number):
                raise DataError(f"{name}: line {line_no}: {clip(person, 40)} {clip(number, 12)} is not "
                                "a person's name and image number (ASCII digits)")
            found = _lfw_image(root, person, number, listing)
            if found is None:
                missing.append(f"{clip(person, 40)} {number}")
            paths.append(found)
        pairs.append((paths, same))
    if missing:
        raise DataError(f"{name}: {len(missing)} image(s) not found under {root} (first: {', '.join(missing[:3])}; "
                        "expected ROOT/name/name_000n.jpg or ROOT/name/n.*)")
    fold_ids = None
    if header is not None and len(header) == 2:
        folds, per_fold = header
        if folds < 1 or per_fold < 1 or folds * 2 * per_fold != len(pairs):
            raise DataError(f"{name}: the header says {folds} folds of 2 × {per_fold} pairs, the file has "
                            f"{len(pairs)} pairs")
        fold_ids = np.arange(len(pairs)) // (2 * per_fold) if folds > 1 else None
    elif header is not None and header[0] != len(pairs):
        raise DataError(f"{name}: the header says {header[0]} pairs, the file has {len(pairs)}")
    return _file_pair_set(path, "pairs.txt", root, [p for p, _ in pairs], [s for _, s in pairs], fold_ids)


def _person_name(person: str) -> bool:
    """A folder name under --images: one path part, no NUL, within the bytes a name may have."""
    return (person not in (".", "..") and not any(c in person for c in "/\\\0")
            and len(person.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES)


# ------------------------------------------------------------------------------ CSV
_TRUE, _FALSE = {"1", "true", "yes", "same", "y", "t"}, {"0", "false", "no", "different", "n", "f"}


def read_pairs_csv(path: str | Path, images_root: str | Path | None = None, *,
                   allow_outside_root: bool = False) -> PairSet:
    path = Path(path)
    name = display_name(path)
    root = Path(images_root) if images_root is not None else path.parent
    if not root.is_dir():
        raise DataError(f"{root}: --images must be a folder")
    look_up = _PathLookup(name, root, allow_outside_root)
    pairs, flags, folds = [], [], []
    for line_no, fields in _csv_pair_rows(path, name):
        same, fold = _csv_pair_fields(name, line_no, fields)
        if folds and (fold is None) != (folds[-1] is None):
            raise DataError(f"{name}: line {line_no}: give a fold on every line or on none")
        pairs.append([look_up(raw, line_no) for raw in fields[:2]])
        flags.append(same)
        folds.append(fold)
    if look_up.missing:
        raise DataError(f"{name}: {len(look_up.missing)} image(s) not found under {root} (first: "
                        f"{', '.join(clip(m, 60) for m in look_up.missing[:3])})")
    fold_ids = np.array(folds, dtype=np.int64) if folds and folds[0] is not None else None
    if fold_ids is not None and len(named := np.unique(fold_ids)) < 2:
        raise DataError(f"{name}: the fold column names {len(named)} fold ({named[0]}); the protocol needs at "
                        "least 2 (or leave the column out for consecutive folds)")
    return _file_pair_set(path, "csv", root, pairs, flags, fold_ids)


def _csv_pair_rows(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of each non-blank row, without the header when there is one
    (a first row naming path1,path2,same, or whose third field is no same/different value)."""
    try:
        rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    except csv.Error as exc:  # a field over the csv module's limit, a NUL in a quoted field
        raise DataError(f"{name}: not a pairs CSV ({clip(exc, 80)})") from None
    rows = [(i + 1, [f.strip() for f in r]) for i, r in enumerate(rows) if any(f.strip() for f in r)]
    first = [c.lower() for c in rows[0][1]] if rows else []
    if first[:3] == ["path1", "path2", "same"] or (first[2:3] and first[2] not in _TRUE | _FALSE):
        columns = [c.lower() for c in rows.pop(0)[1]]
        if columns[:3] != ["path1", "path2", "same"] or columns[3:] not in ([], ["fold"]):
            raise DataError(f"{name}: the header must be path1,path2,same[,fold] (found {','.join(columns)})")
    return rows


def _csv_pair_fields(name: str, line_no: int, fields: list[str]) -> tuple[bool, int | None]:
    """(same person, fold or None) of a CSV row, its field count and values checked."""
    if len(fields) not in (3, 4):
        raise DataError(f"{name}: line {line_no} has {len(fields)} fields (path1,path2,same[,fold])")
    value = fields[2].lower()
    if value not in _TRUE | _FALSE:
        raise DataError(f"{name}: line {line_no}: same is {clip(fields[2], 20)!r}, not 1/0, true/false, "
                        "yes/no or same/different")
    if len(fields) == 3:
        return value in _TRUE, None
    if not (_ASCII_INT.fullmatch(fields[3]) and len(fields[3]) <= 20 and abs(int(fields[3])) <= _INT64):
        raise DataError(f"{name}: line {line_no}: fold {clip(fields[3], 20)!r} is not a whole number "
                        "(ASCII digits, within 64 bits)")
    return value in _TRUE, int(fields[3])


class _PathLookup:
    """A pairs CSV's image paths, resolved under the images root: each path checked once however
    many pairs name it, a missing one noted (every mention, for the count), one outside the root
    or that is no path refused."""

    def __init__(self, name: str, root: Path, allow_outside_root: bool):
        self.name, self.root, self.base = name, root, root.resolve()
        self.allow_outside_root = allow_outside_root
        self.missing: list[str] = []
        self.seen: dict[str, tuple[Path, bool]] = {}

    def __call__(self, raw: str, line_no: int) -> Path:
        if raw not in self.seen:
            self.seen[raw] = self.resolve(raw, line_no)
        full, is_missing = self.seen[raw]
        if is_missing:
            self.missing.append(raw)
        return full

    def resolve(self, raw: str, line_no: int) -> tuple[Path, bool]:
        name = self.name
        parts = raw.replace("\\", "/").split("/")
        if "\0" in raw or any(len(p.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for p in parts):
            raise DataError(f"{name}: line {line_no}: {clip(raw, 60)!r} is not a path (a NUL byte, or a "
                            f"name over {MAX_NAME_BYTES} bytes)")
        try:
            full = (self.root / raw).resolve()
            if not self.allow_outside_root and not full.is_relative_to(self.base):
                raise DataError(f"{name}: line {line_no}: {clip(raw, 60)!r} is outside {self.root}; allow it "
                                "with --allow-outside-root")
            return full, not full.is_file()
        except OSError as exc:  # a path too long for the system, a loop of links
            raise DataError(f"{name}: line {line_no}: {clip(raw, 60)!r} cannot be looked up "
                            f"({exc.strerror or clip(exc, 60)})") from None


# ------------------------------------------------------------------------------ shared
def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{display_name(path)}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{display_name(path)}: cannot be read ({exc.strerror or exc})") from None


def _file_pair_set(path: Path, kind: str, root: Path, pairs: list, flags: list, fold_ids) -> PairSet:
    if not pairs or len(pairs) > MAX_PAIRS:
        raise DataError(f"{display_name(path)}: {len(pairs)} pairs (a set holds 1 to {MAX_PAIRS:,})")
    index: dict[Path, int] = {}
    images: list[PairImage] = []
    ends = []
    for two in pairs:
        for p in two:
            if p not in index:
                index[p] = len(images)
                try:
                    key = f"hr:{file_digest(p)}"
                except OSError as exc:
                    raise DataError(f"{clip(_relative(p, root), 60)}: cannot be read "
                                    f"({exc.strerror or clip(exc, 60)})") from None
                images.append(PairImage(key, _relative(p, root), _face_loader(p)))
            ends.append(index[p])
    ends = np.array(ends).reshape(-1, 2)
    return PairSet(set_name(path), path, kind, images, ends[:, 0], ends[:, 1], np.array(flags, dtype=bool),
                   fold_ids, root)


def _face_loader(p: Path):
    return lambda: load_face(p)


def _relative(p: Path, root: Path) -> str:
    for base in (root, root.resolve()):
        try:
            return str(p.relative_to(base))
        except ValueError:
            continue
    return str(p)


__all__ = ["MAX_BIN_BYTES", "PairImage", "PairSet", "load_pair_set", "read_bin", "read_pairs_csv",
           "read_pairs_txt", "set_name"]
