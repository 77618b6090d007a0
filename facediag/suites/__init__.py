"""Suites: which checks run, with which thresholds, read from TOML files.

The built-in suites (default, ci) are package data beside this module, so ``--suite ci``
works from any install; the project's top-level ``checks/`` holds the same files for users
to copy and edit (a test keeps the two identical).

```toml
[suite]
name = "default"
fail_on = "fail"            # or "warn"
threshold = 0.35            # the cosine operating point of every check that takes one
                            # (default: the model preset's, 0.35 for EdgeFace)

[checks.identification]     # table order = run order
max_far = 0.01

[gate.max_drop]             # regression gate tolerances (absolute drops)
"identification.rank1" = 0.02
```
A check not named in the file does not run. Unknown check names and unknown parameters
are refused (a typo must not silently turn a threshold off).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facediag.errors import FacediagError
from facediag.checks.registry import all_checks

SUITES_DIR = Path(__file__).resolve().parent  # the built-in suites: package data


@dataclass
class Suite:
    name: str
    checks: dict[str, dict[str, Any]]  # name -> params overriding the check's defaults
    fail_on: str = "fail"
    gate: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    threshold: float | None = None  # [suite] threshold: every check's "threshold" unless its table sets one

    def params(self, check: str) -> dict[str, Any]:
        """The parameters ``check`` runs with: its defaults, the suite's threshold, its own table."""
        defaults = all_checks()[check].params
        shared = {"threshold": self.threshold} if self.threshold is not None and "threshold" in defaults else {}
        return {**defaults, **shared, **self.checks.get(check, {})}

    def only(self, names: list[str]) -> "Suite":
        known = all_checks()
        for n in names:
            if n not in known:
                raise FacediagError(f"unknown check {n!r}; known: {', '.join(known)}")
        return Suite(self.name, {n: self.checks.get(n, {}) for n in names}, self.fail_on, self.gate, self.path,
                     self.threshold)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "fail_on": self.fail_on,
                "checks": {n: self.params(n) for n in self.checks}, "gate": self.gate}


def builtin_suite() -> Suite:
    """Every registered check with its default thresholds."""
    return Suite("builtin", {name: {} for name in all_checks()})


def load_suite(spec: str | Path | None = None) -> Suite:
    """A suite by path, or a built-in one by name (default: default)."""
    spec = spec or "default"
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = SUITES_DIR / f"{spec}.toml"
        if not path.exists():
            if str(spec) == "default":
                return builtin_suite()
            raise FacediagError(f"no suite named {spec!r} (looked for {path})")
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FacediagError(f"{path}: no such suite file") from None
    except tomllib.TOMLDecodeError as exc:
        raise FacediagError(f"{path}: not valid TOML ({exc})") from None
    known = all_checks()
    checks: dict[str, dict[str, Any]] = {}
    for name, params in (doc.get("checks") or {}).items():
        if name not in known:
            raise FacediagError(f"{path}: unknown check {name!r}; known: {', '.join(known)}")
        params = dict(params or {})
        if params.pop("enabled", True) is False:
            continue
        unknown = set(params) - set(known[name].params)
        if unknown:
            raise FacediagError(f"{path}: check {name!r} has no parameter(s) {', '.join(sorted(unknown))} "
                                f"(it takes {', '.join(sorted(known[name].params)) or 'none'})")
        checks[name] = params
    meta = doc.get("suite") or {}
    fail_on = meta.get("fail_on", "fail")
    if fail_on not in ("fail", "warn"):
        raise FacediagError(f"{path}: fail_on must be 'fail' or 'warn', not {fail_on!r}")
    threshold = meta.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not -1 <= threshold <= 1):
        raise FacediagError(f"{path}: [suite] threshold must be a cosine between -1 and 1, not {threshold!r}")
    return Suite(meta.get("name", path.stem), checks, fail_on, dict(doc.get("gate") or {}), str(path),
                 None if threshold is None else float(threshold))
