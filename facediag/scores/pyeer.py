"""pyeer's score lists: a genuine file and an impostor file, one score per line.

pyeer's ``geteerinf -g GENUINE -i IMPOSTOR`` reads each line as ``float(line.strip().split(' ')[-1])``:
the last space-separated field is the score (anything before it is ignored), and an empty line is
an error. This reader reads them the same way, with the line named when one is not a score.
``facediag scores --format pyeer --out DIR`` writes DIR/genuine_scores.txt and
DIR/impostor_scores.txt. The lists say nothing of probes or galleries: verification only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facediag.errors import DataError
from facediag.scores.bob import score_text
from facediag.scores.chunks import ScoreBlock, ScoreChunk, parse_scores, read_blocks

GENUINE_FILE, IMPOSTOR_FILE = "genuine_scores.txt", "impostor_scores.txt"


def list_paths(path: Path, impostors: Path | None = None) -> tuple[Path, Path]:
    """(genuine, impostor) lists: a folder holding the two default names, or a genuine list and
    ``impostors``."""
    path = Path(path)
    if impostors is not None:
        return path, Path(impostors)
    if path.is_dir():
        return path / GENUINE_FILE, path / IMPOSTOR_FILE
    raise DataError(f"{path}: pyeer's scores are two lists: give the impostor list with --impostors, or a "
                    f"folder holding {GENUINE_FILE} and {IMPOSTOR_FILE}")


def write_lists(genuine, impostor, template_subjects: np.ndarray, blocks: Iterable[ScoreBlock]) -> int:
    """Each comparison's score into the open text file ``genuine`` or ``impostor``."""
    n = 0
    templates = np.asarray(template_subjects)
    for block in blocks:
        for subject, row in zip(block.subjects, block.scores):  # a row at a time: a block's text is large
            same = templates == subject
            text = score_text(row)
            for f, part in ((genuine, text[same]), (impostor, text[~same])):
                if len(part):
                    f.write("\n".join(part) + "\n")
            n += len(row)
    return n


class PyeerLists:
    """A genuine list and an impostor list, read a chunk at a time (re-readable)."""

    fmt = "pyeer"
    has_probes = False

    def __init__(self, genuine: Path, impostor: Path):
        self.genuine, self.impostor = Path(genuine), Path(impostor)
        self.paths = (self.genuine, self.impostor)
        self.probes = self.entries = self.identities = None
        self.ignored = self.nan = 0

    def chunks(self) -> Iterator[ScoreChunk]:
        for path, is_genuine in ((self.genuine, True), (self.impostor, False)):
            what = f"pyeer {'genuine' if is_genuine else 'impostor'} score list"
            for first, lines in read_blocks(path, what):
                fields = [line.strip().split(" ")[-1] for line in lines]
                if "" in fields:
                    no = first + fields.index("")
                    raise DataError(f"{path}: line {no} is empty (pyeer reads a score on every line)")
                numbers = range(first, first + len(fields))
                yield ScoreChunk(parse_scores(fields, numbers, path), np.full(len(fields), is_genuine))
