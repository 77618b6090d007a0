"""bob.bio.base's score files: 4-column, 5-column and CSV, as bob.bio.base.score.load reads them.

- 4 columns, space-separated: ``claimed_id real_id test_label score``;
- 5 columns: ``claimed_id model_label real_id test_label score``;
- CSV (bob's CSVScoreWriter): a header, then one row per comparison; bob reads the columns
  ``probe_subject_id``, ``bio_ref_subject_id``, ``score`` and ``probe_key`` (the probe's label).

A comparison is genuine when the claimed identity is the real one (``claimed_id == real_id``;
CSV: ``bio_ref_subject_id == probe_subject_id``). bob's loader splits a line with Python's csv
reader on single spaces (a field with a space in it is double-quoted) and reads the last field
as the score; older versions skipped empty lines and lines starting with ``#``, and so does this
reader. For the CMC, bob groups comparisons by probe: the test label (CSV: ``probe_key``).

Written scores are the float32 cosines exactly (the shortest decimal that reads back as the same
double), so a file read back gives the metrics of the scores themselves.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facediag.errors import DataError
from facediag.scores.chunks import CHUNK_ROWS, Labels, ScoreBlock, ScoreChunk, parse_scores, read_blocks

COLUMNS = {4: ("claimed_id", "real_id", "test_label", "score"),
           5: ("claimed_id", "model_label", "real_id", "test_label", "score")}
CSV_HEADER = ("probe_key", "probe_reference_id", "probe_subject_id", "bio_ref_reference_id", "bio_ref_subject_id",
              "score")
CSV_REQUIRED = ("probe_subject_id", "bio_ref_subject_id", "score")
# The probe's name (bob's CMC groups by it) and the gallery entry's, first found first.
CSV_PROBE_LABEL = ("probe_key", "probe_reference_id", "probe_template_id")
CSV_ENTRY_LABEL = ("bio_ref_reference_id", "bio_ref_template_id", "bio_ref_subject_id")


# ------------------------------------------------------------------------------------------ writing
def _field(name: str) -> str:
    """A name as one space-separated field: double-quoted (csv style) when it holds a space or a
    quote, is empty or starts with '#'."""
    if "\n" in name or "\r" in name:
        raise DataError(f"{name!r}: a name with a line break cannot go into a score file")
    if name and " " not in name and '"' not in name and not name.startswith("#"):
        return name
    return '"' + name.replace('"', '""') + '"'


def score_text(scores: np.ndarray) -> np.ndarray:
    """Each score as the shortest decimal that reads back as the same double (a float32 exactly)."""
    return np.asarray(scores, dtype=np.float64).astype(str)


def write_columns(f, columns: int, template_subjects: np.ndarray, blocks: Iterable[ScoreBlock]) -> int:
    """Every comparison of ``blocks`` as bob 4- or 5-column lines into the text file ``f``; returns
    the number of lines."""
    claimed = [_field(str(s)) for s in template_subjects]
    # One template per person: its model label is the person's id.
    heads = claimed if columns == 4 else [f"{c} {c}" for c in claimed]
    n = 0
    for block in blocks:
        for label, subject, row in zip(block.labels, block.subjects, block.scores):
            tail = f" {_field(str(subject))} {_field(label)} "
            f.write("".join(f"{h}{tail}{s}\n" for h, s in zip(heads, score_text(row))))
            n += len(heads)
    return n


def write_csv(f, template_subjects: np.ndarray, blocks: Iterable[ScoreBlock]) -> int:
    """Every comparison as bob's CSV score rows (header first) into the text file ``f``."""
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    refs = [str(s) for s in template_subjects]
    n = 0
    for block in blocks:
        for label, subject, row in zip(block.labels, block.subjects, block.scores):
            subject = str(subject)
            writer.writerows((label, label, subject, ref, ref, s) for ref, s in zip(refs, score_text(row)))
            n += len(refs)
    return n


# ------------------------------------------------------------------------------------------ reading
class _Columns:
    """Comparisons gathered into columns (the scores as text, parsed a chunk at a time), handed on
    as ScoreChunks."""

    def __init__(self, path: Path):
        self.path = path
        self.texts: list[str] = []     # score fields
        self.lines: list[int] = []     # the line of each
        self.genuine: list[bool] = []
        self.probe: list[int] = []
        self.entry: list[int] = []
        self.identity: list[int] = []

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, with_probes: bool = True) -> ScoreChunk:
        ints = (lambda x: np.asarray(x, dtype=np.int64)) if with_probes else (lambda x: None)
        chunk = ScoreChunk(parse_scores(self.texts, self.lines, self.path), np.asarray(self.genuine, bool),
                           ints(self.probe), ints(self.entry), ints(self.identity))
        self.__init__(self.path)
        return chunk


def split_fields(text: str) -> list[str]:
    """A line's fields as bob's reader splits them (single spaces; "double quotes" around a field
    with spaces), runs of spaces taken as one."""
    if '"' not in text:
        return [f for f in text.split(" ") if f]
    fields = next(csv.reader([text], delimiter=" ", skipinitialspace=True, strict=True), [])
    return [f for f in fields if f]


