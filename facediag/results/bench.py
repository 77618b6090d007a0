"""BenchReport: what `facediag bench accuracy|speed|verification|ijb` measured.

Rows are plain JSON-friendly dicts, so a saved bench JSON re-renders to every format
without the models or the data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facediag.version import __version__
from facediag.errors import FacediagError
from facediag.results.base import SCHEMA_VERSION, Result, now

KINDS = ("accuracy", "speed", "verification", "ijb", "tinyface", "survface", "scface", "scores")


@dataclass
class BenchReport(Result):
    kind: str  # "accuracy" | "speed" | "verification" | "ijb"
    command: str
    checkpoints: dict[str, dict[str, Any]]  # label -> {path, sha256, variant, ...}
    settings: dict[str, Any]  # what was asked: resolutions, threshold, batch sizes, dtype, ...
    rows: list[dict[str, Any]]  # accuracy: one per (resolution, checkpoint, path); speed: one per checkpoint;
    #                            verification: one per (pair set, checkpoint);
    #                            ijb: one 1:1 row and one 1:N row per gallery, per checkpoint;
    #                            tinyface: one per checkpoint;
    #                            survface: an identification and a verification row per checkpoint;
    #                            scface: one per (probes, degradation, distance, camera, checkpoint);
    #                            scores: one per score file (verification, identification where it allows)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # accuracy --dsr: DSR vs bicubic; scface: the gap
    dataset: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=now)
    facediag_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "kind": f"bench-{self.kind}",
            "facediag_version": self.facediag_version,
            "created": self.created,
            "command": self.command,
            "checkpoints": self.checkpoints,
            "dataset": self.dataset,
            "environment": self.environment,
            "settings": self.settings,
            "rows": self.rows,
            "comparisons": self.comparisons,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BenchReport":
        kind = str(d.get("kind", "")).removeprefix("bench-")
        if d.get("schema_version") != SCHEMA_VERSION or kind not in KINDS:
            raise FacediagError(f"not a facediag bench report (kind {d.get('kind')!r}, "
                                f"schema_version {d.get('schema_version')!r})")
        return cls(kind=kind, command=d.get("command", ""), checkpoints=d.get("checkpoints", {}),
                   settings=d.get("settings", {}), rows=list(d.get("rows", [])),
                   comparisons=list(d.get("comparisons", [])), dataset=d.get("dataset"),
                   environment=d.get("environment", {}), notes=list(d.get("notes", [])),
                   created=d.get("created", ""), facediag_version=d.get("facediag_version", ""),
                   schema_version=d["schema_version"])

    def rows_where(self, **match) -> list[dict]:
        """Rows whose fields equal ``match``, e.g. ``rows_where(resolution=16, path="bicubic")``."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]
