"""gankit.noise: equal to Triton's tl.randn (bit for bit under the interpreter, within a few ulps on a GPU),
independent of how the index range is cut, and standard normal."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from gankit.noise import noise

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")


@triton.jit
def randn_kernel(out_ptr, seed, start, LATENT: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
    """out[i, j] = tl.randn(seed, (start + i) * LATENT + j): the layout of kernels.generator's in-kernel noise."""
    rows = tl.arange(0, ROWS).to(tl.int64)
    cols = tl.arange(0, COLS)
    values = tl.randn(seed, (start + rows)[:, None] * LATENT + cols[None, :])
    tl.store(out_ptr + rows[:, None] * LATENT + cols[None, :], values, mask=cols[None, :] < LATENT)


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**40 + 17, 2**64 - 1])
@pytest.mark.parametrize("start", [0, 5, 2**31 - 3, 2**33])
@pytest.mark.parametrize("latent", [100, 7])
def test_equals_tl_randn(seed: int, start: int, latent: int) -> None:
    out = torch.full((8, latent), float("nan"), device=DEVICE)
    randn_kernel[(1,)](out, seed, start, latent, 8, triton.next_power_of_2(latent))
    expected = noise(seed, start, 8, latent, device=DEVICE)
    if ON_GPU:  # compiled log/sqrt/cos against torch's: a few ulps
        torch.testing.assert_close(out, expected, rtol=2e-6, atol=2e-6)
    else:  # the interpreter computes in NumPy float32, as gankit.noise does on the CPU
        assert torch.equal(out, expected)


def test_chunking_does_not_change_values() -> None:
    whole = noise(42, 0, 300, 100)
    parts = torch.cat([noise(42, 0, 7, 100), noise(42, 7, 200, 100), noise(42, 207, 93, 100)])
    assert torch.equal(whole, parts)
    assert torch.equal(noise(42, 5, 1, 100)[0], whole[5])
    assert not torch.equal(noise(42, 0, 10, 100), noise(43, 0, 10, 100))


def test_standard_normal_statistics() -> None:
    z = noise(7, 0, 20_000, 50)  # 10**6 values
    assert z.dtype == torch.float32 and z.shape == (20_000, 50)
    assert abs(z.mean().item()) < 0.005 and abs(z.std().item() - 1) < 0.005  # ~5 standard errors
    assert abs((z > 2.326).float().mean().item() - 0.01) < 5e-4  # the 99th percentile
    assert abs(torch.corrcoef(torch.stack([z[:, 0], z[:, 1]]))[0, 1].item()) < 0.04  # neighbours uncorrelated


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed must be in"):
        noise(-1, 0, 1, 10)
    with pytest.raises(ValueError, match="seed must be in"):
        noise(2**64, 0, 1, 10)
    with pytest.raises(ValueError, match="start >= 0"):
        noise(0, -5, 1, 10)


@pytest.mark.parametrize(("seed", "start"), [(0, 0), (2**64 - 1, 2**33 + 3), (987654321, 12345)])
def test_cpu_numpy_path_equals_the_torch_path(seed: int, start: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU's NumPy Philox (uint64, in chunks) == the torch one (int64, 16-bit pieces), across chunk edges."""
    import importlib

    module = importlib.import_module("gankit.noise")
    monkeypatch.setattr(module, "_CHUNK", 1000)  # 300 x 7 values: three chunk edges, one mid-row
    offsets = torch.arange(start, start + 300, dtype=torch.int64)[:, None] * 7 + torch.arange(7)[None, :]
    assert torch.equal(module.noise(seed, start, 300, 7), module.randn_like_triton(seed, offsets))
