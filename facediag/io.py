"""Atomic file writes: a reader (or a Ctrl-C) never sees half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; a report or checkpoint should get the mode a plain open() gives.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` via a temporary file and rename (see atomic_save for ``durable``)."""
    return atomic_save(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | Path, write_fn, durable: bool = True) -> Path:
    """Call ``write_fn(tmp_path)`` (e.g. torch.save) then move the result into place.

    ``durable`` syncs the file to disk before the rename, so a crash leaves the old file or
    the whole new one. ``durable=False`` skips it: for caches, whose entries are validated
    on read and recomputed when bad, the sync costs more than it saves."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