def _code(names: dict[str, int], name: str) -> int:
    """``name``'s number in ``names`` (Labels.index), a new one when first seen."""
    return names.setdefault(name, len(names))


class BobColumnsFile:
    """A bob 4- or 5-column score file, read a chunk at a time (re-readable)."""

    has_probes = True

    def __init__(self, path: Path, columns: int):
        self.path, self.columns = Path(path), columns
        self.fmt = f"bob{columns}"
        self.paths = (self.path,)
        self.probes, self.entries, self.identities = Labels(), Labels(), Labels()
        self.ignored = self.nan = 0

    def _fields(self, line: str, no: int) -> list[str] | None:
        """A line's fields, None for an empty line or a # comment; one DataError line for a line
        that is not ``columns`` fields."""
        if '"' in line:
            try:
                fields = split_fields(line)
            except csv.Error as exc:
                raise DataError(f"{self.path}: line {no}: {exc}") from None
        else:
            fields = line.split(" ")
            if len(fields) != self.columns or "" in fields:  # runs of spaces, an empty line, a wrong count
                fields = [f for f in fields if f]
        if not fields or fields[0].startswith("#"):
            return None
        if len(fields) != self.columns:
            raise DataError(f"{self.path}: line {no} has {len(fields)} field(s); a bob {self.columns}-column "
                            f"score file has {self.columns}: {' '.join(COLUMNS[self.columns])}")
        return fields

    def chunks(self) -> Iterator[ScoreChunk]:
        self.probes, self.entries, self.identities = Labels(), Labels(), Labels()
        probes, entries, identities = self.probes.index, self.entries.index, self.identities.index
        real_at, label_at, five = self.columns - 3, self.columns - 2, self.columns == 5
        out = _Columns(self.path)
        for first, lines in read_blocks(self.path, f"bob {self.columns}-column score file"):
            for no, line in enumerate(lines, first):
                fields = self._fields(line, no)
                if fields is None:
                    continue
                claimed, real = fields[0], fields[real_at]
                out.texts.append(fields[-1])
                out.lines.append(no)
                out.genuine.append(claimed == real)
                out.probe.append(_code(probes, fields[label_at]))
                # 5 columns: the model is the gallery entry (a person may have several)
                out.entry.append(_code(entries, f"{claimed} {fields[1]}" if five else claimed))
                out.identity.append(_code(identities, real))
            if len(out) >= CHUNK_ROWS:
                yield out.take()
        if len(out):
            yield out.take()


class BobCsvFile:
    """bob's CSV score file (a header naming the columns), read a chunk at a time."""

    fmt = "bob-csv"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.paths = (self.path,)
        self.probes, self.entries, self.identities = Labels(), Labels(), Labels()
        self.ignored = self.nan = 0
        self.has_probes = True  # until the header says otherwise

    def _header(self, fields: list[str], no: int) -> tuple[int, int, int, int | None, int]:
        missing = [c for c in CSV_REQUIRED if c not in fields]
        if missing:
            raise DataError(f"{self.path}: line {no}: the header has no {', '.join(missing)} column (bob's CSV "
                            f"score files have {', '.join(CSV_REQUIRED)}); found {', '.join(fields)[:200]}")
        probe_label = next((fields.index(c) for c in CSV_PROBE_LABEL if c in fields), None)
        entry_label = next(fields.index(c) for c in CSV_ENTRY_LABEL if c in fields)
        self.has_probes = probe_label is not None
        return (fields.index("probe_subject_id"), fields.index("bio_ref_subject_id"), fields.index("score"),
                probe_label, entry_label)

    def chunks(self) -> Iterator[ScoreChunk]:
        self.probes, self.entries, self.identities = Labels(), Labels(), Labels()
        probes, entries, identities = self.probes.index, self.entries.index, self.identities.index
        # one csv reader over every line, so its line count is the file's
        reader = csv.reader((line for _, lines in read_blocks(self.path, "bob CSV score file") for line in lines),
                            strict=True)
        out, cols, width = _Columns(self.path), None, 0
        try:
            for fields in reader:
                if not fields:
                    continue
                if cols is None:
                    cols, width = self._header(fields, reader.line_num), len(fields)
                    continue
                if len(fields) != width:
                    raise DataError(f"{self.path}: line {reader.line_num} has {len(fields)} field(s), the header "
                                    f"{width}")
                probe_subject, ref_subject, score, probe_label, entry_label = cols
                out.texts.append(fields[score])
                out.lines.append(reader.line_num)
                out.genuine.append(fields[probe_subject] == fields[ref_subject])
                if self.has_probes:
                    out.probe.append(_code(probes, fields[probe_label]))
                    out.entry.append(_code(entries, fields[entry_label]))
                    out.identity.append(_code(identities, fields[probe_subject]))
                if len(out) >= CHUNK_ROWS:
                    yield out.take(self.has_probes)
        except csv.Error as exc:
            raise DataError(f"{self.path}: line {reader.line_num}: not valid CSV ({exc})") from None
        if cols is None:
            raise DataError(f"{self.path}: empty: no header (bob's CSV score files start with one)")
        if len(out):
            yield out.take(self.has_probes)
