"""The score-file formats by name: where each is written, writing one atomically, and opening one
to read (its format named, or told from the file).

| format  | files                                      | comparisons                          |
|---------|--------------------------------------------|--------------------------------------|
| bob4    | PATH                                       | claimed_id real_id test_label score  |
| bob5    | PATH                                       | claimed_id model_label real_id test_label score |
| bob-csv | PATH (.csv)                                | probe_key,…,bio_ref_subject_id,score |
| openbr  | PATH.mtx and PATH.mask beside it           | queries × targets float32 + mask     |
| pyeer   | DIR/genuine_scores.txt, DIR/impostor_scores.txt | one score per line              |
"""
from __future__ import annotations

import csv
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facediag.errors import DataError, FacediagError
from facediag.io import atomic_save
from facediag.scores.bob import BobColumnsFile, BobCsvFile, split_fields, write_columns, write_csv
from facediag.scores.chunks import ScoreBlock, read_lines
from facediag.scores.openbr import OpenBRFile, mask_path, write_matrices
from facediag.scores.pyeer import GENUINE_FILE, IMPOSTOR_FILE, PyeerLists, list_paths, write_lists

FORMATS = ("bob4", "bob5", "bob-csv", "openbr", "pyeer")
DESCRIPTIONS = {
    "bob4": "bob.bio.base 4-column: claimed_id real_id test_label score",
    "bob5": "bob.bio.base 5-column: claimed_id model_label real_id test_label score",
    "bob-csv": "bob.bio.base CSV: probe_key, probe_reference_id, probe_subject_id, bio_ref_reference_id, "
               "bio_ref_subject_id, score",
    "openbr": "OpenBR BEE matrices: .mtx (queries × targets float32) and .mask (0xff match, 0x7f non-match, "
              "0x00 ignored)",
    "pyeer": f"pyeer lists: {GENUINE_FILE} and {IMPOSTOR_FILE}, one score per line",
}


def require_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise FacediagError(f"unknown score format {fmt!r}; choose from {', '.join(FORMATS)}")


def output_paths(path: str | Path, fmt: str) -> list[Path]:
    """The files ``write_scores`` writes for ``--out PATH``: the file itself; OpenBR's matrix and
    its mask (PATH must end in .mtx); pyeer's two lists in the folder PATH."""
    require_format(fmt)
    path = Path(path).expanduser()
    if fmt == "openbr":
        if path.suffix != ".mtx":
            raise FacediagError(f"--out {path}: OpenBR's similarity matrix is a .mtx file (its .mask is written "
                                "beside it)")
        return [path, mask_path(path)]
    if fmt == "pyeer":
        return [path / GENUINE_FILE, path / IMPOSTOR_FILE]
    return [path]


def _atomic_all(paths: list[Path], write: Callable[[list[str]], None], tmps: tuple = ()) -> None:
    """``write`` the temporary files of every path, then move each into place (facediag.io's
    atomic_save, nested: nothing is left half-written when the writing fails)."""
    if not paths:
        write(list(tmps))
        return
    atomic_save(paths[0], lambda tmp: _atomic_all(paths[1:], write, (*tmps, tmp)))


def write_scores(path: str | Path, fmt: str, template_subjects: np.ndarray, n_probes: int,
                 blocks: Iterable[ScoreBlock]) -> tuple[list[Path], int]:
    """Every probe of ``blocks`` against every template, in ``fmt``, streamed block by block into
    the files of ``output_paths`` (written atomically). Returns (paths, comparisons written)."""
    paths = output_paths(path, fmt)
    subjects = np.asarray(template_subjects).astype(str)
    written = {}

    def write(tmps: list[str]) -> None:
        binary = fmt == "openbr"
        with ExitStack() as stack:
            files = [stack.enter_context(open(t, "wb") if binary else open(t, "w", encoding="utf-8", newline="\n"))
                     for t in tmps]
            if fmt in ("bob4", "bob5"):
                written["n"] = write_columns(files[0], int(fmt[-1]), subjects, blocks)
            elif fmt == "bob-csv":
                written["n"] = write_csv(files[0], subjects, blocks)
            elif fmt == "openbr":
                written["n"] = write_matrices(files[0], files[1], subjects, n_probes, blocks)
            else:
                written["n"] = write_lists(files[0], files[1], subjects, blocks)

    _atomic_all(paths, write)
    return paths, written["n"]


def detect_format(path: Path, impostors: Path | None = None, mask: Path | None = None) -> str:
    """A score file's format from its name or its first line: a folder (or --impostors) is pyeer's,
    a .mtx (or --mask) OpenBR's, a .csv bob's CSV; else 4 or 5 fields on the first line that is not
    empty or a # comment are bob's 4- or 5-column format."""
    path = Path(path)
    if path.is_dir() or impostors is not None:
        return "pyeer"
    if path.suffix == ".mtx" or mask is not None:
        return "openbr"
    if ".csv" in path.suffixes:  # bob's own test (score.load.iscsv)
        return "bob-csv"
    for no, text in read_lines(path, "score file"):
        if not text.strip() or text.strip().startswith("#"):
            continue
        try:
            fields = len(split_fields(text))
        except csv.Error as exc:
            raise DataError(f"{path}: line {no}: {exc}") from None
        if fields in (4, 5):
            return f"bob{fields}"
        if fields == 1:
            raise DataError(f"{path}: one score a line, as pyeer's lists: give --format pyeer with --impostors FILE")
        raise DataError(f"{path}: line {no} has {fields} fields: not a bob 4- or 5-column file; give --format "
                        f"({', '.join(FORMATS)})")
    raise DataError(f"{path}: empty: no comparison in it")


def open_scores(path: str | Path, fmt: str | None = None, *, impostors: str | Path | None = None,
                mask: str | Path | None = None):
    """A score file (or OpenBR's pair, pyeer's lists) ready to be read a chunk at a time:
    ``chunks()``, re-readable. ``fmt`` None: told from the file (detect_format)."""
    path = Path(path)
    if fmt is not None:
        require_format(fmt)
    if impostors is not None and fmt not in (None, "pyeer"):
        raise FacediagError("--impostors is pyeer's impostor list: it goes with --format pyeer")
    if mask is not None and fmt not in (None, "openbr"):
        raise FacediagError("--mask is OpenBR's mask: it goes with --format openbr")
    if not path.exists():
        raise DataError(f"{path}: no such score file")
    fmt = fmt or detect_format(path, impostors, mask)
    if fmt in ("bob4", "bob5"):
        return BobColumnsFile(path, int(fmt[-1]))
    if fmt == "bob-csv":
        return BobCsvFile(path)
    if fmt == "openbr":
        return OpenBRFile(path, None if mask is None else Path(mask))
    return PyeerLists(*list_paths(path, None if impostors is None else Path(impostors)))


def input_paths(path: str | Path, fmt: str | None = None, *, impostors=None, mask=None) -> list[Path]:
    """Every file a score file's reading opens (for the output checks: none may be overwritten)."""
    path = Path(path)
    found = [path, *(p for p in (impostors, mask) if p is not None)]
    if mask is None and (fmt == "openbr" or (fmt is None and path.suffix == ".mtx")):
        found.append(mask_path(path))
    if impostors is None and path.is_dir():
        found += [path / GENUINE_FILE, path / IMPOSTOR_FILE]
    return [Path(p) for p in found]
