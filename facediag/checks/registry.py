"""The registry: checks by name, built-in and third-party, and running one safely.

Checks register with ``@register``; third-party checks register through the
``facediag.checks`` entry-point group. Importing this module imports ``facediag.checks``
first (its parent package), which registers the built-in checks.
"""
from __future__ import annotations

import math
import re
import time
import traceback
from importlib import metadata
from typing import Any, Callable

from facediag.checks.base import Check, CheckResult, Skip, Status
from facediag.errors import FacediagError

ENTRY_POINT_GROUP = "facediag.checks"

_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_REGISTRY: dict[str, type[Check]] = {}
_entry_points_loaded = False


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry under its unique kebab-case name."""
    if not _NAME_RE.match(cls.name or ""):
        raise ValueError(f"check name {cls.name!r} is not kebab-case")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two checks are named {cls.name!r}")
    ids = [c.id for c in cls.conditions]
    if len(ids) != len(set(ids)):
        raise ValueError(f"check {cls.name!r} names a condition twice")
    for cond in cls.conditions:
        for clause in cond.when:
            if isinstance(clause.threshold, str) and clause.threshold not in cls.params:
                raise ValueError(f"check {cls.name!r}: condition {cond.id!r} reads a parameter "
                                 f"{clause.threshold!r} it does not declare")
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
    _load_entry_points()
    return dict(_REGISTRY)


def get_check(name: str) -> type[Check]:
    checks = all_checks()
    if name not in checks:
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
