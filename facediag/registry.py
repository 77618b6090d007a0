"""The check contract: Status, Finding, CheckResult, the Check base class and the registry.

A check is a class with a unique kebab-case ``name``, a one-line ``title``, the
inputs it ``requires`` and default ``params``; ``run(ctx, params)`` reads the
shared Session and returns a CheckResult. Checks register with ``@register``;
third-party checks register through the ``facediag.checks`` entry-point group.
"""
from __future__ import annotations

import enum
import math
import re
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, ClassVar

ENTRY_POINT_GROUP = "facediag.checks"


class Status(str, enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        """Worse is higher: used to pick the worst of several statuses."""
        return _STATUS_RANK[self]


_STATUS_RANK = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass
class Finding:
    """One observation a check makes, with the numbers behind it."""

    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"severity": self.severity.value, "message": self.message, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(Severity(d["severity"]), d["message"], dict(d.get("evidence", {})))


@dataclass
class CheckResult:
    """What a check says. ``metrics`` is flat name -> number; ``data`` holds arrays for plots."""

    name: str
    status: Status
    summary: str
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "metrics": self.metrics,
            "findings": [f.as_dict() for f in self.findings],
            "data": self.data,
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        return cls(
            name=d["name"],
            status=Status(d["status"]),
            summary=d.get("summary", ""),
            metrics=dict(d.get("metrics", {})),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            data=dict(d.get("data", {})),
            title=d.get("title", ""),
            seconds=float(d.get("seconds", 0.0)),
        )


class Skip(Exception):
    """Raised inside a check when an input it needs is missing: the result is SKIP with the reason."""


class Check:
    """Base class for checks. Subclasses set name/title/requires/params and implement run()."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    # Inputs beyond the basic model + data: "pairs", "head", "baseline", "train".
    requires: ClassVar[tuple[str, ...]] = ()
    # Default parameters (thresholds); a suite TOML overrides them per check.
    params: ClassVar[dict[str, Any]] = {}

    def run(self, ctx, params: dict[str, Any]) -> CheckResult:  # pragma: no cover - interface
        raise NotImplementedError

    # Helpers so checks read as what they conclude.
    def result(self, status: Status, summary: str, metrics=None, findings=None, data=None) -> CheckResult:
        return CheckResult(self.name, status, summary, dict(metrics or {}), list(findings or []),
                           dict(data or {}), title=self.title)


_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_REGISTRY: dict[str, type[Check]] = {}
_entry_points_loaded = False


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry under its unique kebab-case name."""
    if not _NAME_RE.match(cls.name or ""):
        raise ValueError(f"check name {cls.name!r} is not kebab-case")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two checks are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()  # importing the module runs its @register decorators


def all_checks() -> dict[str, type[Check]]:
    """Every registered check, built-in and third-party, by name (in registration order)."""
    import facediag.checks  # noqa: F401  built-in checks register on import

    _load_entry_points()
    return dict(_REGISTRY)


def get_check(name: str) -> type[Check]:
    checks = all_checks()
    if name not in checks:
        from facediag.errors import FacediagError

        raise FacediagError(f"unknown check {name!r}; known: {', '.join(sorted(checks))}")
    return checks[name]


def run_check(check: Check, ctx, params: dict[str, Any],
              available: Callable[[str], str | None]) -> CheckResult:
    """Run one check; missing inputs become SKIP with the reason, exceptions become ERROR.

    ``available(requirement)`` returns None when the input is there, else why it is not.
    """
    start = time.perf_counter()
    merged = {**check.params, **params}
    missing = [reason for req in check.requires if (reason := available(req))]
    if missing:
        res = check.result(Status.SKIP, "; ".join(missing))
    else:
        try:
            res = check.run(ctx, merged)
        except Skip as exc:
            res = check.result(Status.SKIP, str(exc))
        except Exception as exc:  # a broken check must not stop the run
            res = check.result(Status.ERROR, f"{type(exc).__name__}: {exc}")
            res.data["traceback"] = traceback.format_exc()
    res.title = res.title or check.title
    res.seconds = time.perf_counter() - start
    # Reports are strict JSON: a metric that could not be computed is None, never NaN.
    res.metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in res.metrics.items()}
    return res


def worst(statuses) -> Status:
    statuses = list(statuses)
    return max(statuses, key=lambda s: s.rank) if statuses else Status.SKIP
