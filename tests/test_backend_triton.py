"""The triton backend: same (seed, index) -> same image as eager; per-layer fallback; clear unavailability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.backends import create_backend
from gankit.checkpoint import save_generator
from gankit.config import GeneratorConfig
from gankit.model import Generator

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("output", ["float", "uint8"])
def test_same_seed_and_index_same_image_as_eager(seed_generator: Generator, output: str) -> None:
    triton_backend = create_backend("triton", seed_generator)
    eager = create_backend("eager", seed_generator, device="cpu")
    assert "whole-generator" in triton_backend.describe()
    got = triton_backend.generate_seeded(5, 1000, 37, output=output).cpu()
    expected = eager.generate_seeded(5, 1000, 37, output=output)
    tolerance = 1 if output == "uint8" else 1e-5
    assert (got.float() - expected.float()).abs().max().item() <= tolerance
    assert got.shape == (37, 1, 28, 28)


def test_per_layer_kernels_for_a_generator_that_does_not_fit() -> None:
    torch.manual_seed(3)
    generator = Generator(GeneratorConfig(latent_dim=12, hidden=(40,), image_shape=(1, 6, 6))).eval()
    backend = create_backend("triton", generator)
    assert "per-layer" in backend.describe()
    expected = create_backend("eager", generator, device="cpu").generate_seeded(1, 0, 19)
    assert (backend.generate_seeded(1, 0, 19).cpu() - expected).abs().max().item() <= 1e-5


def test_unavailable_without_gpu_or_interpreter_is_a_clear_error(tmp_path: Path, seed_generator: Generator) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the backend is available")
    model = save_generator(tmp_path / "g.safetensors", seed_generator)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "sample", str(model), "--backend", "triton", "--out", str(tmp_path / "o.png")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "backend 'triton' is not available here: no CUDA device" in result.stderr
    assert "TRITON_INTERPRET=1" in result.stderr and "Traceback" not in result.stderr
