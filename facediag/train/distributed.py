"""The torchrun environment of a training run: one process per GPU, rank 0 validates, logs and
writes files. With one process every method is a no-op, so the loop has no special cases."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from facediag.device import resolve_device


@dataclass
class Distributed:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised: bool = False  # this object started the process group, so it also ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_spec: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        cuda = torch.cuda.is_available() and device_spec != "cpu"
        initialised = False
        if not dist.is_initialized():
            # Ranks > 0 wait while rank 0 validates: allow a long validation.
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
            initialised = True
        return cls(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), initialised)

    def device(self, spec: str) -> torch.device:
        if self.world == 1:
            return resolve_device(spec)
        if torch.cuda.is_available() and spec != "cpu":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (decisions such as early stopping)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._tensor_device())
        dist.broadcast(t, 0)
        return float(t.item())

    def mean(self, values: list[float]) -> list[float]:
        """Average per-rank numbers (epoch loss, paired cosine) over ranks."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._tensor_device())
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.initialised:
            import torch.distributed as dist

            dist.destroy_process_group()

    @staticmethod
    def _tensor_device() -> str:
        import torch.distributed as dist

        # NCCL only reduces CUDA tensors; gloo reduces CPU ones.
        return "cuda" if dist.get_backend() == "nccl" else "cpu"
