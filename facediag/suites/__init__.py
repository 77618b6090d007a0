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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facediag.errors import FacediagError
from facediag.checks.registry import all_checks
from facediag.models.safe_load import read_toml

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


def _table(doc: dict, key: str, path) -> dict:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise FacediagError(f"{path}: [{key}] must be a table, not {value!r}")
    return value


# Ranges a parameter must lie in, beyond its type: cosines, rates and ratios.
_COSINES = ("threshold", "collapse_impostor", "max_impostor_mean", "memorization_paired", "min_cohesion",
            "near_duplicate_correlation")
_RATES = ("far", "fraction", "share", "coverage", "rank1", "eer")


def param_problem(key: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot be parameter ``key`` (whose default is ``default``), or None.

    The default's type is the contract: counts are positive integers, thresholds numbers in
    their range, lists non-empty lists of such numbers (ranks positive, FARs in (0, 1))."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")

    if isinstance(default, list):
        if not isinstance(value, list) or not value or not all(number(v) for v in value):
            return "must be a non-empty list of numbers"
        if "rank" in key and not all(isinstance(v, int) and v >= 1 for v in value):
            return "ranks are whole numbers from 1"
        if ("far" in key or "fmr" in key) and not all(0 < v < 1 for v in value):
            return "false-accept rates lie strictly between 0 and 1"
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else \
            "must be a whole number of at least 1"
    if not number(value):
        return "must be a number"
    if key in _COSINES:
        return None if -1 <= value <= 1 else "a cosine lies between -1 and 1"
    if value < 0:
        return "must not be negative"
    if key == "alpha" and not 0 < value < 1:
        return "a significance level lies strictly between 0 and 1"
    if key == "max_norm_ratio" and value < 1:
        return "a ratio bound is at least 1 (it is applied both ways)"
    if any(word in key for word in _RATES) and value > 1:
        return "a rate lies between 0 and 1"
    return None


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

    doc = read_toml(path, "suite")
    known = all_checks()
    checks: dict[str, dict[str, Any]] = {}
    for name, params in _table(doc, "checks", path).items():
        if name not in known:
            raise FacediagError(f"{path}: unknown check {name!r}; known: {', '.join(known)}")
        if not isinstance(params, dict):
            raise FacediagError(f"{path}: [checks.{name}] must be a table of parameters, not {params!r}")
        params = dict(params)
        enabled = params.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise FacediagError(f"{path}: [checks.{name}] enabled must be true or false, not {enabled!r}")
        if not enabled:
            continue
        unknown = set(params) - set(known[name].params)
        if unknown:
            raise FacediagError(f"{path}: check {name!r} has no parameter(s) {', '.join(sorted(unknown))} "
                                f"(it takes {', '.join(sorted(known[name].params)) or 'none'})")
        for key, value in params.items():
            problem = param_problem(key, value, known[name].params[key])
            if problem:
                raise FacediagError(f"{path}: [checks.{name}] {key} = {value!r}: {problem}")
        checks[name] = params
    meta = _table(doc, "suite", path)
    _table(doc, "gate", path)
    fail_on = meta.get("fail_on", "fail")
    if fail_on not in ("fail", "warn"):
        raise FacediagError(f"{path}: fail_on must be 'fail' or 'warn', not {fail_on!r}")
    threshold = meta.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not -1 <= threshold <= 1):
        raise FacediagError(f"{path}: [suite] threshold must be a cosine between -1 and 1, not {threshold!r}")
    return Suite(meta.get("name", path.stem), checks, fail_on, dict(doc.get("gate") or {}), str(path),
                 None if threshold is None else float(threshold))
