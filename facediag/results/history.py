"""A monitor's history as a result: the records of its calls, each metric over steps, where each
diagnosis and trend began, and where it said stop. What ``facediag render HISTORY.jsonl`` renders.

The records are the lines :class:`facediag.Monitor` writes (``MonitorResult.record()``); reading
the file is the monitor's own (``facediag.monitor.history.read_history``), checking each record's
shape is here, so that every renderer can trust what it draws.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from facediag.errors import FacediagError
from facediag.results.base import Result
from facediag.version import __version__

KIND = "monitor-history"
RECORD_VERSION = 1


@dataclass(frozen=True)
class MonitorPoint:
    """One call of the monitor, as its history line holds it."""

    step: int
    time: str | None
    metrics: dict[str, float | None]
    statuses: dict[str, str]
    diagnoses: list[str]
    trends: list[str]
    should_stop: bool
    reason: str | None

    def as_dict(self) -> dict:
        return {"facediag_monitor": RECORD_VERSION, "step": self.step, "time": self.time,
                "metrics": self.metrics, "statuses": self.statuses, "diagnoses": self.diagnoses,
                "trends": self.trends, "should_stop": self.should_stop, "reason": self.reason}


@dataclass(frozen=True)
class Onset:
    """A diagnosis or trend flag that appears at ``step`` and was absent at the call before."""

    step: int
    id: str
    kind: str  # "diagnosis" | "trend"


@dataclass
class MonitorHistory(Result):
    points: list[MonitorPoint]
    source: str = ""
    facediag_version: str = field(default=__version__)
    kind = KIND

    @classmethod
    def from_records(cls, records: list[dict], source: str | Path = "history") -> MonitorHistory:
        """The history of ``records`` (dicts, in file order); a record of the wrong shape is one
        line naming the record's number and what is wrong."""
        if not records:
            raise FacediagError(f"{source}: no monitor records (an empty history)")
        return cls([_point(r, f"{source}: record {n}") for n, r in enumerate(records, 1)], str(source))

    # ------------------------------------------------------------------ what renderers read
    @property
    def steps(self) -> list[int]:
        return [p.step for p in self.points]

    @property
    def metric_names(self) -> list[str]:
        """Every metric any call reported, in the order they first appear."""
        return list(dict.fromkeys(name for p in self.points for name in p.metrics))

    def series(self, name: str) -> list[float | None]:
        """``name`` at each call (None where that call did not report it or it was not finite)."""
        return [_finite(p.metrics.get(name)) for p in self.points]

    @property
    def onsets(self) -> list[Onset]:
        """Where each diagnosis and trend flag began (again, after an absence), in step order."""
        out, before = [], (set(), set())
        for p in self.points:
            now = (set(p.diagnoses), set(p.trends))
            out += [Onset(p.step, d, "diagnosis") for d in p.diagnoses if d not in before[0]]
            out += [Onset(p.step, t, "trend") for t in p.trends if t not in before[1]]
            before = now
        return out

    @property
    def stop(self) -> MonitorPoint | None:
        """The first call that said stop, or None."""
        return next((p for p in self.points if p.should_stop), None)

    def as_dict(self) -> dict:
        stop = self.stop
        return {"kind": KIND, "facediag_version": self.facediag_version, "source": self.source,
                "stop": None if stop is None else {"step": stop.step, "reason": stop.reason},
                "onsets": [{"step": o.step, "id": o.id, "kind": o.kind} for o in self.onsets],
                "records": [p.as_dict() for p in self.points]}


def looks_like_history(path: str | Path) -> bool:
    """Whether ``path`` is a monitor history (JSON lines of monitor records) rather than a saved
    report: named ``*.jsonl``, or its first line a monitor record. Reads at most the first line."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return True
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 20)
    except OSError:
        return False  # the report loader names what is wrong with the path
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and "facediag_monitor" in record


def _point(r, where: str) -> MonitorPoint:
    if not isinstance(r, dict):
        raise FacediagError(f"{where}: not a JSON object")
    version = r.get("facediag_monitor")
    if version != RECORD_VERSION:
        raise FacediagError(f"{where}: record format {version!r}, and this facediag reads {RECORD_VERSION}")
    step, metrics, statuses = r.get("step"), r.get("metrics"), r.get("statuses", {})
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise FacediagError(f"{where}: step is {step!r}, not a whole number >= 0")
    if not isinstance(metrics, dict) or not all(
            isinstance(k, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
            for k, v in metrics.items()):
        raise FacediagError(f"{where}: metrics is not an object of names to numbers (or null)")
    if not isinstance(statuses, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in statuses.items()):
        raise FacediagError(f"{where}: statuses is not an object of check ids to statuses")
    lists = {}
    for key in ("diagnoses", "trends"):
        value = r.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise FacediagError(f"{where}: {key} is not a list of ids")
        lists[key] = value
    should_stop, reason, time = r.get("should_stop", False), r.get("reason"), r.get("time")
    if not isinstance(should_stop, bool):
        raise FacediagError(f"{where}: should_stop is {should_stop!r}, not true or false")
    if not (reason is None or isinstance(reason, str)) or not (time is None or isinstance(time, str)):
        raise FacediagError(f"{where}: reason and time are text (or null)")
    return MonitorPoint(step, time, dict(metrics), dict(statuses), lists["diagnoses"], lists["trends"],
                        should_stop, reason)


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
