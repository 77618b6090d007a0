"""The monitor's history file: JSON lines, one per call, appended whole.

Each line is the record of one call (``MonitorResult.record()``): ``facediag_monitor`` (the
record's format version), ``step``, ``time``, ``metrics``, ``statuses``, ``diagnoses``,
``trends``, ``should_stop`` and ``reason``. A line is written by one ``write`` of the whole
encoded line to a file opened for appending, then flushed to disk, so a killed process leaves at
worst its own last line torn, never an earlier one; a torn last line (no newline) is closed off
before the next record is appended, and a reader skips it (read_history).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from facediag.errors import FacediagError
from facediag.io import read_user_text

_RECORD_START = '{"facediag_monitor"'  # how every line append_record writes begins


def append_record(path: str | Path, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created with its folder if need be)."""
    path = Path(path)
    line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            line = "\n" + line  # a torn line from a killed writer stays alone on its line
        data = line.encode("utf-8")
        written = os.write(fd, data)
        if written != len(data):  # a short write to a regular file: the disk is full
            raise FacediagError(f"{path}: the monitor's history line could not be written whole (disk full?)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def read_history(path: str | Path) -> list[dict]:
    """The records of a history file, in order. A torn record (a line that begins as a record and
    does not parse: a writer killed mid-line) is skipped; any other line that is not a record is
    refused in one line naming its number."""
    records = []
    for number, line in enumerate(read_user_text(path, "monitor history").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if line.startswith(_RECORD_START):
                continue
            raise FacediagError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(record, dict) or "facediag_monitor" not in record:
            raise FacediagError(f"{path}:{number}: not a facediag monitor record")
        records.append(record)
    return records
