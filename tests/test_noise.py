"""gankit.noise: bit-exact with Triton's tl.randn under the interpreter; chunk-independent; N(0, 1)."""

from __future__ import annotations

import os

import pytest
import torch

from gankit.noise import noise

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.skipif(not INTERPRETED, reason="bit-exactness holds against the interpreter; on GPU see the kernel tests")
@pytest.mark.parametrize("seed", [0, 1, 2**40 + 17, 2**64 - 1])
@pytest.mark.parametrize("start", [0, 5, 2**33])
def test_equals_tl_randn_bit_for_bit(seed: int, start: int) -> None:
    import triton
    import triton.language as tl

    @triton.jit
    def randn_kernel(out_ptr, seed, start, LATENT: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
        rows = tl.arange(0, ROWS).to(tl.int64)
        cols = tl.arange(0, COLS)
        values = tl.randn(seed, (rows + start)[:, None] * LATENT + cols[None, :])
        tl.store(out_ptr + rows[:, None] * LATENT + cols[None, :], values, mask=cols[None, :] < LATENT)

    out = torch.full((8, 100), float("nan"))
    randn_kernel[(1,)](out, seed, start, 100, 8, 128)
    assert torch.equal(out, noise(seed, start, 8, 100))


def test_chunking_does_not_change_values() -> None:
    whole = noise(42, 0, 300, 100)
    parts = torch.cat([noise(42, 0, 7, 100), noise(42, 7, 200, 100), noise(42, 207, 93, 100)])
    assert torch.equal(whole, parts)
    assert not torch.equal(noise(42, 0, 10, 100), noise(43, 0, 10, 100))


def test_standard_normal_statistics() -> None:
    z = noise(7, 0, 20_000, 50)
    assert z.dtype == torch.float32 and z.shape == (20_000, 50)
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    assert abs((z > 2.326).float().mean().item() - 0.01) < 5e-4  # the 99th percentile; 5 standard errors


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed must be in"):
        noise(-1, 0, 1, 10)
    with pytest.raises(ValueError, match="start >= 0"):
        noise(0, -5, 1, 10)
