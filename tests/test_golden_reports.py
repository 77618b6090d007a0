"""No behaviour change across refactors: run-all, compare and bench accuracy on ORL give the
same numbers, statuses, verdicts and diagnoses as the snapshot in tests/golden/.

The snapshot was written by the code before the restructuring (FACEDIAG_WRITE_GOLDEN=1
rewrites it: do that only for an intended change, and say so in the commit). Compared
metric by metric; timestamps, durations, paths and free text are left out.

The second model is the int8 checkpoint's weights dequantised to float, not the int8 model
itself: int8 kernels differ between CPUs (its rank-1 moved 0.739 -> 0.711 between two x86
machines with the same torch), float kernels only in the last bits. Reports round to 4
decimals, so a value may move by one unit there (FLOAT_TOLERANCE) and by nothing more.
"""
import json
import math
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
pytestmark = pytest.mark.slow
FLOAT_TOLERANCE = 1.5e-4  # one unit in the 4th decimal, plus float slack


def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if v is None or isinstance(v, (bool, int, float))}


def snapshot_run(d: dict) -> dict:
    return {
        "status": d["status"],
        "variants": {role: c.get("variant") for role, c in d["checkpoints"].items()},
        "counts": {k: v for k, v in d["dataset"]["counts"].items()},
        "fingerprint": d["dataset"]["fingerprint"],
        "results": {r["name"]: {"status": r["status"], "metrics": _numbers(r["metrics"])} for r in d["results"]},
        "diagnoses": sorted((x["id"], x["severity"]) for x in d["diagnoses"]),
    }


def snapshot_compare(d: dict) -> dict:
    return {
        "passed": d["passed"],
        "metrics": {m["key"]: {k: m[k] for k in ("a", "b", "verdict", "delta_ci", "p_value", "higher_is_better")}
                    for m in d["metrics"]},
        "cka": d["shift"]["cka"],
        "mcnemar_rank1": d["shift"]["mcnemar_rank1"],
        "a": snapshot_run(d["a"]),
        "b": snapshot_run(d["b"]),
    }


def snapshot_bench(d: dict) -> dict:
    return {"rows": [_numbers(r) | {k: r[k] for k in ("label", "path") if k in r} for r in d["rows"]],
            "comparisons": d["comparisons"]}


def _same(a, b, where=""):
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{where}: keys differ: {sorted(set(a) ^ set(b))}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=FLOAT_TOLERANCE), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _check(name: str, snap: dict):
    path = GOLDEN / f"{name}.json"
    if os.environ.get("FACEDIAG_WRITE_GOLDEN"):
        path.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    _same(json.loads(json.dumps(snap)), golden, name)


def test_run_all_report_unchanged(float_weights, dequantized_weights, orl_root, cache):
    import facediag

    report = facediag.run_all(float_weights, orl_root, baseline_weights=dequantized_weights, vlr_size=16,
                              progress=False, cache_dir=cache)
    _check("run_all", snapshot_run(json.loads(report.to_json())))


def test_compare_report_unchanged(float_weights, dequantized_weights, orl_root, cache):
    from facediag.compare import compare

    report = compare(float_weights, dequantized_weights, orl_root, n_boot=300, vlr_size=16, progress=False,
                     cache_dir=cache)
    _check("compare", snapshot_compare(json.loads(report.to_json())))


def test_bench_accuracy_report_unchanged(float_weights, orl_root, cache):
    from facediag.bench import bench_accuracy

    report = bench_accuracy([float_weights], orl_root, resolutions="16,hr", n_boot=300, progress=False,
                            cache_dir=cache)
    _check("bench_accuracy", snapshot_bench(json.loads(report.to_json())))


def test_planted_collapse_report_unchanged(paired_only_weights, float_weights, orl_root, cache):
    """The statuses, conditions and diagnoses of a failing run, not only a healthy one."""
    import facediag

    report = facediag.run_all(paired_only_weights, orl_root, baseline_weights=float_weights, vlr_size=16,
                              progress=False, cache_dir=cache)
    _check("run_all_paired_only", snapshot_run(json.loads(report.to_json())))
