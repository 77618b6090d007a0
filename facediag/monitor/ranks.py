"""The monitor under torch.distributed: rank 0 evaluates, the others wait for its verdict.

Chosen over sharding the held-out set: a held-out set is small beside the training set, rank 0
alone then keeps the prepared pixels (the others hold nothing), and one verdict, one history
and one set of sinks need no merging. Every rank calls the monitor at the same step, as it calls
its optimiser; rank 0 runs the checks on the inner module (``model.module``, so the call is no
collective of DDP's), then broadcasts its record, and each rank returns the same result, so
``should_stop`` breaks every rank's loop at the same step.

Unable to hang: the broadcast goes over a gloo group of its own (CPU objects, whatever the
training backend) made with a timeout. A rank that waits longer than that for the others (rank 0
still evaluating, or a rank that is slow or gone) raises FacediagError naming the wait instead of
blocking forever; rank 0 broadcasts its own failure too, so the others raise at once.
"""
from __future__ import annotations

import datetime

import torch.distributed as dist

from facediag.errors import FacediagError

DEFAULT_TIMEOUT_S = 1800.0  # the first call decodes the held-out set: allow it, bound the rest


class Ranks:
    """The world a Monitor lives in. Made by the Monitor's constructor, which every rank must run
    (making the group is a collective); a world of one when torch.distributed is not initialised."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = float(timeout_s)
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world > 1 else 0
        self.group = None
        if self.world > 1:
            self.group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=self.timeout_s))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, record: dict | None, error: str | None = None) -> dict:
        """Rank 0's record (or its error) on every rank; rank 0 passes its own, the others None."""
        if self.world == 1:
            return record
        box = [{"record": record, "error": error} if self.main else None]
        try:
            dist.broadcast_object_list(box, src=0, group=self.group)
        except RuntimeError as exc:
            raise FacediagError(f"monitor on rank {self.rank}: no verdict from every rank within "
                                f"{self.timeout_s:g} s (a rank slow, stopped or not calling the monitor at this "
                                f"step): {str(exc).splitlines()[0][:200]}") from None
        if box[0]["error"] is not None:
            raise FacediagError(f"monitor on rank {self.rank}: rank 0's call failed: {box[0]['error']}")
        return box[0]["record"]
