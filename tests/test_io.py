"""gankit.io: a file's sha256 is read once a process for each version of the file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gankit.io as io


class _CountingHashlib:
    def __init__(self) -> None:
        self.calls = 0

    def sha256(self):
        self.calls += 1
        return hashlib.sha256()


def test_a_file_is_hashed_once_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    counting = _CountingHashlib()
    monkeypatch.setattr(io, "hashlib", counting)
    model = tmp_path / "model.bin"
    model.write_bytes(b"a" * 3000)
    first = io.sha256_of(model)
    assert io.sha256_of(str(model)) == first == hashlib.sha256(b"a" * 3000).hexdigest()
    assert counting.calls == 1
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(b"b" * 3000)  # same size, replaced atomically as gankit writes files
    os.replace(replacement, model)
    assert io.sha256_of(model) == hashlib.sha256(b"b" * 3000).hexdigest() and counting.calls == 2
    with open(model, "r+b") as handle:  # rewritten in place: a new mtime
        handle.write(b"c")
    os.utime(model, ns=(os.stat(model).st_atime_ns, os.stat(model).st_mtime_ns + 1))
    assert io.sha256_of(model) == hashlib.sha256(b"c" + b"b" * 2999).hexdigest() and counting.calls == 3
