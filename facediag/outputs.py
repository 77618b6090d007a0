"""Where a command may write: the one place that checks output paths before any work.

A run that ends by overwriting its own checkpoint, its baseline or its data has destroyed
what the user gave it; a run that finds out after ten minutes that it cannot write its
report has wasted them. ``check_outputs`` refuses both up front, with one line
(FacediagError: exit code 2), and writes nothing itself.

An output is refused when it

- IS an input file (weights, baseline weights, baseline report, suite, DSR model or
  weights, a report to re-render) -- compared by resolved path and by ``os.stat``
  device and inode, so symlinks and hard links are caught too;
- lies inside (or is) a data root: reports, plots or checkpoints written into the data
  change its fingerprint and may be indexed as faces next time;
- is a folder where a file is needed, or a file where a folder is needed (the output
  itself or any folder above it), or exists and is not a regular file (a device, a FIFO,
  a socket: a file output is a regular file or a new path);
- cannot be written: its nearest existing folder refuses a new file (probed for real,
  so read-only mounts and missing permissions both show), or it is an existing read-only
  file.

The embedding cache (``--cache-dir``) is an output too (:func:`out_cache`): never an input,
never inside a data root; it is not probed, since a cache that cannot be written turns
itself off.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facediag.errors import FacediagError

__all__ = ["Output", "check_outputs", "inside", "out_cache", "out_dir", "out_file", "same_file"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Output:
    """One thing a command will write: a file, or a folder with the named files in it."""

    flag: str                        # how the user named it: "--out", "--save-baseline", "-o"
    path: Path
    is_dir: bool = False
    names: tuple[str, ...] = field(default=())  # files written inside a folder output
    placement_only: bool = False     # only "never an input, never in the data" (the embedding cache)

    def files(self) -> list[Path]:
        return [self.path / n for n in self.names] if self.is_dir else [self.path]


def out_file(flag: str, path: PathLike | None) -> list[Output]:
    """A file output, or nothing when ``path`` is None (the option was not given)."""
    return [] if path is None else [Output(flag, Path(path).expanduser())]


def out_dir(flag: str, path: PathLike | None, names: Iterable[str] = ()) -> list[Output]:
    """A folder output and the files written in it, or nothing when ``path`` is None."""
    return [] if path is None else [Output(flag, Path(path).expanduser(), True, tuple(names))]


def out_cache(path: PathLike | None, use_cache: bool = True) -> list[Output]:
    """The embedding cache folder a user named (``--cache-dir``), or nothing when not given or
    not used (``--no-cache``): held to the input and data-root rules, like every output."""
    if path is None or not use_cache or str(path) == "":
        return []
    return [Output("--cache-dir", Path(path).expanduser(), True, placement_only=True)]


@dataclass(frozen=True)
class _Known:
    """An input, resolved once: its flag, the path as given, where it really is, and its inode."""

    flag: str
    path: Path
    real: Path
    ident: tuple[int, int] | None

    @classmethod
    def of(cls, flag: str, path: PathLike) -> _Known:
        path = Path(path).expanduser()
        return cls(flag, path, _real(path), _ident(path))

    def matches(self, p: Path) -> bool:
        ident = _ident(p)
        return _real(p) == self.real or (ident is not None and ident == self.ident)


def check_outputs(outputs: Iterable[Output], *,
                  inputs: Iterable[tuple[str, PathLike | Sequence[PathLike] | None]] = (),
                  roots: Iterable[tuple[str, PathLike | Sequence[PathLike] | None]] = ()) -> None:
    """Raise FacediagError (one line) unless every output can be written without harm.

    ``inputs``: (flag, path) of files the command reads; ``roots``: (flag, path) of data
    folders it reads. A path may be None (not given) or a list (repeatable option).
    """
    files = [_Known.of(flag, p) for flag, p in _flatten(inputs)]
    folders = [_Known.of(flag, p) for flag, p in _flatten(roots)]
    for out in outputs:
        _check_one(out, files, folders)


def _check_one(out: Output, files: list[_Known], folders: list[_Known]) -> None:
    shown = f"{out.flag} {out.path}"
    # 1. never an input: the output itself, or any file written in an output folder
    for target in [out.path, *out.files()]:
        for known in files:
            if known.matches(target):
                what = shown if target == out.path else f"{shown} (its {target.name})"
                raise FacediagError(f"{what} would overwrite the input {_noun(known.flag)} {known.path} "
                                    f"({known.flag}); choose another output")
    # 2. never inside the data
    for known in folders:
        if any(known.matches(a) for a in _self_and_parents(out.path)):
            where = "is" if known.matches(out.path) else "is inside"
            raise FacediagError(f"{shown} {where} the data root {known.path} ({known.flag}): writing there "
                                "would change the data; choose an output outside it")
    # 3. the right kind of thing, and writable, before the run rather than after it
    if out.placement_only:
        return
    if out.is_dir:
        if out.path.exists() and not out.path.is_dir():
            raise FacediagError(f"{shown} is a file, not a folder; give a folder for the reports")
        for f in out.files():
            if f.is_dir():
                raise FacediagError(f"{shown}: {f} is a folder where the report file goes; move it away "
                                    "or choose another --out")
            _refuse_special(f"{shown}: {f}", f)
            _refuse_read_only(shown, f)
        _refuse_unwritable(shown, out.path if out.path.is_dir() else out.path.parent)
    else:
        if out.path.is_dir():
            raise FacediagError(f"{shown} is a folder, not a file; give a file name")
        _refuse_special(shown, out.path)
        _refuse_read_only(shown, out.path)
        _refuse_unwritable(shown, out.path.parent)


def _refuse_special(shown: str, f: Path) -> None:
    """An existing output that is not a regular file (a device node, a FIFO, a socket) would be
    replaced by one, or block a write: refused."""
    try:
        mode = os.stat(f).st_mode
    except (OSError, ValueError):  # not there (or a dangling link): a new path
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise FacediagError(f"{shown} is {kind}, not a regular file; give a new file name or a regular file")


def _refuse_read_only(shown: str, f: Path) -> None:
    if f.is_file() and not os.access(f, os.W_OK):
        raise FacediagError(f"{shown}: {f} is read-only; make it writable or choose another output")


def _refuse_unwritable(shown: str, folder: Path) -> None:
    """The nearest existing folder above ``folder`` (or itself) must take a new file."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise FacediagError(f"{shown}: {existing} is a file, not a folder, so nothing can be written under it")
    try:
        fd, probe = tempfile.mkstemp(prefix=".facediag-write-test-", dir=existing)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise FacediagError(f"{shown}: cannot write in {existing} ({reason.lower()})") from None
    os.close(fd)
    os.unlink(probe)


