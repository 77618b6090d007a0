"""torchrun: two gloo processes on CPU give the report one process gives (run-all, compare, bench
accuracy); rank 0 alone shows and writes; each rank embeds about half of the images; every rank
ends with rank 0's code."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from align_extra import needs_extra
from facediag.distributed import Distributed
from helpers import copy_orl_subset

REPO = Path(__file__).resolve().parents[1]
VOLATILE = {"created", "command", "seconds"}  # when and how it was launched, and how long it took
REPORT_FILES = {"report.json", "report.html", "report.md", "junit.xml"}
BENCH_FILES = {"bench-accuracy.json", "bench-accuracy.html", "bench-accuracy.md", "bench-accuracy.junit.xml"}


# ------------------------------------------------------------------- a world of one (fast)
def test_shards_cover_every_row_once_in_order_in_whole_batches():
    for n in (0, 1, 5, 10, 281):
        for world in (1, 2, 3):
            for batch in (1, 4, 64):
                shards = [Distributed(world, rank).shard(n, batch) for rank in range(world)]
                assert [i for s in shards for i in s] == list(range(n))
                assert all(s.start % batch == 0 for s in shards)  # a single process's batches
                sizes = [len(s) for s in shards]
                assert max(sizes) - min(sizes) <= batch


def test_without_torchrun_nothing_is_started_or_precomputed(monkeypatch, tmp_path):
    import torch.distributed as tdist

    from facediag.session import Session, SessionConfig
    from helpers import write_folders_dataset

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = Distributed.from_env("cpu")
    assert (dist.world, dist.rank, dist.initialised) == (1, 0, False)
    assert not tdist.is_initialized()
    assert dist.decide(3) == 3 and dist.all_gather_object("x") == ["x"]
    session = Session(SessionConfig(data=write_folders_dataset(tmp_path / "d"), device="cpu"), dist=dist)
    session.prepare()  # a no-op: embeddings stay lazy
    assert session.runtime.embedded == {} and session.rank_counts is None


# ------------------------------------------------------------------- two gloo processes (slow)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FACEDIAG_DEBUG", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    # This checkout's code in every process; one thread each, as torchrun sets, so numerics match.
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               FACEDIAG_CACHE=str(cache), MPLBACKEND="Agg", **extra)
    return env


def _facediag(args, env):
    return subprocess.run([sys.executable, "-m", "facediag", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _torchrun(args, env, logs: Path):
    """``torchrun --nproc-per-node 2 -m facediag ...`` with each rank's stdout/stderr in ``logs``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "--log-dir", str(logs), "--redirects", "3", "-m", "facediag", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _rank_logs(logs: Path) -> dict[int, tuple[str, str]]:
    """{rank: (stdout, stderr)} from torchrun's log folder (<run>/attempt_0/<rank>/std*.log)."""
    out = {}
    for d in logs.glob("*/attempt_*/*"):
        out[int(d.name)] = ((d / "stdout.log").read_text(), (d / "stderr.log").read_text())
    return out


def _rank_stderr(logs: Path) -> str:
    """Each rank's stderr, for a failure message: torchrun's own output names no cause."""
    return "".join(f"\n--- rank {r} stderr ---\n{err}" for r, (_, err) in sorted(_rank_logs(logs).items()))


def _stable(node):
    """A report without what legitimately differs between launches (VOLATILE keys)."""
    if isinstance(node, dict):
        return {k: _stable(v) for k, v in node.items() if k not in VOLATILE}
    if isinstance(node, list):
        return [_stable(v) for v in node]
    return node


def _one_then_two_ranks(args, tmp_path: Path, report: str = "report.json") -> tuple[dict, dict, list]:
    """``args`` in one process (reports in D1) and under torchrun with 2 ranks (D2), each with a
    fresh cache: (the one-process report, the two-rank report, what each rank embedded)."""
    one = _facediag([*args, "--out", tmp_path / "D1"], _env(tmp_path / "cache1"))
    assert one.returncode == 0, one.stderr
    counts = tmp_path / "rank_counts.json"
    two = _torchrun([*args, "--out", tmp_path / "D2"], _env(tmp_path / "cache2", FACEDIAG_RANK_COUNTS=str(counts)),
                    tmp_path / "logs")
    assert two.returncode == 0, two.stdout + two.stderr + _rank_stderr(tmp_path / "logs")
    r1, r2 = (json.loads((tmp_path / d / report).read_text()) for d in ("D1", "D2"))
    return r1, r2, json.loads(counts.read_text()) if counts.exists() else []


