"""What every saved result shares: the schema version, strict JSON, atomic saving, and reading
a saved result back as a dict. The loader that turns that dict into a result by its ``kind``
lives in :mod:`facediag.results`, the package that imports every kind, so no kind imports it.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from facediag.errors import FacediagError
from facediag.io import atomic_write_text, read_user_text

SCHEMA_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def json_default(obj):
    """numpy scalars/arrays and Paths appear in metrics and data; JSON gets plain values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class Result:
    """Mixin: a result is a dict (``as_dict``) written as strict JSON, atomically."""

    def as_dict(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=json_default, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json())


def load_result_dict(path: str | Path) -> dict[str, Any]:
    """A saved result as a dict: one clear line when it is missing, not JSON or not an object."""
    path = Path(path)
    text = read_user_text(path, "report")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FacediagError(f"{path}: not a JSON report ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise FacediagError(f"{path}: not a facediag report (a JSON {type(data).__name__}, not an object)")
    return data
