"""How a value reads in every report, line and table: the one formatting of metric values, and
of names and texts from outside (file names, error messages) quoted in a one-line message."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def format_value(value: Any) -> str:
    """A metric or evidence value as text: rates as 0.934 everywhere, counts with separators."""
    if hasattr(value, "tolist"):
        value = value.tolist()  # numpy values: format like what they become in JSON
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        mag = abs(value)
        if mag == 0:
            return "0"
        if mag >= 1000:
            return f"{value:,.0f}"
        if mag >= 100:
            return f"{value:.1f}"
        if mag >= 10:
            return f"{value:.2f}"
        if mag >= 0.1:
            return f"{value:.3f}"
        if mag >= 1e-4:
            # Three significant digits: a false-accept rate of 0.0012 must not read as 0.001.
            return f"{value:.{2 - math.floor(math.log10(mag))}f}"
        return f"{value:.2e}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(format_value(v) for v in value[:6])
        return f"[{shown}{', …' if len(value) > 6 else ''}]"
    return str(value)


def clip(text, limit: int = 80) -> str:
    """Any text as one printable line of at most ``limit`` characters."""
    text = str(text)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def display_name(path) -> str:
    """A file's name for a one-line message: control characters escaped."""
    name = Path(path).name
    return name if name.isprintable() else repr(name)[1:-1]


def one_line(e: BaseException) -> str:
    """An exception as one printable line of at most 300 characters, for a one-line error."""
    try:
        text = str(e).strip().splitlines()
    except Exception:  # noqa: BLE001
        text = []
    line = text[0] if text else type(e).__name__
    if isinstance(e, (KeyError, IndexError, EOFError)) and text:  # "24" says nothing alone
        line = f"{type(e).__name__}: {line}"
    return (line if line.isprintable() else repr(line)[1:-1])[:300]
