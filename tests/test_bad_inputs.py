"""Bad input, driven by hypothesis: every command's numeric and path options and crafted checkpoint headers end in
exit 0 or exit 2 with one line, never a traceback, and within a stated memory bound (issue 22's rules).

The disk and memory a job may take are set small here (``DISK``, ``MEMORY``), so a size the machine could hold
is still refused by the same checks, and nothing large is ever generated: the point is the bounds, not the work.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import resource
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from gankit.checkpoint import FORMAT, save_generator
from gankit.cli import main
from gankit.config import GeneratorConfig
from gankit.model import Generator

DISK = 1 << 20  # what a job may write here: about 10,000 samples of the 10 x 10 test generator
MEMORY = 256 << 20  # what a job may allocate here
# Peak resident growth allowed over the whole test: the tiny jobs that pass the checks, plus torch's own caches.
PEAK_GROWTH = 1 << 30
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
HUGE = st.sampled_from([-(2**63), -1, 0, 1, 2**31, 2**40, 2**62, 2**63, 2**64, 10**30])
COUNTER = itertools.count()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = GeneratorConfig(latent_dim=8, hidden=(16,), image_shape=(1, 10, 10))
    return save_generator(tmp_path_factory.mktemp("model") / "g.safetensors", Generator(config))


@pytest.fixture(autouse=True)
def small_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("gankit.limits.free_disk", lambda path: DISK)
    monkeypatch.setattr("gankit.limits.available_memory", lambda: MEMORY)
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))


def run(*args: object) -> tuple[int, str]:
    """``gankit ARGS`` in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def assert_clean(code: int, err: str, command: str) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith(f"gankit {command}: error: ")]
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@SETTINGS
@given(
    n=st.one_of(HUGE, st.integers(-3, 300)),
    start=st.one_of(HUGE, st.integers(0, 100)),
    batch=st.one_of(HUGE, st.integers(-2, 64)),
    shard=st.one_of(HUGE, st.integers(-2, 128)),
    fmt=st.sampled_from(["npy", "png", "grid"]),
)
def test_sample_sizes(tiny_model: Path, tmp_path: Path, n: int, start: int, batch: int, shard: int, fmt: str) -> None:
    before = peak_rss()
    out = tmp_path / f"run{next(COUNTER)}{'.png' if fmt == 'grid' else ''}"
    args = ["sample", tiny_model, "--backend", "eager", "--quiet", "--out", out, "--format", fmt]
    code, err = run(*args, "--n", n, "--start", start, "--batch-size", batch, "--shard-size", shard)
    assert_clean(code, err, "sample")
    if code == 2:  # refused: nothing written
        assert not out.exists(), err
    assert peak_rss() - before < PEAK_GROWTH


@SETTINGS
@given(where=st.sampled_from(["under_file", "is_file", "fine"]), command=st.sampled_from(["sample", "export"]))
def test_output_paths(tiny_model: Path, tmp_path: Path, where: str, command: str) -> None:
    blocker = tmp_path / f"file{next(COUNTER)}"
    blocker.write_text("x")
    name = "g.onnx" if command == "export" else "s"
    out = {"under_file": blocker / name, "is_file": blocker, "fine": tmp_path / f"ok{next(COUNTER)}{name}"}[where]
    extra = ["--n", "4", "--backend", "eager", "--quiet"] if command == "sample" else []
    code, err = run(command, tiny_model, "--out", out, *extra)
    assert_clean(code, err, command)
    assert (code == 0) == (where == "fine"), err


@SETTINGS
@given(
    hidden=st.lists(st.one_of(st.integers(-2, 64), st.sampled_from([25_000, 10**6, 2**40])), min_size=0, max_size=4),
    latent=st.one_of(st.integers(-1, 16), st.sampled_from([10**6, 2**40])),
    shape=st.lists(st.integers(-1, 40), min_size=3, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.float64, torch.int64, torch.uint8]),
    poison=st.sampled_from([None, float("nan"), float("inf")]),
)
def test_crafted_checkpoint_headers(
    tmp_path: Path, hidden: list[int], latent: int, shape: list[int], dtype: torch.dtype, poison: float | None
) -> None:
    """The header claims a config; the tensors are those of a small real generator (8 -> 16 -> 1x10x10)."""
    before = peak_rss()
    small = Generator(GeneratorConfig(latent_dim=8, hidden=(16,), image_shape=(1, 10, 10)))
    tensors = {name: t.detach().to(dtype).contiguous() for name, t in small.state_dict().items()}
    if poison is not None and dtype.is_floating_point:
        tensors["layers.0.weight"][0, 0] = poison
    claim = json.dumps({"latent_dim": latent, "hidden": hidden, "image_shape": shape, "slope": 0.2})
    path = tmp_path / f"c{next(COUNTER)}.safetensors"
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": claim})
    for command in (["info", path, "--json"], ["sample", path, "--n", "4", "--backend", "eager", "--quiet"]):
        code, err = run(*command, *(["--out", tmp_path / f"o{next(COUNTER)}"] if command[0] == "sample" else []))
        assert_clean(code, err, command[0])
        honest = (latent, hidden, shape) == (8, [16], [1, 10, 10]) and dtype.is_floating_point and poison is None
        assert (code == 0) == honest, err
    assert peak_rss() - before < PEAK_GROWTH


@SETTINGS
@given(n=st.one_of(HUGE, st.integers(-3, 19)))
def test_eval_sizes(n: int) -> None:
    """Sizes eval must refuse up front: too few for a covariance, or more than the memory allows."""
    before = peak_rss()
    code, err = run("eval", "--n", n)
    assert_clean(code, err, "eval")
    assert code == 2 and peak_rss() - before < PEAK_GROWTH


@SETTINGS
@given(
    epochs=st.one_of(HUGE, st.integers(-1, 0)),
    batch=st.one_of(HUGE, st.integers(-1, 0)),
    g_hidden=st.sampled_from([[0], [-5], [10**6, 10**6], [2**40]]),
)
def test_train_sizes(tmp_path: Path, epochs: int, batch: int, g_hidden: list[int]) -> None:
    """Each draw has at least one size no machine here trains (bad epochs or batch, or a model beyond MEMORY)."""
    before = peak_rss()
    out = tmp_path / f"t{next(COUNTER)}"
    code, err = run("train", "--out", out, "--epochs", epochs, "--batch-size", batch, "--g-hidden", *g_hidden)
    assert_clean(code, err, "train")
    assert code == 2 and not out.exists() and peak_rss() - before < PEAK_GROWTH
