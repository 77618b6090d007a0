"""The check contract: Status, Finding, Condition, CheckResult and the Check base class.

A check is a class with a unique kebab-case ``name``, a one-line ``title``, the inputs it
``requires``, default ``params`` (thresholds) and the ``conditions`` it judges by. ``run(ctx,
params)`` reads the shared Session, measures ``metrics`` and returns ``self.conclude(...)``:
status and findings follow from the conditions, so a threshold lives in the suite alone and
the diagnosis layer reads the same outcome the check reported (never a copy of the rule).
"""
from __future__ import annotations

import enum
import operator
import string
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence


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


def worst(statuses) -> Status:
    statuses = list(statuses)
    return max(statuses, key=lambda s: s.rank) if statuses else Status.SKIP


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    FAILURE = "failure"

    @property
    def status(self) -> Status:
        """The status a met condition of this severity gives its check."""
        return {Severity.INFO: Status.PASS, Severity.WARNING: Status.WARN, Severity.FAILURE: Status.FAIL}[self]


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


# A clause compares one metric with a limit. "drop>": the metric (a change) fell by more than
# the limit; "outside": a ratio outside [1/limit, limit]; "is": the metric is true.
_OPS = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "!=": operator.ne,
    "drop>": lambda v, t: -v > t,
    "outside": lambda v, t: not 1 / t <= v <= t,
    "is": lambda v, t: bool(v),
}


class _Wording(string.Formatter):
    """Fills a condition's message: an unmeasured (None) or absent value reads "n/a"."""

    def get_value(self, key, args, kwargs):
        return kwargs.get(key) if isinstance(key, str) else super().get_value(key, args, kwargs)

    def format_field(self, value, format_spec):
        return "n/a" if value is None else super().format_field(value, format_spec)


_WORDING = _Wording()


@dataclass(frozen=True)
class Clause:
    """``metric OP limit``, where the limit is a suite parameter (by name), a fixed number (a
    structural fact such as "none shared", not a tunable threshold), or, with ``relative_to``,
    another metric plus the parameter."""

    metric: str
    op: str = "is"
    threshold: str | float | None = None
    relative_to: str | None = None

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}; known: {', '.join(_OPS)}")

    def limit(self, metrics: Mapping[str, Any], params: Mapping[str, Any]) -> float | None:
        t = params[self.threshold] if isinstance(self.threshold, str) else self.threshold
        if self.relative_to is not None:
            base = metrics.get(self.relative_to)
            return None if base is None else base + (t or 0)
        return t

    def holds(self, metrics: Mapping[str, Any], params: Mapping[str, Any]) -> bool | None:
        """True / False, or None when the metric (or its reference) was not measured."""
        value = metrics.get(self.metric)
        limit = self.limit(metrics, params)
        if value is None or (limit is None and self.op != "is"):
            return None
        return bool(_OPS[self.op](value, limit))


@dataclass(frozen=True)
class Condition:
    """A named rule of a check: when every clause holds (any one, with ``match="any"``) and no
    condition in ``unless`` is met, the check reports ``message`` at ``severity``. ``message``
    is a ``str.format`` template over the check's metrics, params and the context the check
    passes; ``None`` records the outcome for the diagnosis layer without a finding (and
    without changing the status)."""

    id: str
    severity: Severity
    message: str | None
    when: tuple[Clause, ...]
    unless: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()  # metrics to attach to the finding
    match: str = "all"  # "all": every clause must hold; "any": one is enough

    def __init__(self, id: str, severity: Severity, message: str | None, when: Sequence, *,
                 unless: Sequence[str] = (), evidence: Sequence[str] = (), match: str = "all"):
        if match not in ("all", "any"):
            raise ValueError(f"match must be 'all' or 'any', not {match!r}")
        clauses = tuple(c if isinstance(c, Clause) else Clause(*c) for c in when)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "when", clauses)
        object.__setattr__(self, "unless", tuple(unless))
        object.__setattr__(self, "evidence", tuple(evidence))
        object.__setattr__(self, "match", match)

    def holds(self, metrics: Mapping[str, Any], params: Mapping[str, Any]) -> bool | None:
        """True / False, or None when what decides it was not measured."""
        holds = [c.holds(metrics, params) for c in self.when]
        if self.match == "any":
            return True if True in holds else (None if None in holds else False)
        return False if False in holds else (None if None in holds else True)

    @property
    def changes_status(self) -> bool:
        return self.message is not None and self.severity != Severity.INFO


