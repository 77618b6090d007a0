"""The run report: everything a run concluded, enough to re-render every format and to gate CI.

Renderers read a Report and nothing else; a report.json read back is the same Report.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facediag import __version__
from facediag.errors import FacediagError
from facediag.io import atomic_write_text
from facediag.registry import CheckResult, Status, worst

SCHEMA_VERSION = 1


@dataclass
class Diagnosis:
    """A root cause named by reading several check results together."""

    id: str
    severity: str  # "failure" | "warning" | "info"
    summary: str
    evidence: list[str] = field(default_factory=list)
    remedy: str = ""
    checks: list[str] = field(default_factory=list)  # the checks whose results it read

    def as_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "summary": self.summary,
                "evidence": list(self.evidence), "remedy": self.remedy, "checks": list(self.checks)}

    @classmethod
    def from_dict(cls, d: dict) -> "Diagnosis":
        return cls(d["id"], d["severity"], d["summary"], list(d.get("evidence", [])),
                   d.get("remedy", ""), list(d.get("checks", [])))


@dataclass
class Report:
    command: str
    checkpoints: dict[str, dict[str, Any]]  # role ("model", "baseline") -> {path, sha256, variant, ...}
    dataset: dict[str, Any]  # root, layout, counts, fingerprint, problems
    suite: dict[str, Any]  # name, path, checks with their params as run
    results: list[CheckResult]
    diagnoses: list[Diagnosis] = field(default_factory=list)
    gate: dict[str, Any] | None = None  # regression gate outcome, when a baseline report was given
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    facediag_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    def metric(self, check: str, name: str):
        res = self.result(check)
        return None if res is None else res.metrics.get(name)

    def as_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "kind": "run",
            "facediag_version": self.facediag_version,
            "created": self.created,
            "command": self.command,
            "status": self.status.value,
            "checkpoints": self.checkpoints,
            "dataset": self.dataset,
            "suite": self.suite,
            "diagnoses": [d.as_dict() for d in self.diagnoses],
            "results": [r.as_dict() for r in self.results],
            "gate": self.gate,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if d.get("schema_version") != SCHEMA_VERSION or d.get("kind", "run") != "run":
            raise FacediagError(
                f"not a facediag run report (schema_version {d.get('schema_version')!r}, "
                f"kind {d.get('kind')!r}; expected schema_version {SCHEMA_VERSION}, kind 'run')")
        return cls(
            command=d.get("command", ""),
            checkpoints=d.get("checkpoints", {}),
            dataset=d.get("dataset", {}),
            suite=d.get("suite", {}),
            results=[CheckResult.from_dict(r) for r in d.get("results", [])],
            diagnoses=[Diagnosis.from_dict(x) for x in d.get("diagnoses", [])],
            gate=d.get("gate"),
            created=d.get("created", ""),
            facediag_version=d.get("facediag_version", ""),
            schema_version=d["schema_version"],
        )

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=json_default, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json())


def json_default(obj):
    """numpy scalars/arrays and Paths appear in metrics and data; JSON gets plain values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def load_report_dict(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FacediagError(f"{path}: no such report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FacediagError(f"{path}: not a JSON report ({exc})") from None


def load_report(path: str | Path) -> Report:
    return Report.from_dict(load_report_dict(path))
