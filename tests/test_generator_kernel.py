"""kernels.generator (the whole generator in one launch) vs a float64 reference, and its noise contract.

Tolerances (max |Δ| on images in [-1, 1]): fp32 1e-5; fp16 1e-2; tf32 1e-3 and bf16 2e-2 on a GPU only
(the interpreter has no tf32 or bf16 math). uint8 output: at most 1 level from the rounded reference.
"""

from __future__ import annotations

import pytest
import torch

from gankit.model import Generator
from gankit.noise import noise
from kernels.generator import fits_whole_generator, generator_forward, pack_generator
from kernels.reference import generator_reference, to_uint8_reference

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="tf32/bf16 need a GPU: the interpreter has no tf32 or bf16 math")


def packed_and_reference(generator: Generator, dtype: torch.dtype = torch.float32):
    weights = [layer.weight for layer in generator.layers]
    biases = [layer.bias for layer in generator.layers]
    packed = pack_generator(weights, biases, generator.config.slope, dtype, DEVICE)

    def reference(z: torch.Tensor) -> torch.Tensor:
        return generator_reference(
            z.double().cpu(), [w.double() for w in weights], [b.double() for b in biases], generator.config.slope
        )

    return packed, reference


def poisoned(batch: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if dtype == torch.uint8:
        return torch.full((batch, width), 77, dtype=dtype, device=DEVICE)
    return torch.full((batch, width), float("nan"), dtype=dtype, device=DEVICE)


@pytest.mark.parametrize("batch", [1, 3, 64, 257, 1000])
def test_seed_sized_generator_fp32(seed_generator: Generator, batch: int) -> None:
    packed, reference = packed_and_reference(seed_generator)
    z = torch.randn(batch, 100, device=DEVICE)
    out = generator_forward(packed, z=z, out=poisoned(batch, 784))
    assert torch.isfinite(out).all()
    assert (out.double().cpu() - reference(z)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("batch", [1, 3, 257])
def test_odd_sizes(small_generator: Generator, batch: int) -> None:
    packed, reference = packed_and_reference(small_generator)  # 20 -> 48 -> 80 -> 100
    z = torch.randn(batch, 20, device=DEVICE)
    out = generator_forward(packed, z=z, out=poisoned(batch, 100))
    assert (out.double().cpu() - reference(z)).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    ("dtype", "tf32", "tol"),
    [
        pytest.param(torch.float16, False, 1e-2, id="fp16"),
        pytest.param(torch.float32, True, 1e-3, id="tf32", marks=needs_gpu),
        pytest.param(torch.bfloat16, False, 2e-2, id="bf16", marks=needs_gpu),
    ],
)
def test_low_precision(seed_generator: Generator, dtype: torch.dtype, tf32: bool, tol: float) -> None:
    packed, reference = packed_and_reference(seed_generator, dtype)
    z = torch.randn(64, 100, device=DEVICE)
    out = generator_forward(packed, z=z, allow_tf32=tf32, out=poisoned(64, 784))
    assert (out.double().cpu() - reference(z)).abs().max().item() <= tol


def test_extreme_inputs_stay_finite_and_close(seed_generator: Generator) -> None:
    packed, reference = packed_and_reference(seed_generator)
    z = (torch.randint(0, 2, (16, 100)) * 20 - 10).float().to(DEVICE)
    out = generator_forward(packed, z=z, out=poisoned(16, 784))
    assert (out.double().cpu() - reference(z)).abs().max().item() <= 1e-4  # scaled by |z| = 10, see gankit.parity


def test_uint8_output(seed_generator: Generator) -> None:
    packed, reference = packed_and_reference(seed_generator)
    z = torch.randn(257, 100, device=DEVICE)
    out = generator_forward(packed, z=z, output="uint8", out=poisoned(257, 784, torch.uint8))
    assert out.dtype == torch.uint8
    difference = (out.cpu().int() - to_uint8_reference(reference(z)).int()).abs()
    assert difference.max().item() <= 1 and (difference > 0).float().mean().item() < 1e-3


@pytest.mark.parametrize(("seed", "start"), [(0, 0), (1234, 5), (2**40 + 17, 2**33), (2**64 - 1, 999)])
def test_in_kernel_noise_equals_gankit_noise(seed_generator: Generator, seed: int, start: int) -> None:
    packed, _ = packed_and_reference(seed_generator)
    from_seed = generator_forward(packed, count=67, seed=seed, start=start, out=poisoned(67, 784))
    from_z = generator_forward(packed, z=noise(seed, start, 67, 100, device=DEVICE))
    if ON_GPU:  # the GPU's log/cos differ from torch's in the last ulps
        torch.testing.assert_close(from_seed, from_z, atol=1e-5, rtol=0)
    else:
        assert torch.equal(from_seed, from_z)


def test_noise_is_independent_of_chunking(seed_generator: Generator) -> None:
    packed, _ = packed_and_reference(seed_generator)
    whole = generator_forward(packed, count=100, seed=9, start=0)
    parts = torch.cat([generator_forward(packed, count=c, seed=9, start=s) for s, c in [(0, 1), (1, 50), (51, 49)]])
    torch.testing.assert_close(parts, whole, atol=1e-6, rtol=0)


def test_fit_rule_and_launcher_checks(seed_generator: Generator) -> None:
    assert fits_whole_generator([(100, 256), (256, 512), (512, 784)])
    assert not fits_whole_generator([(100, 256), (256, 784)])  # two layers: per-layer kernels
    assert not fits_whole_generator([(100, 256), (256, 512), (512, 3 * 64 * 64)])  # output too wide
    packed, _ = packed_and_reference(seed_generator)
    with pytest.raises(ValueError, match=r"z must be \(B, 100\) float32"):
        generator_forward(packed, z=torch.randn(4, 99, device=DEVICE))
    with pytest.raises(ValueError, match="count must be given"):
        generator_forward(packed)
    with pytest.raises(ValueError, match="output must be"):
        generator_forward(packed, z=torch.randn(4, 100, device=DEVICE), output="png")
    assert generator_forward(packed, count=0).shape == (0, 784)
