"""The one source of latent noise for every sampling path.

Sample ``i`` of seed ``s`` is ``z_i = noise(s, i, 1, latent_dim)[0]``, whatever the batch size,
chunking or number of processes. Element ``j`` of ``z_i`` is Triton's ``tl.randn(s, i * latent_dim + j)``:
Philox4x32-10 keyed by the 64-bit seed, counter = the 64-bit offset, first two words mapped to
uniforms and through Box-Muller (cos branch). This module re-implements it in torch with integer
arithmetic that never overflows int64. On the CPU the float part (log, sqrt, cos) runs in NumPy
float32, as the Triton interpreter's does, so the values are equal bit for bit; on a GPU it runs in
torch, within a few ulps of a compiled kernel's (their log/cos differ in the last bits).

On the CPU the whole of it runs in NumPy (``_randn_numpy``): uint64 holds a 32x32-bit product exactly,
so a Philox multiply is one multiply instead of torch's three 16-bit pieces, and the offsets are made
in chunks whose temporaries stay in L2. Measured on 2 cores of a Xeon: ~200k latent vectors (of
100) a second against the torch path's ~19k at 65,536 a call, and 82 against 477 us for one vector
(a second thread did not help: the chunks are GIL-bound). The values are the same, bit for bit (the
tests compare both with the Triton interpreter).
"""

from __future__ import annotations

import numpy as np
import torch

_MASK32 = 0xFFFFFFFF
_ROUND_A = 0xD2511F53
_ROUND_B = 0xCD9E8D57
_KEY_A = 0x9E3779B9
_KEY_B = 0xBB67AE85
_ROUNDS = 10
_INT_TO_UNIFORM = 4.6566127342e-10  # Triton's uint_to_uniform_float scale for 32-bit words
_TWO_PI = 6.283185307179586


def _mul_hi_lo(a: torch.Tensor, constant: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of a * constant for 32-bit a (int64 tensor), without overflow."""
    c_hi, c_lo = constant >> 16, constant & 0xFFFF
    low_part = a * c_lo
    mid = a * c_hi + (low_part >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (low_part & 0xFFFF)


def philox(seed: int, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First two 32-bit Philox4x32-10 outputs for counter (offset_lo, offset_hi, 0, 0).

    seed: 0 <= seed < 2**64; offsets: int64 tensor of non-negative offsets.
    Returns two int64 tensors holding unsigned 32-bit values, shaped like ``offsets``.
    """
    c0 = offsets & _MASK32
    c1 = (offsets >> 32) & _MASK32
    c2 = torch.zeros_like(offsets)
    c3 = torch.zeros_like(offsets)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for _ in range(_ROUNDS):
        hi_b, lo_b = _mul_hi_lo(c2, _ROUND_B)
        hi_a, lo_a = _mul_hi_lo(c0, _ROUND_A)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _KEY_A) & _MASK32, (k1 + _KEY_B) & _MASK32
    return c0, c1


def _to_uniform(words: torch.Tensor) -> torch.Tensor:
    signed = torch.where(words >= 2**31, words - 2**32, words)
    folded = torch.where(signed < 0, -signed - 1, signed)
    return folded.to(torch.float32) * torch.tensor(_INT_TO_UNIFORM, dtype=torch.float32)


def randn_like_triton(seed: int, offsets: torch.Tensor) -> torch.Tensor:
    """float32 normals equal to ``tl.randn(seed, offsets)`` (int64 offsets), on offsets' device."""
    w0, w1 = philox(seed, offsets)
    u1, u2 = _to_uniform(w0), _to_uniform(w1)
    if offsets.device.type == "cpu":
        # torch's vectorised CPU log/sqrt/cos differ from NumPy's in the last bit; the interpreter uses NumPy.
        a, b = u1.numpy(), u2.numpy()
        radius = np.sqrt(np.float32(-2.0) * np.log(np.maximum(np.float32(1.0e-7), a)))
        return torch.from_numpy(radius * np.cos(np.float32(_TWO_PI) * b))
    radius = torch.sqrt(-2.0 * torch.log(torch.clamp(u1, min=1.0e-7)))
    return radius * torch.cos(_TWO_PI * u2)


_CHUNK = 1 << 13  # elements a chunk: its ~10 uint64 temporaries (64 KiB each) stay in L2


def _philox_numpy(seed: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``philox`` on a uint64 NumPy array of offsets: two uint64 arrays of 32-bit words."""
    mask, shift = np.uint64(_MASK32), np.uint64(32)
    round_a, round_b = np.uint64(_ROUND_A), np.uint64(_ROUND_B)
    c0, c1 = offsets & mask, offsets >> shift
    c2, c3 = np.zeros_like(offsets), np.zeros_like(offsets)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for _ in range(_ROUNDS):
        product_b, product_a = c2 * round_b, c0 * round_a  # < 2**64: exact in uint64
        c0, c1, c2, c3 = (
            (product_b >> shift) ^ c1 ^ np.uint64(k0),
            product_b & mask,
            (product_a >> shift) ^ c3 ^ np.uint64(k1),
            product_a & mask,
        )
        k0, k1 = (k0 + _KEY_A) & _MASK32, (k1 + _KEY_B) & _MASK32
    return c0, c1


def _uniform_numpy(words: np.ndarray) -> np.ndarray:
    signed = words.astype(np.uint32).view(np.int32)
    folded = np.where(signed < 0, ~signed, signed)  # -x - 1 == ~x, with no overflow at -2**31
    return folded.astype(np.float32) * np.float32(_INT_TO_UNIFORM)


def _randn_chunk(seed: int, first: int, out: np.ndarray) -> None:
    offsets = np.arange(first, first + out.size, dtype=np.uint64)
    w0, w1 = _philox_numpy(seed, offsets)
    radius = np.sqrt(np.float32(-2.0) * np.log(np.maximum(np.float32(1.0e-7), _uniform_numpy(w0))))
    np.multiply(radius, np.cos(np.float32(_TWO_PI) * _uniform_numpy(w1)), out=out)


def _randn_numpy(seed: int, first: int, total: int) -> np.ndarray:
    """float32 normals for the consecutive offsets first .. first+total-1, as ``tl.randn`` makes them."""
    out = np.empty(total, dtype=np.float32)
    for begin in range(0, total, _CHUNK):
        _randn_chunk(seed, first + begin, out[begin : begin + _CHUNK])
    return out


def check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def noise(
    seed: int,
    start: int,
    count: int,
    latent_dim: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Latent vectors of samples start .. start+count-1 of ``seed``: (count, latent_dim) float32."""
    seed = check_seed(seed)
    if start < 0 or count < 0 or latent_dim <= 0:
        raise ValueError(f"need start >= 0, count >= 0, latent_dim > 0 (got {start}, {count}, {latent_dim})")
    if torch.device(device).type == "cpu":
        return torch.from_numpy(_randn_numpy(seed, start * latent_dim, count * latent_dim)).view(count, latent_dim)
    rows = torch.arange(start, start + count, dtype=torch.int64, device=device)
    cols = torch.arange(latent_dim, dtype=torch.int64, device=device)
    offsets = rows[:, None] * latent_dim + cols[None, :]
    return randn_like_triton(seed, offsets)
