"""Shared fixtures. Without a CUDA device, Triton kernels run under its CPU interpreter.

``make test`` runs one pytest-xdist worker a core with ``--dist loadgroup``: tests that share an expensive
module-scoped fixture (a compiled package, a browser, a Ray cluster, a trained run) carry one ``xdist_group`` so
that one worker builds it once, and tests marked ``slow`` are handed out first (``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers (and the processes their tests start) share the cores. An OpenMP thread that waits for work
    # sleeps instead of spinning, so that it never holds a core another worker's threads are waiting for.
    # Set before torch loads libgomp, which reads it once; subprocesses inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402  (a dependency of torch)

from gankit.checkpoint import save_generator  # noqa: E402
from gankit.config import GeneratorConfig  # noqa: E402
from gankit.model import Generator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL_CONFIG = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10), slope=0.2)
SMALL_CONDITIONAL = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10), num_classes=10)


def _xdist_group(item: pytest.Item) -> str | None:
    """The group pytest-xdist's loadgroup gives ``item``: its ``xdist_group`` names, sorted and joined by "_"."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) if names else None


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first, the rest in their order (a stable sort). pytest-xdist hands tests out in this
    order, so the last ones to start are short and the workers finish together; a long test started last would
    keep one worker busy while the others wait.

    In a loadgroup worker, a grouped test's node id ends in "@GROUP", which is how the scheduler learns the group.
    pytest-xdist 3.8 writes that suffix to a field pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386), so
    every group would be spread over the workers without a word; the suffix is written here where it is missing.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        group = _xdist_group(item)
        if group and not item.nodeid.endswith(f"@{group}") and hasattr(item, "_id"):
            item._id = type(item._id).parse(f"{item.nodeid}@{group}")


@pytest.fixture
def small_generator() -> Generator:
    """A fresh random generator with odd, non-power-of-two sizes (fast; independent of shipped weights)."""
    torch.manual_seed(1234)
    return Generator(SMALL_CONFIG).eval()


@pytest.fixture
def seed_generator() -> Generator:
    """A fresh random generator with the seed's default sizes (100 -> 256 -> 512 -> 784)."""
    torch.manual_seed(4321)
    return Generator().eval()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A GANKIT_CACHE_DIR of the test's own (exports, auto choices, lanes splits): its path."""
    path = tmp_path / "cache"
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(path))
    return path


@pytest.fixture
def model_file(tmp_path, small_generator):
    """``small_generator`` saved as a gankit file."""
    return save_generator(tmp_path / "g.safetensors", small_generator)


@pytest.fixture
def conditional_file(tmp_path):
    """A fresh class-conditional generator of SMALL_CONDITIONAL's sizes, saved as a gankit file."""
    torch.manual_seed(2024)
    return save_generator(tmp_path / "conditional.safetensors", Generator(SMALL_CONDITIONAL).eval())


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees: the parent of the workers' own base folders
    (the run's base folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(folder: Path, build: Callable[[Path], object]) -> Path:
    """``folder``, filled by ``build(folder)`` once a test run: the first worker to ask builds it (under a file
    lock, into a side folder renamed into place when complete), the others wait for it and reuse it. Tests must
    not change what is in it: copy it first."""
    with FileLock(f"{folder}.lock"):
        if not folder.is_dir():
            partial = folder.with_name(f"{folder.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            build(partial)
            partial.rename(folder)
    return folder


@pytest.fixture(scope="session")
def bundled_grid_cache(run_folder: Path) -> Path:
    """A folder with ``grid.png`` and ``cache``: the GANKIT_CACHE_DIR that ``gankit sample --n 64 --out grid.png``
    (the bundled generator, every option its default) leaves behind, with its ONNX export and --backend auto's
    choice for the bundled generator. Made once a run; copy ``cache`` before using it."""

    def build(folder: Path) -> None:
        env = {**os.environ, "GANKIT_CACHE_DIR": str(folder / "cache")}
        command = [sys.executable, "-m", "gankit", "sample", "--n", "64", "--out", str(folder / "grid.png")]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    return build_once(run_folder / "bundled-grid-cache", build)
