"""Shard files: written atomically and checksummed by a thread, so generation never waits on the disk.

The checksum is CRC-32 (zlib; ~7 GB/s a core against sha256's ~2 GB/s: on 2 cores, sha256 of every 784-byte
image took ~15% of the time the int8 model needs for it). It guards against corrupted or truncated copies, not
against tampering; the manifest names it beside every shard (``gankit.sampling.job.ShardRecord``), and runs
recorded with sha256 before are still read.
"""

from __future__ import annotations

import os
import queue
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import SamplingError
from gankit.io import atomic_path, write_json
from gankit.pixels import save_png
from gankit.sampling.job import ShardRecord

CHECKSUM = "crc32"
QUEUED = 1  # finished shards waiting for the writer (beside the one it writes): each holds a whole shard in memory


def _crc32(*chunks: bytes | np.ndarray) -> str:
    value = 0
    for chunk in chunks:
        value = zlib.crc32(chunk, value)  # releases the GIL on large buffers
    return f"{value:08x}"


def write_shard(out: Path, name: str, first: int, images: np.ndarray) -> ShardRecord:
    """Write one shard atomically and durably (fsync); OSError (disk full, permissions) propagates with nothing
    half-written. images: (count, C, H, W) C-contiguous uint8 or float16."""
    if name.endswith("/"):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for offset, image in enumerate(images):
            path = folder / f"{first + offset:09d}.png"
            with atomic_path(path) as tmp:
                save_png(torch.from_numpy(image), tmp)
            files.append(path.read_bytes())
        return ShardRecord(name, first, len(images), sum(map(len, files)), _crc32(*files), CHECKSUM)
    with atomic_path(out / name) as tmp:
        with open(tmp, "wb") as handle:
            np.lib.format.write_array(handle, images, allow_pickle=False)  # a real file: written from memory, no copy
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        with open(tmp, "rb") as handle:
            header = handle.read(size - images.nbytes)
    return ShardRecord(name, first, len(images), size, _crc32(header, images), CHECKSUM)


class ShardWriter:
    """A background thread that turns finished shard buffers into files, so generation never waits on disk."""

    def __init__(self, out: Path, journal: Path) -> None:
        self.out, self.journal = out, journal
        self._closed = False
        self.records: list[ShardRecord] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUED)
        self._thread = threading.Thread(target=self._loop, name="gankit-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue
            name, first, buffer, ready = item
            try:
                if ready is not None:
                    ready.synchronize()
                record = write_shard(self.out, name, first, buffer.numpy())
                self.records.append(record)
                write_json(self.journal, {"shards": [r.to_json() for r in self.records]}, sort_keys=True)
            except BaseException as exc:  # reported to the producer on its next put or at close
                self.error = exc

    def put(self, name: str, first: int, buffer: torch.Tensor, ready: torch.cuda.Event | None) -> None:
        self._raise_if_failed()
        self._queue.put((name, first, buffer, ready))

    def close(self, raise_error: bool = True) -> None:
        """Wait for the queued shards to be written; then raise the writer's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is None:
            return
        error = self.error
        if isinstance(error, OSError):
            raise SamplingError(
                f"cannot write under {self.out} ({error.strerror or error}); the {len(self.records)} shard(s) "
                "written so far are recorded: free space or fix permissions, then rerun with --resume"
            ) from error
        raise error