@dataclass
class ConditionOutcome:
    """How a condition came out on one run: what the diagnosis layer reads."""

    id: str
    severity: Severity
    met: bool | None  # None: a metric it needs was not measured
    values: dict[str, Any] = field(default_factory=dict)  # metric -> measured value
    limits: dict[str, Any] = field(default_factory=dict)  # metric -> the limit it was held to

    def as_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity.value, "met": self.met,
                "values": self.values, "limits": self.limits}

    @classmethod
    def from_dict(cls, d: dict) -> "ConditionOutcome":
        return cls(d["id"], Severity(d["severity"]), d.get("met"), dict(d.get("values", {})),
                   dict(d.get("limits", {})))


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
    conditions: list[ConditionOutcome] = field(default_factory=list)

    def met(self, condition: str) -> bool:
        """Whether the named condition held on this run (False when it did not run or was not measured)."""
        return any(c.id == condition and c.met for c in self.conditions)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "metrics": self.metrics,
            "conditions": [c.as_dict() for c in self.conditions],
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
            conditions=[ConditionOutcome.from_dict(c) for c in d.get("conditions", [])],
        )


class Skip(Exception):
    """Raised inside a check when an input it needs is missing: the result is SKIP with the reason."""


class Check:
    """Base class for checks. Subclasses set name/title/requires/params/conditions and implement run()."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    # Inputs beyond the basic model + data: "pairs", "head", "baseline" (Session.available says which are there).
    requires: ClassVar[tuple[str, ...]] = ()
    # Default parameters (thresholds); a suite TOML overrides them per check.
    params: ClassVar[dict[str, Any]] = {}
    # The rules status follows from, in the order their findings are listed.
    conditions: ClassVar[tuple[Condition, ...]] = ()

    def run(self, ctx, params: dict[str, Any]) -> CheckResult:  # pragma: no cover - interface
        raise NotImplementedError

    def result(self, status: Status, summary: str, metrics=None, findings=None, data=None) -> CheckResult:
        """A result stated directly: for SKIP and for structural failures no threshold governs."""
        return CheckResult(self.name, status, summary, dict(metrics or {}), list(findings or []),
                           dict(data or {}), title=self.title)

    def conclude(self, metrics: dict[str, Any], params: Mapping[str, Any], *, summary: str,
                 findings: Sequence[Finding] = (), data: dict | None = None,
                 context: Mapping[str, Any] | None = None) -> CheckResult:
        """Judge ``metrics`` by the check's conditions: status, findings and the one-line summary.

        ``summary`` is what a passing check says; a failing or warning one leads with the
        message of its first met condition. ``findings`` are extra (informational) ones."""
        outcomes: list[ConditionOutcome] = []
        met: set[str] = set()
        status, raised = Status.PASS, []
        words = {**params, **metrics, **(context or {})}
        for cond in self.conditions:
            is_met = cond.holds(metrics, params)
            if is_met and any(u in met for u in cond.unless):
                is_met = False  # a graver condition already explains it
            outcomes.append(ConditionOutcome(
                cond.id, cond.severity, is_met, {c.metric: metrics.get(c.metric) for c in cond.when},
                {c.metric: c.limit(metrics, params) for c in cond.when}))
            if not is_met:
                continue
            met.add(cond.id)
            if cond.message is not None:
                raised.append(Finding(cond.severity, _WORDING.format(cond.message, **words),
                                      {k: metrics.get(k) for k in cond.evidence}))
                if cond.changes_status:
                    status = worst([status, cond.severity.status])
        if status != Status.PASS:
            summary = next(f.message for f in raised if f.severity != Severity.INFO)
        return CheckResult(self.name, status, summary, dict(metrics), [*raised, *findings], dict(data or {}),
                           title=self.title, conditions=outcomes)
