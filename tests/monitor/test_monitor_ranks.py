"""The Monitor under torch.distributed: two gloo ranks training one DDP model on CPU.

Rank 0 evaluates and writes the history; every rank gets its verdict. A rank that waits longer
than the monitor's timeout raises one clear error instead of hanging.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import write_folders_dataset

REPO = Path(__file__).absolute().parents[2]

WORKER = textwrap.dedent("""
    import json, sys, time
    import torch, torch.distributed as dist
    from torch import nn
    from facediag.errors import FacediagError
    from facediag.monitor import Monitor

    faces, history, delay, timeout = sys.argv[1:5]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16)))
    monitor = Monitor(data=faces, vlr_size=16, device="cpu", history=history, timeout=float(timeout))
    records = []
    try:
        for step in (0, 1):
            if rank == 0:
                time.sleep(float(delay))
            records.append(monitor(model, step=step).record())
        print(json.dumps(records))
        dist.destroy_process_group()
    except FacediagError as exc:
        print("FacediagError: " + str(exc), flush=True)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(tmp_path: Path, faces: Path, delay: float, timeout: float) -> list[subprocess.CompletedProcess]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, str(script), str(faces), str(tmp_path / "monitor.jsonl"),
                                       str(delay), str(timeout)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_folders_dataset(tmp_path_factory.mktemp("held") / "faces", subjects=4, images=5)


def test_rank_0_evaluates_and_every_rank_gets_its_verdict(faces, tmp_path):
    rank0, rank1 = _two_ranks(tmp_path, faces, delay=0, timeout=120)
    assert rank0.returncode == 0 and rank1.returncode == 0, rank0.stderr + rank1.stderr
    records0, records1 = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (rank0, rank1))
    assert records0 == records1 and [r["step"] for r in records0] == [0, 1]
    assert "identification.rank1" in records0[0]["metrics"]
    lines = (tmp_path / "monitor.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records0  # written once, by rank 0


def test_a_rank_that_waits_past_the_timeout_raises_instead_of_hanging(faces, tmp_path):
    rank0, rank1 = _two_ranks(tmp_path, faces, delay=10, timeout=3)
    assert "FacediagError: monitor on rank 1: no verdict from every rank within 3 s" in rank1.stdout, \
        rank1.stdout + rank1.stderr
