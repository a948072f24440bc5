"""The OpenVINO backend: fp32 parity with a float64 reference, bf16 within its stated bound, input checks.

Tolerances:
- fp32 (any z, |z| = 10 included): the rule of the ONNX parity gate (``gankit.onnx.parity``): 3x the error
  PyTorch's own fp32 forward has against float64 on the same z, never below 8 fp32 epsilons. It fails if the
  CPU plugin's bf16 default sneaks in (bf16 errors are ~1e-3, thousands of times PyTorch's fp32 error).
- bf16: 8 significant bits (unit roundoff 2^-9 ~ 2e-3) on the matmul inputs of three layers whose
  activations are O(1) and tanh's slope <= 1: a few roundoffs a layer, so 2e-2 (10 roundoffs), still 7x
  tighter than the 99.9th-percentile bound gankit bench holds bf16 paths to (gankit.tolerances.BENCH_QUANTILE_RULE).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import gankit.cpu
from gankit.backends import backend_names, create_backend
from gankit.backends.openvino import OpenVinoBackend
from gankit.cpu import CpuInfo
from gankit.errors import BackendError
from gankit.model import Generator
from gankit.noise import noise
from gankit.onnx.build import build_onnx
from gankit.onnx.parity import FP32_FLOOR, FP32_HEADROOM

BF16_TOL = 2e-2

needs_bf16 = pytest.mark.skipif(
    not gankit.cpu.cpu_info().has_bf16, reason="this CPU has no native bf16 (avx512_bf16/amx_bf16); see the twin test"
)


def reference(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    """The generator in float64 (on a copy, so the fixture stays float32)."""
    with torch.no_grad():
        return copy.deepcopy(generator).double()(z.double())


def max_error(images: torch.Tensor, want: torch.Tensor) -> float:
    return (images.double() - want).abs().max().item()


def fp32_tolerance(generator: Generator, z: torch.Tensor) -> float:
    """3x PyTorch's own fp32 error against float64 on ``z``, at least 8 fp32 epsilons (gankit.onnx.parity's rule)."""
    with torch.no_grad():
        own = max_error(generator(z), reference(generator, z))
    return max(FP32_FLOOR, FP32_HEADROOM * own)


def fresh_z(batch: int, latent_dim: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, latent_dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_fp32_matches_float64_reference(seed_generator: Generator, batch: int) -> None:
    backend = OpenVinoBackend(seed_generator)
    z = fresh_z(batch, 100, seed=batch)
    images = backend.generate_float(z)
    assert images.shape == (batch, 1, 28, 28) and images.dtype == torch.float32
    assert max_error(images, reference(seed_generator, z)) <= fp32_tolerance(seed_generator, z)


def test_fp32_odd_sizes_match_reference(small_generator: Generator) -> None:
    backend = OpenVinoBackend(small_generator)
    z = fresh_z(13, 20, seed=3)
    images = backend.generate_float(z)
    assert images.shape == (13, 1, 10, 10)
    assert max_error(images, reference(small_generator, z)) <= fp32_tolerance(small_generator, z)


def test_fp32_is_compiled_as_f32_not_the_bf16_default(seed_generator: Generator) -> None:
    import openvino as ov
    import openvino.properties.hint as hints

    backend = OpenVinoBackend(seed_generator, precision="fp32")
    assert backend.compiled.get_property(hints.inference_precision) == ov.Type.f32


def test_fp32_extreme_z_within_scaled_tolerance(seed_generator: Generator) -> None:
    backend = OpenVinoBackend(seed_generator)
    z = 10 * fresh_z(32, 100, seed=11).sign()
    assert z.abs().min() == 10
    assert max_error(backend.generate_float(z), reference(seed_generator, z)) <= fp32_tolerance(seed_generator, z)


@needs_bf16
@pytest.mark.parametrize("batch", [1, 64])
def test_bf16_within_stated_tolerance_and_really_bf16(seed_generator: Generator, batch: int) -> None:
    import openvino as ov
    import openvino.properties.hint as hints

    backend = OpenVinoBackend(seed_generator, precision="bf16")
    assert backend.compiled.get_property(hints.inference_precision) == ov.Type.bf16
    z = fresh_z(batch, 100, seed=100 + batch)
    error = max_error(backend.generate_float(z), reference(seed_generator, z))
    assert error <= BF16_TOL
    assert error > 1e-5, "bf16 gave fp32-exact results: the bf16 hint was not applied"


@pytest.mark.parametrize("build", ["direct", "registry"])
def test_bf16_refused_on_a_cpu_without_native_bf16(
    seed_generator: Generator, monkeypatch: pytest.MonkeyPatch, build: str
) -> None:
    fake = CpuInfo("Fake CPU 9000", frozenset({"avx2", "fma", "avx512f"}))
    monkeypatch.setattr(gankit.cpu, "cpu_info", lambda *args, **kwargs: fake)
    with pytest.raises(BackendError, match=r"Fake CPU 9000.*no native bf16.*--precision fp32"):
        if build == "direct":
            OpenVinoBackend(seed_generator, precision="bf16")
        else:
            create_backend("openvino", seed_generator, precision="bf16")


def test_fp32_export_path_works(seed_generator: Generator, tmp_path) -> None:
    path = tmp_path / "gen.onnx"
    build_onnx(seed_generator, path, "fp32", "float", 20, "")
    backend = OpenVinoBackend(path)
    assert backend.config == seed_generator.config
    z = fresh_z(9, 100, seed=5)
    assert max_error(backend.generate_float(z), reference(seed_generator, z)) <= fp32_tolerance(seed_generator, z)
    assert backend.run_numpy(z.numpy()).shape == (9, 1, 28, 28)


def test_fp16_export_path_is_refused(small_generator: Generator, tmp_path) -> None:
    path = tmp_path / "gen-fp16.onnx"
    build_onnx(small_generator, path, "fp16", "float", 20, "")
    with pytest.raises(BackendError, match=r"fp16 export.*fp32 export"):
        OpenVinoBackend(path)


def test_uint8_output_export_is_refused(small_generator: Generator, tmp_path) -> None:
    path = tmp_path / "gen-uint8.onnx"
    build_onnx(small_generator, path, "fp32", "uint8", 20, "")
    with pytest.raises(BackendError, match=r"uint8 export.*float-output export"):
        OpenVinoBackend(path)


@pytest.mark.parametrize(
    "z",
    [torch.zeros(3, 19), torch.zeros(3, 21), torch.zeros(20), torch.zeros(3, 20, dtype=torch.float64)],
    ids=["too-narrow", "too-wide", "1d", "float64"],
)
def test_wrong_z_is_a_backend_error(small_generator: Generator, z: torch.Tensor) -> None:
    backend = OpenVinoBackend(small_generator)
    with pytest.raises(BackendError, match=r"takes z of shape \[batch, 20\] float32"):
        backend.generate_float(z)
    with pytest.raises(BackendError, match=r"takes z of shape"):
        backend.run_numpy(z.numpy())


def test_only_cpu_devices(small_generator: Generator) -> None:
    with pytest.raises(BackendError, match="CPU only"):
        OpenVinoBackend(small_generator, device="cuda")
    assert OpenVinoBackend(small_generator, device="cpu").device == torch.device("cpu")


def test_registry_builds_it(small_generator: Generator) -> None:
    assert "openvino" in backend_names()
    backend = create_backend("openvino", small_generator, threads=1)
    assert isinstance(backend, OpenVinoBackend)
    assert backend.describe() == "openvino (fp32, CPU, 1 thread)"
    with pytest.raises(BackendError, match="supports precisions fp32, bf16, not 'fp16'"):
        create_backend("openvino", small_generator, precision="fp16")


def test_registry_says_when_openvino_is_missing(small_generator: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert "pip install openvino" in OpenVinoBackend.unavailable_reason()
    with pytest.raises(BackendError, match=r"not available here: OpenVINO is not installed"):
        create_backend("openvino", small_generator)


def test_successive_calls_do_not_overwrite_earlier_outputs(small_generator: Generator) -> None:
    backend = OpenVinoBackend(small_generator)
    z1, z2 = fresh_z(8, 20, seed=1), fresh_z(8, 20, seed=2)
    first = backend.generate_float(z1)
    kept = first.clone()
    first_np = backend.run_numpy(z1.numpy())
    kept_np = first_np.copy()
    second = backend.generate_float(z2)
    backend.run_numpy(z2.numpy())
    assert not torch.allclose(first, second)
    assert torch.equal(first, kept)
    assert np.array_equal(first_np, kept_np)


def test_seeded_generation_matches_eager(seed_generator: Generator) -> None:
    openvino = OpenVinoBackend(seed_generator)
    eager = create_backend("eager", seed_generator, device="cpu")
    images = openvino.generate_seeded(seed=3, start=1000, count=37)
    want = eager.generate_seeded(seed=3, start=1000, count=37)
    assert images.shape == want.shape == (37, 1, 28, 28)
    z = noise(3, 1000, 37, 100)  # the same noise, through the float64 reference
    assert max_error(images, reference(seed_generator, z)) <= fp32_tolerance(seed_generator, z)
    assert max_error(want, reference(seed_generator, z)) <= fp32_tolerance(seed_generator, z)
    as_uint8 = openvino.generate_seeded(seed=3, start=1000, count=37, output="uint8")
    assert as_uint8.dtype == torch.uint8
    assert (as_uint8.int() - eager.generate_seeded(3, 1000, 37, output="uint8").int()).abs().max().item() <= 1
