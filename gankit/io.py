"""Files written so that a crash never leaves half of one under its real name, checksums, and JSON.

The one copy of these helpers: checkpoints, ONNX exports, manifests, reports and caches all use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gankit.errors import OutputError

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


_SHA256: dict[tuple, str] = {}  # (device, inode, size, mtime_ns) of a file -> its sha256, for this process


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks, once a process for each version of the file: a job that
    names its model in several places (the auto choices' key, the manifest, the export cache) hashes it once. A
    file rewritten in place gets a new mtime or size, and so a new hash."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def crc32_of(*paths: str | os.PathLike[str]) -> str:
    """Hex CRC-32 (zlib, 8 digits) of the files' bytes one after the other, read in 1 MiB blocks."""
    value = 0
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                value = zlib.crc32(block, value)
    return f"{value:08x}"


def finite_json(payload: Any) -> Any:
    """``payload`` with every NaN or infinite float replaced by None: JSON has no NaN (``json.dumps`` would write
    ``NaN``, which JSON readers refuse)."""
    if isinstance(payload, float):
        return payload if math.isfinite(payload) else None
    if isinstance(payload, dict):
        return {key: finite_json(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [finite_json(value) for value in payload]
    return payload


def dumps_json(payload: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Valid JSON of ``payload`` (non-finite floats as null; see ``finite_json``)."""
    return json.dumps(finite_json(payload), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | os.PathLike[str], payload: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``payload`` as valid JSON (``dumps_json``) to ``path`` atomically (see ``atomic_path``)."""
    text = dumps_json(payload, indent=indent, sort_keys=sort_keys)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike[str], what: str = "--out") -> None:
    """OutputError unless ``path`` (a file or folder, existing or not) could be created or written: the check a
    command makes before its work, so that work is not lost to an output it cannot write."""
    target = Path(path)
    if target.is_dir() or target.is_file():
        folder = target if target.is_dir() else target.parent
    else:
        folder = existing_ancestor(target)
        if not folder.is_dir():
            raise OutputError(f"cannot write {what} {target}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {target}: {folder} is not writable")


def refuse_overwrite(path: str | os.PathLike[str], force: bool, what: str = "result") -> None:
    """The one overwrite rule: a result already at ``path`` is replaced only when asked (``force``, the CLI's
    --force); commands that can continue a run offer --resume too (their own message)."""
    if not force and Path(path).exists():
        raise OutputError(f"{path} already exists ({what}); add --force to replace it, or choose another --out")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; OSError or ValueError (json.JSONDecodeError) as the file is missing or malformed."""
    return json.loads(Path(path).read_text())


LOCK = ".lock"


def _lock_owner(lock: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(lock.read_text())
        return owner if isinstance(owner, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written by its owner this instant, or damaged: not taken over


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def acquire_lock(folder: str | os.PathLike[str]) -> Path:
    """Make this process the one writer of ``folder``: ``folder/.lock`` holds its pid and host. A lock held by a
    live process refuses with OutputError; one left by a process that is gone (same host, no such pid) is taken
    over. Give it back with ``release_lock``."""
    lock = Path(folder) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is None:
                continue  # released meanwhile
            gone = owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"])
            if not gone:
                raise OutputError(
                    f"{folder} is being written by process {owner.get('pid', '?')} on {owner.get('host', '?')}; wait "
                    f"for it to finish (or, if that process is gone, remove {lock})"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(me))
        return lock
    raise OutputError(f"{folder}: could not take {lock} (another process keeps taking it); try again")


def release_lock(lock: Path) -> None:
    """Remove ``lock`` if this process holds it."""
    owner = _lock_owner(lock)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
