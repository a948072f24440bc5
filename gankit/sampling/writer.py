"""Shard files: written atomically and hashed on the way out, by a thread, so generation never waits on disk."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import SamplingError
from gankit.io import atomic_path, write_json
from gankit.pixels import save_png
from gankit.sampling.job import ShardRecord


class _HashingFile:
    """A write-only file wrapper that hashes what goes through it."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)


def write_shard(out: Path, name: str, first: int, images: np.ndarray) -> ShardRecord:
    """Write one shard atomically; OSError (disk full, permissions) propagates with nothing half-written."""
    if name.endswith("/"):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        for offset, image in enumerate(images):
            path = folder / f"{first + offset:09d}.png"
            with atomic_path(path) as tmp:
                save_png(torch.from_numpy(image), tmp)
            data = path.read_bytes()
            digest.update(data)
            size += len(data)
        return ShardRecord(name, first, len(images), size, digest.hexdigest())
    with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
        hashing = _HashingFile(handle)
        np.lib.format.write_array(hashing, images, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    return ShardRecord(name, first, len(images), hashing.size, hashing.digest.hexdigest())


class ShardWriter:
    """A background thread that turns finished shard buffers into files, so generation never waits on disk."""

    def __init__(self, out: Path, journal: Path) -> None:
        self.out, self.journal = out, journal
        self._closed = False
        self.records: list[ShardRecord] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
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
                write_json(self.journal, {"shards": [asdict(r) for r in self.records]}, sort_keys=True)
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
