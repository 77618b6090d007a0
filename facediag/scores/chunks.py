"""What score-file readers hand out and writers take: comparisons a chunk at a time, so no file's
whole matrix is ever held.

A reader yields :class:`ScoreChunk` columns (score, genuine, and where the format says so the
probe, gallery entry and identity of each comparison as small integers, with :class:`Labels`
turning them back into the file's names). A writer takes :class:`ScoreBlock` rows: a block of
probes against every template, the probe × template scores of run-all's verification.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facediag.errors import DataError

CHUNK_ROWS = 1 << 18  # comparisons parsed before a chunk is handed on: a few MB of columns
MAX_LINE = 1 << 16    # a text line longer than this is not a score file's (a binary file read as text)


@dataclass(frozen=True, eq=False)
class ScoreChunk:
    """One chunk of comparisons as read from a file.

    ``probe``, ``entry``: index of each comparison's probe (its test label, a matrix row) and gallery
    entry (a template, a model, a matrix column) in the reader's :class:`Labels`; None when the
    format names neither (pyeer's lists). ``identity``: the probe's identity (bob's real_id), None
    where the file has none (OpenBR's matrices: the mask alone says what matches)."""

    score: np.ndarray                    # float64 [n]
    genuine: np.ndarray                  # bool [n]
    probe: np.ndarray | None = None      # int64 [n]
    entry: np.ndarray | None = None      # int64 [n]
    identity: np.ndarray | None = None   # int64 [n]

    def __len__(self) -> int:
        return len(self.score)


@dataclass(frozen=True, eq=False)
class ScoreBlock:
    """Some probes against every template: what a writer streams out, block after block."""

    labels: list[str]          # each probe's name (its file, relative to its root)
    subjects: np.ndarray       # str [b]: each probe's identity
    scores: np.ndarray         # float32 [b, S]: cosine against each template


@dataclass
class Labels:
    """Names to small integers, in the order first seen (a file read twice numbers them alike)."""

    index: dict[str, int] = field(default_factory=dict)

    def code(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.index)
        return i

    def names(self) -> list[str]:
        return list(self.index)

    def __len__(self) -> int:
        return len(self.index)


def read_lines(path: Path, what: str):
    """(line number, text) of each line of a text file, without its line end; one DataError line
    naming the line for a line that is not UTF-8, holds a NUL byte or is longer than MAX_LINE."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        no = 0
        while True:
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            no += 1
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                raise DataError(f"{path}: line {no} is longer than {MAX_LINE // 1024} KiB: not a {what}")
            if b"\0" in raw:
                raise DataError(f"{path}: line {no} holds a NUL byte: not a {what} (a binary file?)")
            try:
                text = raw.decode("utf-8-sig" if no == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}: line {no} is not UTF-8 text: not a {what}") from None
            yield no, text.rstrip("\r\n")


def parse_score(text: str, path: Path, no: int) -> float:
    """A score field as a finite float, else one DataError line naming the line."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: line {no}: score {text[:40]!r} is not a number") from None
    if not np.isfinite(value):
        raise DataError(f"{path}: line {no}: score {text!r} is not a finite number")
    return value
