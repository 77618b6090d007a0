"""MATLAB .mat lists, as the low-resolution benchmarks release them (TinyFace, QMUL-SurvFace).

Read with ``scipy.io.loadmat`` (MATLAB v5, the format those releases use), and only after the
file's own headers (``scipy.io.whosmat``) say the wanted variables are there, of a sane size. A
v7.3 file (HDF5), a missing key, a struct or object array where a list belongs, a declared size
no benchmark list has, or bytes scipy cannot parse: one :class:`~facediag.errors.DataError`
naming the file, before anything is embedded. loadmat never runs code from a file (it builds
numpy arrays only), so the hostile cases are about size and shape.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from facediag.errors import DataError

# The largest list a benchmark releases is QMUL-SurvFace's negative pairs (about 5,000 rows) or
# TinyFace's distractor listing (about 153k); a declared size far beyond that is not a list.
MAX_ELEMENTS = 5_000_000
# What the variables may expand to once decompressed: a few bytes of zlib can declare gigabytes.
MAX_BYTES = 256 * 2**20
_COMPRESSED = 15  # miCOMPRESSED, the v5 element type of a zlib-compressed variable


def _scipy_io():
    import scipy.io  # scipy.io pulls in scipy.sparse: loaded only by the commands that read .mat lists
    return scipy.io


def _declared(path: Path, scipy_io) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each variable's declared shape and MATLAB class, from the headers alone (nothing allocated)."""
    with path.open("rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head or head[:8] == b"\x89HDF\r\n\x1a\n":
        raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file; save it as v5 (MATLAB: save(..., '-v7')) "
                        "as the benchmark releases are")
    try:
        return {name: (tuple(int(n) for n in shape), cls) for name, shape, cls in scipy_io.whosmat(str(path))}
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, ... on malformed bytes
        raise DataError(f"{path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc})") from None


def _check_expansion(path: Path) -> None:
    """Walk the v5 file's top-level elements, inflating the compressed ones in bounded steps, and
    refuse a file whose variables would expand beyond MAX_BYTES (a zlib bomb) before scipy does."""
    total = 0
    with path.open("rb") as f:
        header = f.read(128)
        order = "<" if header[126:128] == b"IM" else ">"
        while total <= MAX_BYTES:
            tag = f.read(8)
            if len(tag) < 8:
                return
            kind, nbytes = np.frombuffer(tag, dtype=f"{order}u4")
            if kind != _COMPRESSED:
                total += int(nbytes)
                f.seek(int(nbytes) + (-int(nbytes)) % 8, 1)  # uncompressed elements are padded to 8 bytes
                continue
            inflate, left = zlib.decompressobj(), int(nbytes)
            while left and total <= MAX_BYTES:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
                total += len(inflate.decompress(chunk, MAX_BYTES + 1 - total))
                while inflate.unconsumed_tail and total <= MAX_BYTES:
                    total += len(inflate.decompress(inflate.unconsumed_tail, MAX_BYTES + 1 - total))
    raise DataError(f"{path}: its variables expand beyond {MAX_BYTES // 2**20} MB, more than any benchmark list")


def read_mat(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB v5 file, checked against its headers before they are read.

    Parameters
    ----------
    path : str or Path
        The .mat file.
    keys : tuple of str
        The variables the caller needs; every one must be present.

    Returns
    -------
    dict of str to numpy.ndarray
        Each variable as scipy.io.loadmat gives it (``squeeze_me=False``).

    Raises
    ------
    DataError
        A v7.3 or malformed file, a missing key, or a declared size beyond ``MAX_ELEMENTS``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    scipy_io = _scipy_io()
    declared = _declared(path, scipy_io)
    try:
        _check_expansion(path)
    except (zlib.error, ValueError) as exc:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in keys if k not in declared]
    if missing:
        raise DataError(f"{path}: no variable {', '.join(map(repr, missing))} "
                        f"(it has {', '.join(sorted(declared)) or 'none'})")
    for key in keys:
        shape, cls = declared[key]
        if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
            raise DataError(f"{path}: variable {key!r} declares {'×'.join(map(str, shape))} elements, "
                            f"more than any benchmark list ({MAX_ELEMENTS:,})")
        if cls in ("struct", "object", "function_handle", "opaque", "sparse"):
            raise DataError(f"{path}: variable {key!r} is a MATLAB {cls}, not a list")
    try:
        return scipy_io.loadmat(str(path), variable_names=list(keys), squeeze_me=False,
                                chars_as_strings=True, mat_dtype=False, verify_compressed_data_integrity=True)
    except (MemoryError, Exception) as exc:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc})") from None


def strings(path: str | Path, array: np.ndarray, key: str) -> list[str]:
    """A cell array of strings (or a char matrix) as a flat list of str; DataError on anything else."""
    if array.dtype.kind in "US":  # a char matrix: one row a string
        return [str(s).strip() for s in np.atleast_1d(array).ravel()]
    if array.dtype != object or array.dtype.names:
        raise DataError(f"{path}: variable {key!r} is {array.dtype} data, not a list of file names")
    out = []
    for cell in array.ravel():
        item = np.asarray(cell)
        if item.dtype.kind not in "US" or item.size > 1:
            raise DataError(f"{path}: variable {key!r} holds a {item.dtype} cell of shape {item.shape}, "
                            "not a file name")
        out.append(str(item.ravel()[0]).strip() if item.size else "")
    return out


def integers(path: str | Path, array: np.ndarray, key: str) -> np.ndarray:
    """A numeric vector of whole numbers (identities, labels) as int64; DataError on anything else."""
    if array.dtype.kind not in "iuf" or array.dtype.names:
        raise DataError(f"{path}: variable {key!r} is {array.dtype} data, not numbers")
    if array.ndim > 2 or (array.ndim == 2 and min(array.shape) > 1):
        raise DataError(f"{path}: variable {key!r} has shape {array.shape}, not a vector")
    flat = array.ravel()
    if not np.all(np.isfinite(flat)) or not np.all(flat == np.round(flat)):
        raise DataError(f"{path}: variable {key!r} holds values that are not whole numbers")
    return flat.astype(np.int64)


__all__ = ["MAX_ELEMENTS", "integers", "read_mat", "strings"]
