"""Shards made ahead of the writer: each shard's batches spread over the lanes, a bounded number of shards at once.

Who runs what while a run is under way::

    lanes (L threads)   noise -> model -> uint8 of one batch each, into its slice of a shard buffer (``lanes``)
    writer (1 thread)   checksum, write, fsync and journal of a finished shard (``writer``)
    main thread         starts shards, hands finished ones to the writer in order, moves the progress bar

So the noise of one batch, the model on another and the writing of an earlier shard run at the same time.
With one lane (GPUs, eager, compile, triton, or one CPU thread) the batches are made in the calling thread, and
on a GPU the copies into pinned host buffers stay asynchronous (an event tells the writer when a shard has
landed). At most ``IN_FLIGHT`` shards are being made, plus ``writer.QUEUED`` waiting for
the writer and the one it writes: each holds a whole shard in memory (51 MB of uint8 28x28 at 65,536).
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gankit.sampling.lanes import DTYPES, Lane
from gankit.sampling.writer import aligned_empty

if TYPE_CHECKING:  # CPU shards are NumPy arrays; torch makes the pinned buffers of a GPU run only
    import torch

IN_FLIGHT = 2  # shards being made at once: the lanes start the next while the last batches of one finish


@dataclass
class PendingShard:
    index: int
    first: int
    count: int
    buffer: np.ndarray | torch.Tensor  # a pinned tensor on a GPU run
    futures: list[Future] = field(default_factory=list)
    handed_over: bool = False

    def done(self) -> bool:
        return all(future.done() for future in self.futures)


class ShardMaker:
    """Makes shard buffers (count, C, H, W) of ``dtype`` on ``lanes``, ``batch_size`` samples a lane call.

    A shard's batches start at its first index and every ``batch_size`` after it, as they always did: batch
    composition can change an image (int8 quantizes each batch's activations with the batch's own range), so
    the batches, and so the images, are the same whatever the number of lanes, ranks or interruptions."""

    def __init__(
        self, lanes: list[Lane], image_shape: tuple[int, ...], dtype: str, batch_size: int, on_gpu: bool = False
    ) -> None:
        self.lanes, self.image_shape, self.batch_size, self.on_gpu = lanes, image_shape, batch_size, on_gpu
        self.dtype = DTYPES[dtype]
        self._pool = None
        if len(lanes) > 1:
            spare: queue.SimpleQueue[Lane] = queue.SimpleQueue()
            for lane in lanes:
                spare.put(lane)
            self._mine = threading.local()
            self._pool = ThreadPoolExecutor(
                len(lanes),
                thread_name_prefix="gankit-lane",
                initializer=lambda: setattr(self._mine, "lane", spare.get()),
            )

    def _fill(self, seed: int, first: int, out: Any) -> None:
        self._mine.lane.fill(seed, first, out)

    def start(self, seed: int, index: int, first: int, count: int) -> PendingShard:
        """Start shard ``index`` (samples first .. first+count-1); with one lane it is made before this returns."""
        shape = (count, *self.image_shape)
        if self.on_gpu:
            import torch

            buffer = torch.empty(shape, dtype=getattr(torch, self.dtype.name), pin_memory=True)
        else:  # page-aligned: the writer sends it to the disk without a copy (O_DIRECT)
            nbytes = count * math.prod(self.image_shape) * self.dtype.itemsize
            buffer = aligned_empty(nbytes).view(self.dtype).reshape(shape)
        shard = PendingShard(index, first, count, buffer)
        for offset in range(0, count, self.batch_size):
            out = buffer[offset : offset + self.batch_size]
            if self._pool is not None:
                shard.futures.append(self._pool.submit(self._fill, seed, first + offset, out))
            else:
                self.lanes[0].fill(seed, first + offset, out)
        return shard

    def finish(self, shard: PendingShard) -> tuple[np.ndarray | torch.Tensor, torch.cuda.Event | None]:
        """Wait for ``shard``'s batches (raising a lane's error); its buffer and, on a GPU, the copies' event."""
        for future in shard.futures:
            future.result()
        ready = None
        if self.on_gpu:
            import torch

            ready = torch.cuda.Event()
            ready.record()
        return shard.buffer, ready

    def make(
        self,
        seed: int,
        shards: list[tuple[int, int, int]],
        deliver: Callable[[PendingShard, Any, Any], None],
    ) -> bool:
        """Make ``shards`` ((index, first, count), in order), at most ``IN_FLIGHT`` at once, and ``deliver`` each
        finished one in order (shard, buffer, the GPU copies' event). Ctrl-C finishes and delivers the shards
        under way, so no work done is lost; returns whether it came (a second Ctrl-C, or an error, propagates)."""
        in_flight: deque[PendingShard] = deque()

        def deliver_oldest() -> None:
            shard = in_flight[0]
            if not shard.handed_over:
                deliver(shard, *self.finish(shard))
                shard.handed_over = True
            in_flight.popleft()

        try:
            for index, first, count in shards:
                in_flight.append(self.start(seed, index, first, count))
                while in_flight and (len(in_flight) > IN_FLIGHT or in_flight[0].done()):
                    deliver_oldest()
            while in_flight:
                deliver_oldest()
        except KeyboardInterrupt:
            while in_flight:
                deliver_oldest()
            return True
        return False

    def close(self) -> None:
        """Drop batches not started; wait for the running ones (one a lane at most)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
