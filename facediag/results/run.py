"""The run report: everything a run concluded, enough to re-render every format and to gate CI.

Renderers read a Report and nothing else; a report.json read back is the same Report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facediag.version import __version__
from facediag.checks.base import CheckResult, Status, worst
from facediag.diagnosis import Diagnosis
from facediag.errors import FacediagError
from facediag.results.base import SCHEMA_VERSION, Result, now


@dataclass
class Report(Result):
    command: str
    checkpoints: dict[str, dict[str, Any]]  # role ("model", "baseline") -> {path, sha256, variant, ...}
    dataset: dict[str, Any]  # root, layout, counts, fingerprint, problems
    suite: dict[str, Any]  # name, path, checks with their params as run
    results: list[CheckResult]
    diagnoses: list[Diagnosis] = field(default_factory=list)
    gate: dict[str, Any] | None = None  # regression gate outcome, when a baseline report was given
    created: str = field(default_factory=now)
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
