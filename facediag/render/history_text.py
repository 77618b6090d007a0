"""The wording of a monitor history that every format shares: each metric's course in one row,
where diagnoses and trends began, and the stop. No rich, no matplotlib."""
from __future__ import annotations

from facediag.formatting import format_value
from facediag.metrics.catalogue import higher_is_better, info
from facediag.results.history import MonitorHistory

_BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24


def sparkline(values: list[float | None], width: int = SPARK_WIDTH) -> str:
    """The values as block characters, lowest ▁ to highest █ (a gap for a missing one); the last
    ``width`` values when there are more."""
    values = values[-width:]
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    return "".join(" " if v is None else _BARS[0 if span == 0 else round((v - low) / span * (len(_BARS) - 1))]
                   for v in values)


def metric_rows(history: MonitorHistory) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, first, last, change, worse?, sparkline) for each metric: ``worse?`` says "worse"
    when the catalogue knows the metric's direction and the last value is on its wrong side of the
    first, "" otherwise."""
    rows = []
    for name in history.metric_names:
        values = history.series(name)
        known = [v for v in values if v is not None]
        first, last = (known[0], known[-1]) if known else (None, None)
        change = None if first is None else last - first
        better = higher_is_better(name)
        worse = change is not None and better is not None and change != 0 and (change > 0) != better
        rows.append((name, format_value(first), format_value(last), _signed(change), "worse" if worse else "",
                     sparkline(values)))
    return rows


def metric_label(name: str) -> str:
    entry = info(name)
    return entry.label if entry else ""


def onset_lines(history: MonitorHistory) -> list[str]:
    """E.g. ``step 1,500: diagnosis embedding-collapse began``."""
    return [f"step {format_value(o.step)}: {o.kind} {o.id} began" for o in history.onsets]


def stop_line(history: MonitorHistory) -> str:
    stop = history.stop
    if stop is None:
        return "no stop"
    return f"stop at step {format_value(stop.step)}" + (f": {stop.reason}" if stop.reason else "")


def headline(history: MonitorHistory) -> str:
    """How many calls, over which steps."""
    n, first, last = len(history.points), history.steps[0], history.steps[-1]
    return f"{n} call{'s' if n != 1 else ''}, steps {format_value(first)}–{format_value(last)}"


def _signed(change: float | None) -> str:
    if change is None:
        return "n/a"
    return "0" if change == 0 else f"{'+' if change > 0 else '−'}{format_value(abs(change))}"
