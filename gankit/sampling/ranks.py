"""torchrun ranks: which process this is, and the collectives the sampling engine needs (broadcast, gather)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # this process joined the group itself (and leaves it in ``close``)

    @classmethod
    def from_environment(cls) -> Ranks:
        """torchrun sets WORLD_SIZE/RANK; join its process group (NCCL on GPU, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            use_nccl = torch.cuda.is_available()
            if use_nccl:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if use_nccl else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    def close(self) -> None:
        """Leave a group this process joined, after its last collective: a group still up when the interpreter
        exits can abort it ("terminate called without an active exception", seen with gloo on a busy CPU)."""
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False

    def broadcast(self, value: Any) -> Any:
        """rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        boxes: list[Any] = [None] * self.world
        dist.all_gather_object(boxes, value)
        return boxes

    def share(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 only, its result given to every rank (a choice measured once, not per rank)."""
        return self.broadcast(compute() if self.rank == 0 else None)
