"""Trends across monitor calls: what one snapshot cannot show, read against the first call.

Each rule compares the metrics of this call with those of the first call of the run (the model
as training found it) and flags a change larger than its tolerance. Tolerances are the suite's
``[gate.max_drop]`` entries where it names the metric (the same "worse by more than" the gate
reads), else the defaults below, or one ``min_change`` for every rule when a policy sets it.

- ``paired-up-genuine-down``: the seed's exact signature. Each output's similarity to its own HR
  pair rose while what deployment needs fell: cross-image genuine similarity, or rank-1.
- ``rank1-drop``: rank-1 fell below the first call's by more than its tolerance.
- ``impostor-rising``: different people score more alike than they did: the way to collapse.
- ``fmr-drift``: the false-accept rate at the operating threshold moved (either way): the
  threshold no longer means what it meant, whatever else improved.
"""
from __future__ import annotations

from collections.abc import Mapping

PAIRED, GENUINE, IMPOSTOR = "pair-gap.paired_mean", "pair-gap.genuine_mean", "pair-gap.impostor_mean"
RANK1, FAR = "identification.rank1", "identification.far_at_threshold"

# The least change each rule counts, where the suite names none: rates and cosines alike.
TOLERANCES = {PAIRED: 0.05, GENUINE: 0.05, RANK1: 0.05, IMPOSTOR: 0.1, FAR: 0.01}
TRENDS = ("paired-up-genuine-down", "rank1-drop", "impostor-rising", "fmr-drift")


def tolerances(max_drop: Mapping[str, float] | None = None, min_change: float | None = None) -> dict[str, float]:
    """Each rule's tolerance: ``min_change`` for all, else the suite's entry, else the default."""
    if min_change is not None:
        return {key: float(min_change) for key in TOLERANCES}
    return {key: float((max_drop or {}).get(key, default)) for key, default in TOLERANCES.items()}


def trend_flags(first: Mapping[str, float], now: Mapping[str, float], tol: Mapping[str, float]) -> list[str]:
    """The trends of ``now`` against ``first`` (metric dicts of two calls), in TRENDS order."""
    def change(key: str) -> float | None:
        return now[key] - first[key] if key in now and key in first else None

    def beyond(key: str, sign: int) -> bool:
        d = change(key)
        return d is not None and sign * d > tol[key]

    flags = []
    if beyond(PAIRED, +1) and (beyond(GENUINE, -1) or beyond(RANK1, -1)):
        flags.append("paired-up-genuine-down")
    if beyond(RANK1, -1):
        flags.append("rank1-drop")
    if beyond(IMPOSTOR, +1):
        flags.append("impostor-rising")
    if beyond(FAR, +1) or beyond(FAR, -1):
        flags.append("fmr-drift")
    return flags


_READS = {"paired-up-genuine-down": (PAIRED, GENUINE, RANK1), "rank1-drop": (RANK1,), "impostor-rising": (IMPOSTOR,),
          "fmr-drift": (FAR,)}


def describe(flag: str, first: Mapping[str, float], now: Mapping[str, float]) -> str:
    """One line with the numbers behind a trend: each metric it reads, first call -> this call."""
    moves = [f"{key} {first[key]:.3f} → {now[key]:.3f}" for key in _READS[flag] if key in first and key in now]
    return ", ".join(moves) + " since the first call"
