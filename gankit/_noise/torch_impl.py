"""Noise v2 in torch, for devices other than the CPU (a CUDA GPU). Integer work in int64 that never
overflows; every float operation is one separate elementwise float32 op (correctly rounded, never
fused), in the order of np_impl.py, so a GPU gives the CPU's values bit for bit. The one exception,
sqrt, is taken in float64 and rounded to float32."""

from __future__ import annotations

import torch

from gankit._noise import constants as K

_MASK32 = 0xFFFFFFFF


def _mul_hi_lo(a: torch.Tensor, constant: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of a * constant for 32-bit a (int64 tensor), in 16-bit pieces: no overflow."""
    c_hi, c_lo = constant >> 16, constant & 0xFFFF
    low_part = a * c_lo
    mid = a * c_hi + (low_part >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (low_part & 0xFFFF)


def philox4x32(seed: int, counters: torch.Tensor) -> list[torch.Tensor]:
    """Philox4x32-10 of key (seed low, seed high 32 bits), counter (q low, q high, 0, 0).

    counters: int64 tensor of q >= 0. Returns the four words as int64 tensors of unsigned 32-bit values.
    """
    c0, c1 = counters & _MASK32, (counters >> 32) & _MASK32
    c2 = c3 = torch.zeros_like(counters)
    k0, k1 = seed & _MASK32, seed >> 32
    for _ in range(K.ROUNDS):
        hi_b, lo_b = _mul_hi_lo(c2, K.ROUND_B)
        hi_a, lo_a = _mul_hi_lo(c0, K.ROUND_A)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + K.KEY_A) & _MASK32, (k1 + K.KEY_B) & _MASK32
    return [c0, c1, c2, c3]


def _horner(x: torch.Tensor, coefficients: tuple[float, ...]) -> torch.Tensor:
    p = torch.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        p = p * x + c
    return p


def radius(words: torch.Tensor) -> torch.Tensor:
    """sqrt(-2 ln u), u = ((w >> 8) | 1) * 2**-24: int64 words -> float32 (as np_impl.radius)."""
    u = ((words >> K.UNIFORM_SHIFT) | 1).to(torch.float32) * K.UNIFORM_SCALE
    bits = u.view(torch.int32)
    mantissa = (bits & 0x7FFFFF) | 0x3F800000
    big = (mantissa > K.SQRT2_BITS).to(torch.int32)
    mantissa = mantissa - (big << 23)
    e = ((bits >> 23) - 127 + big).to(torch.float32)
    x = mantissa.view(torch.float32) - 1.0
    z = x * x
    y = _horner(x, K.LN_P) * x * z
    y = y + e * K.LN2_LO
    y = y - 0.5 * z
    ln = (x + y) + e * K.LN2_HI
    # float32 torch.sqrt is not correctly rounded on the CPU (1 ulp off, measured); float64's is close
    # enough that rounding it to float32 is (a float32's square root is never that near a midpoint).
    return torch.sqrt((-2.0 * ln).double()).float()


def cos_sin(words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(2 pi u) and sin(2 pi u): int64 words -> two float32 tensors (as np_impl.cos_sin)."""
    k = (words >> K.UNIFORM_SHIFT) | 1
    n = (k + (1 << 21)) >> 22
    t = (k - (n << 22)).to(torch.float32) * K.QUARTER_SCALE
    z = t * t
    s = _horner(z, K.SIN_P) * t + t * K.SIN_LEAD
    c = _horner(z, K.COS_P) * z + 1.0
    quadrant = n & 3
    odd = (quadrant & 1).bool()
    cos, sin = torch.where(odd, s, c), torch.where(odd, c, s)
    cos = torch.where(((quadrant + 1) & 2).bool(), -cos, cos)
    sin = torch.where((quadrant & 2).bool(), -sin, sin)
    return cos, sin


def noise_torch(seed: int, start: int, count: int, latent_dim: int, device: torch.device) -> torch.Tensor:
    """Samples start .. start+count-1 of ``seed`` on ``device``: (count, latent_dim) float32."""
    per_row = -(-latent_dim // 4)
    rows = start + torch.arange(count, dtype=torch.int64, device=device)  # start + count may be 2**63
    counters = rows[:, None] * per_row + torch.arange(per_row, dtype=torch.int64, device=device)[None, :]
    w0, w1, w2, w3 = philox4x32(seed, counters)
    r01, r23 = radius(w0), radius(w2)
    cos1, sin1 = cos_sin(w1)
    cos3, sin3 = cos_sin(w3)
    values = torch.stack([r01 * cos1, r01 * sin1, r23 * cos3, r23 * sin3], dim=2)
    return values.reshape(count, 4 * per_row)[:, :latent_dim].contiguous()
