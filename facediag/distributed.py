"""The torchrun environment: one process per GPU (or per CPU share), rank 0 decides and writes.

Launched by ``torchrun`` (WORLD_SIZE > 1), ``Distributed.from_env`` starts the process group
(NCCL on GPUs, gloo on CPU); otherwise it is a world of one whose every method is a no-op, so
callers have no special cases and a plain run starts no process group. The trainer uses it
for DDP; run-all, run and compare use it to shard the embedding pass (``shard``), meet by
``all_gather_object`` and hand rank 0's exit code to every rank (``decide``).
"""
from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from facediag.device import resolve_device

FAIL_GRACE_S = 2.0  # how long the other ranks outlast rank 0 when the run failed (see decide)


@dataclass
class Distributed:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised: bool = False  # this object started the process group, so it also ends it
    leave_late: bool = False  # set by decide: this rank outlasts rank 0's failure (see close)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_spec: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        cuda = torch.cuda.is_available() and device_spec != "cpu"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        initialised = False
        if not torch_dist.is_initialized():
            if cuda:  # NCCL's object collectives stage through the current device: make it this rank's
                torch.cuda.set_device(local_rank)
            # Ranks > 0 wait while rank 0 validates or runs the checks: allow a long wait.
            torch_dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
            initialised = True
        return cls(world, torch_dist.get_rank(), local_rank, initialised)

    def device(self, spec: str) -> torch.device:
        if self.world == 1:
            return resolve_device(spec)
        if torch.cuda.is_available() and spec != "cpu":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def shard(self, n: int, batch: int = 1) -> range:
        """This rank's rows of ``n``: a contiguous block of whole ``batch``-sized chunks, the blocks
        of all ranks covering 0..n-1 in order. Aligned to the batch, each rank's batches are the
        ones a single process would run, so even a model whose output depends on its batch
        (dynamic int8 quantisation scales activations per batch) gives the same embeddings."""
        chunks = -(-n // batch)
        start, stop = chunks * self.rank // self.world, chunks * (self.rank + 1) // self.world
        return range(min(start * batch, n), min(stop * batch, n))

    def all_gather_object(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch_dist.all_gather_object(out, obj)
        return out

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (decisions such as early stopping)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._tensor_device())
        torch_dist.broadcast(t, 0)
        return float(t.item())

    def decide(self, exit_code: int) -> int:
        """Rank 0's exit code on every rank: torchrun fails the job when any rank exits non-zero,
        so every rank must end as rank 0 decided (the others pass anything)."""
        code = int(self.broadcast(float(exit_code)))
        # torchrun's agent terminates the other ranks the moment it sees one fail: after a failed
        # run the others leave after rank 0 (see close), so that torchrun names rank 0 (the
        # report's rank and its code) as the root cause, then ends them or sees them exit alike
        self.leave_late = self.world > 1 and code != 0 and not self.main
        return code

    def mean(self, values: list[float]) -> list[float]:
        """Average per-rank numbers (epoch loss, paired cosine) over ranks."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._tensor_device())
        torch_dist.all_reduce(t)
        return (t / self.world).tolist()

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def close(self, together: bool = True) -> None:
        """End the process group this object started. ``together``: first wait for every rank, so
        that no rank tears its gloo connections down while a peer still uses them (seen: the
        peer then aborted at exit, 'terminate called without an active exception', about one
        run in three on CPU). After an error the other ranks may never arrive: no wait then."""
        if self.initialised:
            if together:
                torch_dist.barrier()
            torch_dist.destroy_process_group()
            self.initialised = False
        if self.leave_late:
            time.sleep(FAIL_GRACE_S)

    @staticmethod
    def _tensor_device() -> str:
        # NCCL only reduces CUDA tensors; gloo reduces CPU ones.
        return "cuda" if torch_dist.get_backend() == "nccl" else "cpu"


@contextmanager
def launched(device_spec: str) -> Iterator[Distributed]:
    """The Distributed of this process for the length of a command; the process group (if this
    started one) is ended on the way out: by all ranks together, or at once after an error."""
    dist = Distributed.from_env(device_spec)
    try:
        yield dist
    except BaseException:
        dist.close(together=False)
        raise
    dist.close()