def data_paths(fields) -> tuple[list, list]:
    """(inputs, roots) named by data options or SessionConfig fields (a mapping of either), as
    check_outputs takes them: the DSR files, and the data roots nothing may be written into."""
    inputs = [("--dsr", fields.get("dsr")), ("--dsr-weights", fields.get("dsr_weights")),
              ("--groups", fields.get("groups"))]
    roots = [(f"--{k.replace('_', '-')}", fields.get(k)) for k in ("data", "gallery_root", "probe_root", "train_root",
                                                                    "distractors", "dev_data", "dev_gallery_root",
                                                                    "dev_probe_root")]
    return inputs, roots


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: same resolved path, or same device and inode
    (symlinks and hard links)."""
    return _Known.of("", a).matches(Path(b).expanduser())


def inside(path: PathLike, root: PathLike) -> bool:
    """Whether ``path`` is ``root`` or lies under it, through symlinks and bind mounts too."""
    known = _Known.of("", root)
    return any(known.matches(a) for a in _self_and_parents(Path(path).expanduser()))


def _noun(flag: str) -> str:
    """'--baseline-report' -> 'baseline report'; 'REPORT_JSON' -> 'report json'."""
    return flag.lstrip("-").replace("-", " ").replace("_", " ").lower()


def _flatten(items) -> list[tuple[str, Path]]:
    flat = []
    for flag, value in items:
        if value is None:
            continue
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and str(v) != "":
                flat.append((flag, Path(v)))
    return flat


def _real(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it as written
        return p.absolute()


def _ident(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _self_and_parents(p: Path) -> list[Path]:
    real = _real(p)
    return [real, *real.parents]
