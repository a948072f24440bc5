"""The triton backend: the same (seed, index) gives the same image as eager; per-layer fallback; clear errors.

Tolerances, max |Δ| against eager fp32 on images in [-1, 1]: fp32 1e-5; fp16 1e-2 and bf16 2e-2 (the
kernels' own, see tests/test_generator_kernel.py); uint8 one level (fp32 values a few ulps apart
round differently only next to a half level).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.backends import create_backend
from gankit.backends.triton import TritonBackend
from gankit.checkpoint import save_generator
from gankit.config import GeneratorConfig
from gankit.errors import BackendError
from gankit.model import Generator

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 2e-2}


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.cpu().float() - b.cpu().float()).abs().max().item()


@pytest.mark.parametrize("output", ["float", "uint8"])
def test_same_seed_and_index_same_image_as_eager(seed_generator: Generator, output: str) -> None:
    """generate_seeded: the kernel makes the noise itself; eager takes it from gankit.noise."""
    triton_backend = create_backend("triton", seed_generator)
    eager = create_backend("eager", seed_generator, device="cpu")
    assert "whole-generator" in triton_backend.describe()
    got = triton_backend.generate_seeded(5, 1000, 37, output=output)
    expected = eager.generate_seeded(5, 1000, 37, output=output)
    assert got.shape == expected.shape == (37, 1, 28, 28) and got.dtype == expected.dtype
    assert max_difference(got, expected) <= (1 if output == "uint8" else TOLERANCE["fp32"])


def test_one_sample_is_the_same_in_any_batch(seed_generator: Generator) -> None:
    """Sample 47 of seed 11 alone and inside a batch: the same noise bit for bit; the same image within
    2 x TOLERANCE["fp32"] (the dots' fp32 sums run in another order: an autotuned block on a GPU, BLAS's
    handling of a row's position in a block under the interpreter; each image is within TOLERANCE of the
    float64 reference, so the two are within twice that) and one uint8 level. The same call twice: equal."""
    from gankit.noise import noise

    latent = seed_generator.config.latent_dim
    assert torch.equal(noise(11, 40, 20, latent)[7], noise(11, 47, 1, latent)[0])
    backend = create_backend("triton", seed_generator)
    eager = create_backend("eager", seed_generator, device="cpu")
    batch = backend.generate_seeded(11, 40, 20)
    alone = backend.generate_seeded(11, 47, 1)[0]
    assert max_difference(alone, eager.generate_seeded(11, 47, 1)[0]) <= TOLERANCE["fp32"]
    assert max_difference(alone, batch[7]) <= 2 * TOLERANCE["fp32"]
    batch_levels = backend.generate_seeded(11, 40, 20, output="uint8")
    assert max_difference(backend.generate_seeded(11, 47, 1, output="uint8")[0], batch_levels[7]) <= 1
    assert torch.equal(backend.generate_seeded(11, 40, 20), batch)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_generate_from_z_matches_eager(small_generator: Generator, precision: str) -> None:
    backend = create_backend("triton", small_generator, precision=precision)
    assert backend.packed.dtype == backend.dtype  # weights cast once, at construction
    z = torch.randn(65, small_generator.config.latent_dim)
    expected = create_backend("eager", small_generator, precision="fp32", device="cpu").generate(z)
    assert max_difference(backend.generate_float(z), expected) <= TOLERANCE[precision]


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(latent_dim=12, hidden=(40,), image_shape=(1, 6, 6)),  # two Linears
        GeneratorConfig(latent_dim=9, hidden=(24, 30, 18), image_shape=(1, 5, 5)),  # four Linears
        GeneratorConfig(latent_dim=16, hidden=(32, 32), image_shape=(3, 20, 40)),  # 2400 outputs: too wide
    ],
    ids=["2-layers", "4-layers", "wide-output"],
)
@pytest.mark.parametrize("output", ["float", "uint8"])
def test_per_layer_kernels_where_the_whole_generator_does_not_fit(config: GeneratorConfig, output: str) -> None:
    torch.manual_seed(3)
    generator = Generator(config).eval()
    backend = create_backend("triton", generator)
    assert "per-layer" in backend.describe()
    expected = create_backend("eager", generator, device="cpu").generate_seeded(1, 0, 19, output=output)
    got = backend.generate_seeded(1, 0, 19, output=output)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert max_difference(got, expected) <= (1 if output == "uint8" else TOLERANCE["fp32"])


def test_empty_batch(small_generator: Generator) -> None:
    backend = create_backend("triton", small_generator)
    assert backend.generate_seeded(0, 0, 0).shape == (0, 1, 10, 10)
    assert backend.generate(torch.zeros(0, 20), output="uint8").shape == (0, 1, 10, 10)


def test_bad_arguments_are_backend_errors(small_generator: Generator) -> None:
    backend = create_backend("triton", small_generator)
    with pytest.raises(BackendError, match=r"z must be \(batch, 20\), got \(3, 21\)"):
        backend.generate(torch.zeros(3, 21))
    with pytest.raises(BackendError, match="output must be one of float, uint8, got 'png'"):
        backend.generate_seeded(0, 0, 3, output="png")
    with pytest.raises(BackendError, match="need start >= 0"):
        backend.generate_seeded(0, -1, 3)
    with pytest.raises(BackendError, match="supports precisions fp32, tf32, fp16, bf16, not 'int8'"):
        TritonBackend(small_generator, precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="device cuda asked for, but no CUDA device is available"):
            TritonBackend(small_generator, device="cuda")


def test_unavailable_reason_without_gpu_or_interpreter(monkeypatch: pytest.MonkeyPatch, small_generator) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = TritonBackend.unavailable_reason()
    assert (
        reason == "no CUDA device; set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter (slow, for testing)"
    )
    with pytest.raises(BackendError, match="backend 'triton' is not available here: no CUDA device"):
        TritonBackend(small_generator)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TritonBackend.unavailable_reason() is None


def test_cli_says_so_in_one_line(tmp_path: Path, seed_generator: Generator) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the backend is available (the unit test above covers the message)")
    model = save_generator(tmp_path / "g.safetensors", seed_generator)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "sample", str(model), "--backend", "triton", "--out", str(tmp_path / "o.png")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "backend 'triton' is not available here: no CUDA device" in result.stderr
    assert "TRITON_INTERPRET=1" in result.stderr and "Traceback" not in result.stderr
