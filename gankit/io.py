"""Files written so that a crash never leaves half of one under its real name, checksums, and JSON.

The one copy of these helpers: checkpoints, ONNX exports, manifests, reports and caches all use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it, which is not thread-safe


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    ``durable`` fsyncs the finished file before the rename, so a power loss cannot leave an empty file
    under the real name (worth it for checkpoints; too slow for thousands of small PNGs).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the final file gets the usual permissions
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cache_dir() -> Path:
    """Where gankit keeps what it measures or derives once per machine: ``$GANKIT_CACHE_DIR``, else ~/.cache/gankit."""
    return Path(os.environ.get("GANKIT_CACHE_DIR", Path.home() / ".cache" / "gankit"))


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike[str], payload: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent, sort_keys=sort_keys))
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; OSError or ValueError (json.JSONDecodeError) as the file is missing or malformed."""
    return json.loads(Path(path).read_text())