@pytest.fixture(scope="module")
def orl_subset(orl_root, tmp_path_factory):
    return copy_orl_subset(orl_root, tmp_path_factory.mktemp("orl") / "orl", subjects=range(1, 6))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run-all", "compare", "bench"])
def test_two_ranks_give_the_single_process_report_and_its_exit_code(command, orl_subset, float_weights, quant_weights,
                                                                    tmp_path):
    if command == "run-all":
        args = ["run-all", "-w", float_weights]
    elif command == "compare":  # the int8 model's embeddings depend on their batch: shards keep one process's
        args = ["compare", float_weights, quant_weights, "--n-boot", "200"]
    else:
        args = ["bench", "accuracy", "-w", float_weights, "--resolutions", "16,hr", "--n-boot", "200"]
    files, report = (BENCH_FILES, "bench-accuracy.json") if command == "bench" else (REPORT_FILES, "report.json")
    batch = 4  # small batches so that every view splits evenly over the two ranks
    args += ["--data", orl_subset, "--device", "cpu", "--batch-size", batch]  # progress on: rank 1 must hide its own
    r1, r2, per_rank = _one_then_two_ranks(args, tmp_path, report)
    assert _stable(r2) == _stable(r1)  # every metric, status, diagnosis, problem and count
    assert r1["kind"] == r2["kind"] and (r1.get("results") or r1.get("a", {}).get("results") or r1.get("rows"))

    # Only rank 0 wrote reports and printed; rank 1 said nothing at all.
    assert {p.name for p in (tmp_path / "D2").iterdir()} == files
    logs = _rank_logs(tmp_path / "logs")
    assert sorted(logs) == [0, 1]
    assert "reports:" in logs[0][0]
    assert logs[1] == ("", ""), logs[1]

    if command == "bench":
        return  # many sessions, one count (in the report: model_forward_batches, over all ranks)
    # Each rank embedded and super-resolved its half of the images (fresh caches: nothing hidden).
    run1 = r1 if command == "run-all" else r1["a"]  # a compare holds a run per side
    assert [c["rank"] for c in per_rank] == [0, 1]
    roles = ["model"] if command == "run-all" else ["model", "baseline"]
    dataset = run1["dataset"]["counts"]
    images = dataset["gallery_images"] + 2 * dataset["probes"]  # gallery, probes' HR and their DSR views
    for role in roles:
        embedded = [c["images_embedded"][role] for c in per_rank]
        assert sum(embedded) == images and min(embedded) >= images / 2 - 3 * batch, embedded
    resolved = [c["super_resolved"] for c in per_rank]
    assert sum(resolved) == dataset["probes"] and min(resolved) >= dataset["probes"] / 2 - batch, resolved

    if command == "run-all":  # a run rank 0 fails (warm cache: no embedding this time)
        _every_rank_exits_with_rank_0s_code(args, tmp_path / "cache2", tmp_path)


def _every_rank_exits_with_rank_0s_code(args, cache, tmp_path):
    suite = tmp_path / "strict.toml"
    suite.write_text('[suite]\nname = "strict"\nfail_on = "warn"\n\n[checks.identification]\nmin_rank1 = 0.999\n')
    proc = _torchrun([*args, "--suite", suite], _env(cache), tmp_path / "logs-fail")
    assert proc.returncode != 0
    # torchrun's failure summary: the root cause is rank 0 with its code; rank 1 did not leave
    # with 0 but failed too, by the same code or by torchrun ending it after rank 0 failed.
    summary = proc.stdout + proc.stderr
    codes = dict(re.findall(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)", summary))
    root = re.search(r"Root Cause.*?rank\s*:\s*(\d+)", summary, re.S)
    assert root and root.group(1) == "0" and codes.get("0") == "1", summary[-3000:]
    assert codes.get("1") in ("1", "-15"), summary[-3000:]  # -15: SIGTERM from the agent
    assert "WARN" in _rank_logs(tmp_path / "logs-fail")[0][0]


@pytest.mark.slow
@needs_extra
def test_two_ranks_align_on_the_fly_each_detecting_its_share(orl_subset, float_weights, tmp_path):
    # --align mtcnn under torchrun: the report one process gives, and every face detected once in
    # all (each rank its share by content, met by an all-gather), not once per rank.
    args = ["run", "identification", "-w", float_weights, "--data", orl_subset, "--device", "cpu",
            "--batch-size", 4, "--align", "mtcnn"]
    r1, r2, per_rank = _one_then_two_ranks(args, tmp_path)
    assert _stable(r2) == _stable(r1)
    assert r1["dataset"]["alignment"]["aligned"] == 50
    detected = [c["faces_detected"] for c in per_rank]
    assert sum(detected) == 50 and min(detected) >= 10, detected
