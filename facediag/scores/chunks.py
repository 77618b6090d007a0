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


BLOCK_BYTES = 1 << 22  # text read, checked and decoded at a time
NEWLINE = b"\n"


def _open(path: Path, what: str):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_blocks(path: Path, what: str):
    """(number of the first line, lines) of a text file, a few MB of whole lines at a time, each
    line without its line end; one DataError line naming the line for a line that is not UTF-8,
    holds a NUL byte or is longer than MAX_LINE (a binary file read as text)."""
    with _open(path, what) as f:
        first, carry = 1, b""
        while True:
            raw = f.read(BLOCK_BYTES)
            data = carry + raw
            cut = len(data) if not raw else data.rfind(b"\n") + 1  # whole lines only, but at the end
            if not raw and not data:
                return
            block, carry = data[:cut], data[cut:]
            if len(carry) > MAX_LINE:
                no = first + block.count(NEWLINE)
                raise DataError(f"{path}: line {no} is longer than {MAX_LINE // 1024} KiB: not a {what}")
            if not block:
                continue
            lines = _decode(block, path, what, first).split("\n")
            if block.endswith(b"\n"):
                lines.pop()  # the empty string after the last line end
            if max(map(len, lines)) > MAX_LINE:
                long = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE)
                raise DataError(f"{path}: line {first + long} is longer than {MAX_LINE // 1024} KiB: not a {what}")
            yield first, lines
            first += len(lines)
            if not raw:
                return


def _decode(block: bytes, path: Path, what: str, first: int) -> str:
    """A block of whole lines as text (a BOM at the file's start dropped; \\r\\n read as \\n)."""
    nul = block.find(b"\0")
    if nul >= 0:
        no = first + block.count(NEWLINE, 0, nul)
        raise DataError(f"{path}: line {no} holds a NUL byte: not a {what} (a binary file?)")
    try:
        text = block.decode("utf-8-sig" if first == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        no = first + block.count(NEWLINE, 0, exc.start)
        raise DataError(f"{path}: line {no} is not UTF-8 text: not a {what}") from None
    return text.replace("\r\n", "\n") if "\r" in text else text


def read_lines(path: Path, what: str):
    """(line number, text) of each line of a text file (read_blocks, a line at a time)."""
    for first, lines in read_blocks(path, what):
        yield from enumerate(lines, first)


def parse_score(text: str, path: Path, no: int) -> float:
    """A score field as a finite float, else one DataError line naming the line."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: line {no}: score {text[:40]!r} is not a number") from None
    if not np.isfinite(value):
        raise DataError(f"{path}: line {no}: score {text!r} is not a finite number")
    return value


def parse_scores(texts: list[str], lines: list[int], path: Path) -> np.ndarray:
    """Score fields as finite floats (numpy parses them at once); the first that is not one is a
    DataError naming its line (``lines``: each field's line number)."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = np.array([parse_score(t, path, no) for t, no in zip(texts, lines)], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        parse_score(texts[bad[0]], path, lines[bad[0]])
    return values
