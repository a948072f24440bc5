"""Shared fixtures. Without a CUDA device, Triton kernels run under its CPU interpreter.

``make test`` runs one pytest-xdist worker a core with ``--dist loadgroup``: tests that share an expensive
module-scoped fixture (a compiled package, a browser, a Ray cluster, a trained run) carry one ``xdist_group`` so
that one worker builds it once, and tests marked ``slow`` are handed out first (``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers (and the processes their tests start) share the cores. An OpenMP thread that waits for work
    # sleeps instead of spinning, so that it never holds a core another worker's threads are waiting for.
    # Set before torch loads libgomp, which reads it once; subprocesses inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from gankit.checkpoint import save_generator  # noqa: E402
from gankit.config import GeneratorConfig  # noqa: E402
from gankit.model import Generator  # noqa: E402

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
