"""OpenBR's similarity matrix (``.mtx``) and its mask (``.mask``), the NIST BEE matrices OpenBR's
``br -eval`` reads (openbr/core/bee.cpp, readMatrix/writeMatrix).

Both files start with four text lines: ``S2`` (a similarity matrix; ``D2``, a distance matrix,
is negated on reading), the target sigset, the query sigset, then ``MF rows cols `` (``MB`` for
the mask) followed by the int32 0x12345678 in the writer's byte order and a newline. Then the
matrix, row-major: rows are queries (probes), columns targets (templates); float32 scores, mask
bytes 0xff match (genuine), 0x7f non-match (impostor), 0x00 ignored. As OpenBR's evaluation
does, an ignored cell and a NaN score are left out (the NaNs counted). Any other mask byte, a
size that is not rows × cols of the element, a header out of shape or an infinite score is one
DataError line.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facediag.errors import DataError
from facediag.scores.chunks import CHUNK_ROWS, ScoreBlock, ScoreChunk

MAGIC = 0x12345678
MATCH, NON_MATCH, IGNORED = 0xFF, 0x7F, 0x00
# OpenBR's names when a matrix is written with no sigset (bee.h's writeSimmat/writeMask defaults).
TARGET_SIGSET, QUERY_SIGSET = "Unknown_Target", "Unknown_Query"
_ORDER = {struct.pack("<i", MAGIC): "<", struct.pack(">i", MAGIC): ">"}
_ELEMENT = {"F": "f4", "B": "u1"}


def mask_path(mtx: Path) -> Path:
    """The mask beside a similarity matrix: the same name ending in .mask."""
    return Path(mtx).with_suffix(".mask")


def header(kind: str, rows: int, cols: int, target: str = TARGET_SIGSET, query: str = QUERY_SIGSET) -> bytes:
    """The four header lines of a matrix: ``kind`` F (float32 scores) or B (mask bytes)."""
    return (b"S2\n" + target.encode() + b"\n" + query.encode() + b"\n"
            + f"M{kind} {rows} {cols} ".encode() + struct.pack("<i", MAGIC) + b"\n")


def write_matrices(mtx, mask, template_subjects: np.ndarray, n_probes: int, blocks: Iterable[ScoreBlock]) -> int:
    """The probe × template scores into the open binary files ``mtx`` and ``mask``, a block of
    rows at a time; returns the number of comparisons."""
    cols = len(template_subjects)
    mtx.write(header("F", n_probes, cols))
    mask.write(header("B", n_probes, cols))
    rows = 0
    for block in blocks:
        mtx.write(np.ascontiguousarray(block.scores, dtype="<f4").tobytes())
        same = np.asarray(block.subjects)[:, None] == np.asarray(template_subjects)[None, :]
        mask.write(np.where(same, MATCH, NON_MATCH).astype(np.uint8).tobytes())
        rows += len(block.scores)
    if rows != n_probes:  # the header promised n_probes rows
        raise ValueError(f"{rows} rows written under a header of {n_probes}")
    return rows * cols


class _Numbered:
    """Rows or columns of a matrix as the names a report uses."""

    def __init__(self, n: int, what: str):
        self.n, self.what = n, what

    def __len__(self) -> int:
        return self.n

    def name(self, i: int) -> str:
        return f"{self.what} {i}"


def read_header(path: Path, kind: str) -> tuple[int, int, int, str, bool]:
    """(header bytes, rows, cols, byte order, distance) of a BEE matrix, checked against its size."""
    what = "OpenBR similarity matrix" if kind == "F" else "OpenBR mask"
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}" + (" (give it with --mask)" if kind == "B" else "")) from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        first = f.readline(8)
        if first not in (b"S2\n", b"D2\n") or (kind == "B" and first != b"S2\n"):
            raise DataError(f"{path}: line 1 is {first[:20]!r}, not S2 (similarity)"
                            + (" or D2 (distance)" if kind == "F" else "") + f": not an {what}")
        for no in (2, 3):  # the target and query sigsets: names only
            line = f.readline(4097)
            if not line.endswith(b"\n"):
                raise DataError(f"{path}: line {no} (the {'target' if no == 2 else 'query'} sigset) does not end "
                                f"within 4 KiB: not an {what}")
        line = f.readline(256)
        size_line = line[:-5].decode("ascii", "replace").split()
        if (len(line) < 6 or not line.endswith(b"\n") or len(size_line) != 3 or size_line[0] != f"M{kind}"
                or not all(s.isdigit() for s in size_line[1:])):
            raise DataError(f"{path}: line 4 is not 'M{kind} rows cols' followed by the 4-byte magic number: "
                            f"not an {what}")
        order = _ORDER.get(line[-5:-1])
        if order is None:
            raise DataError(f"{path}: line 4: the magic number is 0x{line[-5:-1].hex()}, not 0x12345678 in either "
                            "byte order")
        offset = f.tell()
    rows, cols = int(size_line[1]), int(size_line[2])
    if rows == 0 or cols == 0:
        raise DataError(f"{path}: line 4: an empty {rows}×{cols} matrix")
    need, have = rows * cols * np.dtype(_ELEMENT[kind]).itemsize, os.path.getsize(path) - offset
    if need != have:
        raise DataError(f"{path}: {have} bytes follow the header; its {rows}×{cols} "
                        f"{'float32' if kind == 'F' else 'byte'} matrix is {need}")
    return offset, rows, cols, order, first == b"D2\n"


class OpenBRFile:
    """A similarity matrix and its mask, read a block of rows at a time (re-readable)."""

    fmt = "openbr"
    has_probes = True
    dense = True  # every row meets every column: a search wherever the mask does not ignore a cell

    def __init__(self, mtx: Path, mask: Path | None = None):
        self.mtx = Path(mtx)
        self.mask = Path(mask) if mask is not None else mask_path(self.mtx)
        self.paths = (self.mtx, self.mask)
        self._mtx = read_header(self.mtx, "F")
        self._mask = read_header(self.mask, "B")
        (_, rows, cols, _, _), (_, mrows, mcols, _, _) = self._mtx, self._mask
        if (rows, cols) != (mrows, mcols):
            raise DataError(f"{self.mask}: a {mrows}×{mcols} mask for the {rows}×{cols} matrix {self.mtx.name}")
        self.rows, self.cols = rows, cols
        self.probes, self.entries = _Numbered(rows, "row"), _Numbered(cols, "column")
        self.identities = None
        self.ignored = self.nan = 0

    def chunks(self) -> Iterator[ScoreChunk]:
        self.ignored = self.nan = 0
        (offset, rows, cols, order, distance), mask_offset = self._mtx, self._mask[0]
        step = max(1, CHUNK_ROWS // cols)
        with open(self.mtx, "rb") as fm, open(self.mask, "rb") as fk:
            fm.seek(offset)
            fk.seek(mask_offset)
            for r0 in range(0, rows, step):
                n = min(step, rows - r0)
                scores = np.frombuffer(fm.read(n * cols * 4), dtype=f"{order}f4").astype(np.float64)
                mask = np.frombuffer(fk.read(n * cols), dtype=np.uint8)
                yield self._chunk(r0, scores, mask, distance)

    def _chunk(self, r0: int, scores: np.ndarray, mask: np.ndarray, distance: bool) -> ScoreChunk:
        cols = self.cols
        bad = np.flatnonzero((mask != MATCH) & (mask != NON_MATCH) & (mask != IGNORED))
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{self.mask}: row {r0 + i // cols}, column {i % cols}: byte 0x{mask[i]:02x} is neither "
                            "0xff (match), 0x7f (non-match) nor 0x00 (ignored)")
        keep = mask != IGNORED
        self.ignored += int((~keep).sum())
        nan = keep & np.isnan(scores)
        self.nan += int(nan.sum())
        keep &= ~nan
        inf = np.flatnonzero(keep & np.isinf(scores))
        if len(inf):
            i = int(inf[0])
            raise DataError(f"{self.mtx}: row {r0 + i // cols}, column {i % cols}: the score is {scores[i]} "
                            "(not a finite number)")
        idx = np.flatnonzero(keep)
        s = scores[idx]
        return ScoreChunk(-s if distance else s, mask[idx] == MATCH, (r0 + idx // cols).astype(np.int64),
                          (idx % cols).astype(np.int64))
