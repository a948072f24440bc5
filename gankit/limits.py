"""Bounds checked before anything is allocated or written: a size from the command line or a file header that
the machine cannot hold is refused in one line naming the size, the need and the limit."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from gankit.errors import ResourceError
from gankit.io import existing_ancestor

GIB = 1 << 30


def available_memory() -> int:
    """Bytes a new allocation can get without swapping: MemAvailable of /proc/meminfo where there is one, else
    the physical memory."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def free_disk(path: str | os.PathLike[str]) -> int:
    """Free bytes on the file system that holds ``path`` (or will, once it is created)."""
    return shutil.disk_usage(existing_ancestor(Path(path))).free


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:,.2f} GiB" if nbytes >= GIB // 10 else f"{nbytes / (1 << 20):,.2f} MiB"


def require_memory(what: str, need: int) -> None:
    """ResourceError unless ``need`` bytes fit in the memory available now."""
    limit = available_memory()
    if need > limit:
        raise ResourceError(f"{what} needs {_size(need)} of memory; {_size(limit)} is available")


def require_disk(what: str, need: int, path: str | os.PathLike[str]) -> None:
    """ResourceError unless ``need`` bytes fit in the free space of the file system holding ``path``."""
    limit = free_disk(path)
    if need > limit:
        raise ResourceError(f"{what} needs {_size(need)} on disk; {_size(limit)} is free under {path}")
