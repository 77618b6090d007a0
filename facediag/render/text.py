"""The wording every format shares, so each says the same numbers the same way (run reports;
compare_text and bench_tables hold the same for the other result kinds). No rich, no matplotlib."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facediag.checks.base import CheckResult, Severity, Status
from facediag.formatting import format_value
from facediag.metrics.operating_point import provenance_text

# Worst first, for tallies and ordering.
STATUS_ORDER = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)
_TALLY_WORD = {Status.FAIL: "failed", Status.ERROR: "error", Status.WARN: "warning",
               Status.PASS: "passed", Status.SKIP: "skipped"}
_SEVERITY_RANK = {"failure": 0, "warning": 1, "info": 2}
# The dataset counts a one-line verdict names, when the dataset reports them.
VERDICT_COUNTS = ("subjects", "images", "probes")
DEFAULT_HEADLINE = 3
MAX_HEADLINE = 4


def format_evidence(evidence: dict[str, Any]) -> str:
    """A finding's evidence as ``k=v, k=v``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in evidence.items())


def headline_metrics(result: CheckResult) -> list[tuple[str, Any]]:
    """The 2–4 metrics a summary shows: those the check names in ``data["headline"]``, else the first few."""
    named = result.data.get("headline")
    if isinstance(named, list):
        names = [n for n in named if n in result.metrics][:MAX_HEADLINE]
    else:
        names = list(result.metrics)[:DEFAULT_HEADLINE]
    return [(n, result.metrics[n]) for n in names]


def notable_findings(result: CheckResult):
    """Findings worth showing in a summary: warnings and failures, not info."""
    return [f for f in result.findings if f.severity in (Severity.WARNING, Severity.FAILURE)]


def ordered_diagnoses(report) -> list:
    """Diagnoses, failures first; the diagnosis layer's order is kept within a severity."""
    return sorted(report.diagnoses, key=lambda d: _SEVERITY_RANK.get(d.severity, 3))


def explains_text(diagnosis) -> str:
    """The symptoms (check conditions met) a diagnosis accounts for, in one line; "" if none."""
    return f"explains: {', '.join(diagnosis.explains)}" if diagnosis.explains else ""


def status_counts(report) -> dict[Status, int]:
    counts = {s: 0 for s in STATUS_ORDER}
    for r in report.results:
        counts[r.status] += 1
    return counts


def tally_text(report) -> str:
    """E.g. ``2 failed, 1 warning, 5 passed, 1 skipped``."""
    parts = [f"{n} {_TALLY_WORD[s]}" for s, n in status_counts(report).items() if n]
    return ", ".join(parts) if parts else "no checks ran"


def checkpoint_text(role: str, info: dict[str, Any], sha_len: int = 12) -> str:
    """E.g. ``model edgeface.pth (edgeface_xxs, sha256 1a2b3c4d5e6f)``."""
    name = Path(str(info["path"])).name if info.get("path") else "?"
    details = [str(info["variant"])] if info.get("variant") else []
    if info.get("sha256"):
        details.append(f"sha256 {str(info['sha256'])[:sha_len]}")
    return f"{role} {name}" + (f" ({', '.join(details)})" if details else "")


def checkpoints_text(report) -> str:
    return "; ".join(checkpoint_text(role, info) for role, info in report.checkpoints.items())


def dataset_text(dataset: dict[str, Any]) -> str:
    """E.g. ``orl_faces: 40 subjects, 400 images, 280 probes`` (full counts are in the HTML)."""
    name = Path(str(dataset["root"])).name if dataset.get("root") else ""
    counts = dataset.get("counts") or {}
    shown = {k: counts[k] for k in VERDICT_COUNTS if k in counts} or counts
    if counts.get("problems"):
        shown["problems"] = counts["problems"]
    count_text = ", ".join(f"{format_value(v)} {k}" for k, v in shown.items())
    return ": ".join(p for p in (name, count_text) if p) or "no dataset"


def note_lines(dataset: dict[str, Any] | None) -> list[str]:
    """What the data protocol means for the result (e.g. which split folder enrolled), one line each."""
    return [str(n) for n in ((dataset or {}).get("notes") or [])]


def threshold_lines(report) -> list[str]:
    """Where a run's thresholds come from (the suite as run: ``operating_threshold``), one line
    each: the operating threshold, then any check whose own table sets another; and the
    development set, when the run had one."""
    p = (getattr(report, "suite", None) or {}).get("operating_threshold")
    lines = [provenance_text(p)] + [provenance_text(c, f"{name} runs at threshold")
                                    for name, c in (p.get("checks") or {}).items()] if p else []
    return lines + _on_eval(report) + dev_lines(getattr(report, "dataset", None))


def _on_eval(report) -> list[str]:
    """The thresholds checks find on the evaluation data itself (for a target FAR, at the EER): their
    provenance is that data, which a deployment never has."""
    found = [f"{r.name}.{name}" for r in getattr(report, "results", []) for name, v in r.metrics.items()
             if v is not None and (name.startswith("threshold_for_far_") or name == "eer_threshold")]
    if not found:
        return []
    return [f"{', '.join(found)}: source eval, fixed on the evaluation data they are reported on (optimistic: a "
            "deployment fixes its threshold on other data; --dev-data fixes them on a development set)"]


def dev_lines(dataset: dict | None) -> list[str]:
    """The development set thresholds are fixed on (``dataset["dev"]``), in one line; none without one."""
    dev = (dataset or {}).get("dev")
    if not dev:
        return []
    counts = dev.get("counts") or {}
    return [f"development set {dev.get('root')}" + (f" (probes {dev['probe_root']})" if dev.get("probe_root") else "")
            + f": {counts.get('gallery_images', '?')} gallery images, {counts.get('probes', '?')} probes, "
            f"{counts.get('gallery_subjects', '?')} subjects enrolled; {dev.get('shared_subjects', 0)} subject id(s) "
            "shared with the evaluation data"]


def problem_lines(dataset: dict[str, Any] | None, limit: int = 5) -> list[str]:
    """Files the run could not use, for every format: a count, then the first few with why."""
    problems = (dataset or {}).get("problems") or []
    if not problems:
        return []
    lines = [f"{len(problems)} file(s) could not be used:"]
    lines += [f"{p.get('path')}: {p.get('reason')}" if isinstance(p, dict) else str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"… and {len(problems) - limit} more (every one is in report.json)")
    return lines


def verdict_details(report) -> str:
    """What the verdict rests on: the tally, the checkpoint(s), the dataset counts."""
    parts = [tally_text(report)]
    if report.checkpoints:
        parts.append(checkpoints_text(report))
    if report.dataset:
        parts.append(f"data {dataset_text(report.dataset)}")
    return " · ".join(parts)


def verdict_text(report) -> str:
    """The one-line conclusion, e.g. ``FAIL: 2 failed, 3 passed · model m.pth (...) · data orl: ...``."""
    return f"{report.status.value}: {verdict_details(report)}"
