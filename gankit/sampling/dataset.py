"""Generated images straight into a training loop: ``GeneratedDataset``, a torch IterableDataset of batches.

It yields ``(images, indices)``: images (B, C, H, W) uint8 (default) or float32 in [-1, 1], and indices (B,)
int64, the sample indices of the seed. For a class-conditional generator it yields ``(images, labels, indices)``,
labels (B,) int64: those of its label spec (``labels=``, a ``gankit.labels.LabelSpec``; balanced when None), the
same as ``gankit sample`` writes beside its shards. An unconditional generator refuses a spec.

Its batches are those of ``gankit sample`` with the same batch and shard
sizes (each shard's batches start at the shard's first index; a batch can depend on its neighbours, e.g.
int8's activation ranges, so they must be the same batches), made by the same lanes (``gankit.sampling.lanes``):
its uint8 images are the shards' bytes.

Batches are dealt round-robin to every (rank, DataLoader worker) slot: batch k goes to slot k mod
(world x workers), slot = rank x workers + worker. So the slots' batches are disjoint and together they are
exactly samples start .. start+n-1, whatever the number of workers or ranks. The rank and world come from
explicit arguments, else from ``torch.distributed`` when it is initialised (read when the dataset is made,
in the training process), else 0 and 1; the worker from ``torch.utils.data.get_worker_info()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gankit.backends.resolve import open_backend
from gankit.errors import SamplingError
from gankit.labels import LabelSpec, resolve
from gankit.sampling.job import BATCH, SHARD_SIZE
from gankit.sampling.lanes import Lane, open_lanes
from gankit.sampling.ranks import Ranks

OUTPUTS = {"uint8": "uint8", "float": "float32"}


def _distributed() -> Ranks:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def grid_batch(k: int, start: int, n: int | None, batch_size: int, shard_size: int) -> tuple[int, int] | None:
    """(first index, count) of batch ``k`` of samples start .. start+n-1 (n=None: endless) on ``gankit sample``'s
    grid: each shard's batches start at the shard's first index and every ``batch_size`` after it. None past
    the end."""
    per_shard = -(-shard_size // batch_size)
    offset = k // per_shard * shard_size + k % per_shard * batch_size
    count = min(batch_size, shard_size - k % per_shard * batch_size)
    if n is not None:
        if offset >= n:
            return None
        count = min(count, n - offset)
    return start + offset, count


class GeneratedDataset(torch.utils.data.IterableDataset):
    """Samples start .. start+n-1 of ``seed`` (n=None: endless) as batches (images, indices), or (images, labels,
    indices) for a class-conditional generator; module docstring.

    Use it with ``DataLoader(dataset, batch_size=None, num_workers=K)``: it batches itself. ``backend`` and
    ``precision`` are ``gankit sample``'s (``auto`` is resolved once, when the dataset is made, on rank 0 for
    every rank); the model runs on ``device`` and images come back on the CPU."""

    def __init__(
        self,
        model: str | Path | None = None,
        seed: int = 0,
        start: int = 0,
        n: int | None = None,
        backend: str = "auto",
        precision: str = "fp32",
        batch_size: int = BATCH,
        output: str = "uint8",
        shard_size: int = SHARD_SIZE,
        device: str = "cpu",
        rank: int | None = None,
        world: int | None = None,
        labels: LabelSpec | None = None,
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise SamplingError(f"unknown output {output!r}; choose from {', '.join(OUTPUTS)}")
        if n is not None and n <= 0 or start < 0 or not 0 <= seed < 2**64 or batch_size <= 0 or shard_size <= 0:
            raise SamplingError(
                f"need n > 0 or None, start >= 0, 0 <= seed < 2**64 and positive batch and shard sizes (got n={n}, "
                f"start={start}, seed={seed}, batch_size={batch_size}, shard_size={shard_size})"
            )
        if (rank is None) != (world is None) or rank is not None and not 0 <= rank < world:
            raise SamplingError(f"give both rank and world, with 0 <= rank < world (got {rank}, {world})")
        ranks = Ranks(rank, world) if rank is not None else _distributed()
        share = ranks.share if rank is None and ranks.world > 1 else (lambda compute: compute())
        opened = open_backend(model, backend, precision, device, batch_size, log=lambda message: None, share=share)
        self.model, self.seed, self.start, self.n = model, seed, start, n
        self.backend, self.precision, self.device = opened.name, opened.precision, device
        self.batch_size, self.shard_size, self.output = batch_size, shard_size, output
        self.rank, self.world = ranks.rank, ranks.world
        self.image_shape = opened.config.image_shape
        self.num_classes = opened.num_classes
        self.labels = resolve(labels, self.num_classes)
        self._lanes: dict[int, Lane] = {os.getpid(): open_lanes(opened, labels=self.labels)[0]}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for spawned DataLoader workers without the runtime sessions: each process opens its own."""
        return {**self.__dict__, "_lanes": {}}

    def _lane(self) -> Lane:
        """This process's lane: DataLoader workers open their own (a session does not survive a fork)."""
        pid = os.getpid()
        if pid not in self._lanes:
            opened = open_backend(
                self.model, self.backend, self.precision, self.device, self.batch_size, log=lambda message: None
            )
            self._lanes[pid] = open_lanes(opened, labels=self.labels)[0]
        return self._lanes[pid]

    def batch(self, k: int) -> tuple[int, int] | None:
        """(first index, count) of batch ``k`` on ``gankit sample``'s grid, or None past the end."""
        return grid_batch(k, self.start, self.n, self.batch_size, self.shard_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        slot, slots = self.rank * workers + worker, self.world * workers
        lane, dtype, k = self._lane(), getattr(torch, OUTPUTS[self.output]), slot
        while (batch := self.batch(k)) is not None:
            first, count = batch
            images = torch.empty((count, *self.image_shape), dtype=dtype)
            lane.fill(self.seed, first, images)
            indices = torch.arange(first, first + count)
            if self.labels is None:
                yield images, indices
            else:
                yield images, self.labels.labels(self.seed, first, count, self.num_classes), indices
            k += slots
