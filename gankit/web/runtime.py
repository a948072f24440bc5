"""onnxruntime-web's runtime files for ``gankit export --format web``: one pinned npm release, verified.

The WASM build only (``ort.wasm.min.js`` and the ``ort-wasm-simd-threaded`` module and binary it loads; no
WebGPU/WebGL): the page runs the generator on the CPU, the same float32 math as native onnxruntime. The tarball
is fetched once with ``npm pack`` into ``$GANKIT_CACHE_DIR/onnxruntime-web/`` and checked against the sha512
integrity the npm registry publishes for the pinned version (recorded here) every time it is used; a machine
without npm or network takes the same tarball copied into that folder.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from gankit.errors import ExportError
from gankit.io import atomic_path, cache_dir

ORT_WEB_VERSION = "1.30.0"
# `npm view onnxruntime-web@1.30.0 dist.integrity`: the registry's sha512 of the tarball, base64.
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
# Under package/dist/ in the tarball; the page loads the first, which loads the other two from env.wasm.wasmPaths.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NPM_TIMEOUT_S = 600
NPM_RETRIES = (
    "--fetch-retries=1",
    "--fetch-retry-mintimeout=2000",
    "--fetch-retry-maxtimeout=10000",
)  # offline: fail in seconds


def tarball_path() -> Path:
    """Where the pinned tarball is kept: ``$GANKIT_CACHE_DIR/onnxruntime-web/onnxruntime-web-X.Y.Z.tgz``."""
    return cache_dir() / "onnxruntime-web" / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"


def integrity_of(path: Path) -> str:
    """npm's integrity string of a file: ``sha512-`` and the base64 of its sha512."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _npm_reason(done: subprocess.CompletedProcess) -> str:
    """The line of npm's error output that says what failed (an ``...Error: ...`` line, else its first one)."""
    lines = [
        line.removeprefix("npm error").strip() for line in done.stderr.splitlines() if line.startswith("npm error")
    ]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "Error: " in line]
    return (errors or lines or [f"exit code {done.returncode}"])[0]


def _npm_pack(target: Path, log: Callable[[str], None]) -> None:
    """``npm pack onnxruntime-web@VERSION`` into ``target`` (atomically); ExportError (one line) when it cannot."""
    spec = f"onnxruntime-web@{ORT_WEB_VERSION}"
    npm = shutil.which("npm")
    if npm is None:
        raise ExportError(
            f"the web export needs {spec} and npm was not found: install Node.js with npm, "
            f"or copy onnxruntime-web-{ORT_WEB_VERSION}.tgz (from `npm pack {spec}`) to {target}"
        )
    log(f"fetching {spec} with npm (once, into {target.parent})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-pack.", dir=target.parent) as scratch:
        try:
            done = subprocess.run(
                [npm, "pack", spec, "--pack-destination", scratch, "--loglevel=error", *NPM_RETRIES],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                cwd=scratch,
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"npm pack {spec} took over {NPM_TIMEOUT_S} s; is the npm registry reachable?") from exc
        packed = Path(scratch) / target.name
        if done.returncode != 0 or not packed.is_file():
            raise ExportError(
                f"npm pack {spec} failed ({_npm_reason(done)}); check the network or copy the tarball to {target}"
            )
        with atomic_path(target) as tmp:
            shutil.move(packed, tmp)


def fetch_runtime(log: Callable[[str], None] = print) -> Path:
    """The verified tarball of the pinned onnxruntime-web: from the cache, else fetched with npm.

    A cached file that fails the integrity check is fetched again; a fetched one that fails it is an ExportError."""
    path = tarball_path()
    if path.is_file() and integrity_of(path) == ORT_WEB_INTEGRITY:
        return path
    if path.is_file():
        log(f"{path} does not match the integrity of onnxruntime-web {ORT_WEB_VERSION}; fetching it again")
    _npm_pack(path, log)
    found = integrity_of(path)
    if found != ORT_WEB_INTEGRITY:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"onnxruntime-web {ORT_WEB_VERSION} from npm has integrity {found}, not the pinned {ORT_WEB_INTEGRITY}"
        )
    return path


def copy_runtime(out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Write ``RUNTIME_FILES`` of the pinned onnxruntime-web into the folder ``out``; returns their paths."""
    tgz = fetch_runtime(log)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tgz, "r:gz") as archive:
        for name in RUNTIME_FILES:
            try:
                member = archive.extractfile(f"package/dist/{name}")
            except KeyError as exc:
                raise ExportError(f"{tgz} has no package/dist/{name}") from exc
            assert member is not None  # a regular file in the npm tarball
            with member, open(out / name, "wb") as handle:
                shutil.copyfileobj(member, handle)
            written.append(out / name)
    return written
