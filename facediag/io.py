"""Atomic file writes (a reader, or a Ctrl-C, never sees half a file) and reading a user's
text file (a report, a suite) with one clear line for every way it can be wrong."""
from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from facediag.errors import FacediagError, WriteError


def read_user_text(path: str | Path, what: str) -> str:
    """The text of a file the user named as ``what`` ("report", "suite"): FacediagError, one
    line, when it is missing, a folder, unreadable or not UTF-8 text."""
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise FacediagError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise FacediagError(f"{path}: is a folder, not a {what} file") from None
    except UnicodeDecodeError:
        raise FacediagError(f"{path}: not a text file (a {what} is text)") from None
    except OSError as exc:
        raise FacediagError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; a report or checkpoint should get the mode a plain open() gives.
_FILE_MODE = 0o666 & ~_umask()

# atomic_save's temp file for ``dir/name`` is ``dir/.name.<random>.tmp``. mkstemp's random part
# is drawn from these characters, never a dot, so the pattern of one target can match no
# other target's temp files (``.a.pth.x.<random>.tmp`` belongs to ``a.pth.x``, not ``a.pth``).
_TEMP_SUFFIX = ".tmp"
_TEMP_RANDOM = "[a-z0-9_]+"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` via a temporary file and rename (see atomic_save for ``durable``)."""
    return atomic_save(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# A write that fails for one of these is the environment's fault, not facediag's: one line, exit 2.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _environment_fault(exc: BaseException, folder: Path) -> int | None:
    """The errno of a write the environment refused, else None. torch.save's C++ writer says only
    "file write failed" (a RuntimeError): that is a full disk when the folder has no room left."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in _NO_ROOM else None
    if isinstance(exc, RuntimeError) and "write failed" in str(exc):
        try:
            st = os.statvfs(folder)
        except OSError:
            return None
        return errno.ENOSPC if st.f_bavail * st.f_frsize < 2**20 else None
    return None


def atomic_save(path: str | Path, write_fn, durable: bool = True) -> Path:
    """Call ``write_fn(tmp_path)`` (e.g. torch.save) then move the result into place.

    ``durable`` syncs the file to disk before the rename, so a crash leaves the old file or
    the whole new one. ``durable=False`` skips it: for caches, whose entries are validated
    on read and recomputed when bad, the sync costs more than it saves.

    A disk that is full, over quota or read-only is WriteError (bad input's one line, exit 2):
    the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        _raise_if_environment(exc, path)
        raise
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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _raise_if_environment(exc, path)
        raise
    return path


def _raise_if_environment(exc: BaseException, path: Path) -> None:
    code = _environment_fault(exc, path.parent)
    if code is not None:
        raise WriteError(code, f"{path}: cannot be written ({os.strerror(code).lower()}); nothing was left "
                               "half-written") from None


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Delete the temp files atomic_save left beside ``target`` when a write was killed
    (SIGKILL, power loss: no chance to clean up). Returns the paths removed.

    Only regular files in ``target``'s directory named exactly as atomic_save names that
    target's temps; never ``target`` itself, another target's temps, a directory or a link.
    Call it only where nothing else can be writing ``target`` (at the start of the run that
    owns it): a temp being written at that moment would be taken away from its writer."""
    target = Path(target)
    pattern = re.compile(re.escape(_temp_prefix(target)) + _TEMP_RANDOM + re.escape(_TEMP_SUFFIX))
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no directory yet (nothing to clean) or not readable
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:  # gone meanwhile, or not ours to delete: leave it
                continue
            removed.append(Path(entry.path))
    return removed
