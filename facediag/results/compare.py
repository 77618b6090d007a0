"""The compare result: checkpoint A (reference) and B (candidate) side by side on the same data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facediag.version import __version__
from facediag.errors import FacediagError
from facediag.metrics.verdict import BETTER, WORSE
from facediag.results.base import SCHEMA_VERSION, Result, now
from facediag.results.run import Report


@dataclass
class MetricRow:
    """One metric of A and B. ``verdict`` is None for metrics without a bootstrap test."""

    key: str  # "check.metric"
    a: float | None
    b: float | None
    higher_is_better: bool | None = None
    a_ci: list[float] | None = None  # [low, high]
    b_ci: list[float] | None = None
    delta_ci: list[float] | None = None
    p_value: float | None = None  # McNemar exact
    verdict: str | None = None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def check(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def metric(self) -> str:
        return self.key.split(".", 1)[1]

    def as_dict(self) -> dict:
        return {"key": self.key, "a": self.a, "b": self.b, "delta": self.delta,
                "higher_is_better": self.higher_is_better, "a_ci": self.a_ci, "b_ci": self.b_ci,
                "delta_ci": self.delta_ci, "p_value": self.p_value, "verdict": self.verdict}

    @classmethod
    def from_dict(cls, d: dict) -> "MetricRow":
        return cls(d["key"], d.get("a"), d.get("b"), d.get("higher_is_better"), d.get("a_ci"),
                   d.get("b_ci"), d.get("delta_ci"), d.get("p_value"), d.get("verdict"))


@dataclass
class CompareReport(Result):
    """A side-by-side comparison of checkpoint A (reference) and B (candidate) on the same data."""

    command: str
    a: Report  # the suite as run on A (its checkpoints hold role "model" = A)
    b: Report
    metrics: list[MetricRow]
    shift: dict[str, Any]  # how far B moved: cka per view, mcnemar_rank1, score shifts, notes
    gate: dict[str, Any]  # {"passed": bool, "lines": [...], "failed": [keys]}
    settings: dict[str, Any]  # n_boot, alpha, seed, threshold
    labels: tuple[str, str] = ("A", "B")
    # One network in two formats: metrics.parity.deployment_parity's figures plus "reason"; None
    # when A and B are two models (and in reports written before parity existed).
    parity: dict[str, Any] | None = None
    created: str = field(default_factory=now)
    facediag_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def row(self, key: str) -> MetricRow | None:
        return next((r for r in self.metrics if r.key == key), None)

    @property
    def tested(self) -> list[MetricRow]:
        """Metrics with a verdict, identification first (rank-1 is the headline)."""
        order = ("identification", "verification", "pair-gap")
        rows = [r for r in self.metrics if r.verdict is not None]
        return sorted(rows, key=lambda r: order.index(r.check) if r.check in order else len(order))

    @property
    def passed(self) -> bool:
        return bool(self.gate.get("passed", True))

    @property
    def dataset(self) -> dict[str, Any]:
        return self.a.dataset

    def summary(self) -> str:
        """One line: which tested metrics got significantly better or worse."""
        worse = [r.metric for r in self.tested if r.verdict == WORSE]
        better = [r.metric for r in self.tested if r.verdict == BETTER]
        parts = [f"worse on {', '.join(worse)}" if worse else "",
                 f"better on {', '.join(better)}" if better else ""]
        said = "; ".join(p for p in parts if p) or "no significant change on any tested metric"
        return f"{self.labels[1]} vs {self.labels[0]}: {said}"

    def as_dict(self) -> dict:
        return {"schema_version": self.schema_version, "kind": "compare",
                "facediag_version": self.facediag_version, "created": self.created,
                "command": self.command, "labels": list(self.labels), "passed": self.passed,
                "summary": self.summary(), "settings": self.settings, "gate": self.gate,
                "shift": self.shift, "parity": self.parity, "metrics": [r.as_dict() for r in self.metrics],
                "a": self.a.as_dict(), "b": self.b.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "CompareReport":
        if d.get("schema_version") != SCHEMA_VERSION or d.get("kind") != "compare":
            raise FacediagError(f"not a facediag compare report (schema_version {d.get('schema_version')!r}, "
                                f"kind {d.get('kind')!r})")
        return cls(d.get("command", ""), Report.from_dict(d["a"]), Report.from_dict(d["b"]),
                   [MetricRow.from_dict(r) for r in d.get("metrics", [])], d.get("shift", {}),
                   d.get("gate", {}), d.get("settings", {}), tuple(d.get("labels", ("A", "B"))),
                   d.get("parity"), d.get("created", ""), d.get("facediag_version", ""), d["schema_version"])
