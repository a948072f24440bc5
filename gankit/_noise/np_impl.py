"""Noise v2 in NumPy: the reference the other implementations are compared with, and the CPU fallback
when the C extension is not built. Every float operation is one float32 NumPy ufunc (correctly
rounded, in the order of native.c), so the values are the same on every CPU."""

from __future__ import annotations

import numpy as np

from gankit._noise import constants as K

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_F = np.float32
_CHUNK_GROUPS = 1 << 14  # groups a chunk: its ~10 uint64 temporaries (128 KiB each) stay in L2


def philox4x32(seed: int, counters: np.ndarray) -> list[np.ndarray]:
    """Philox4x32-10 of key (seed low, seed high 32 bits), counter (q low, q high, 0, 0).

    counters: uint64 array of q. Returns the four output words, uint32 arrays shaped like ``counters``.
    """
    round_a, round_b = np.uint64(K.ROUND_A), np.uint64(K.ROUND_B)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    c0, c1 = counters & _MASK32, counters >> _SHIFT32
    c2 = c3 = np.zeros_like(counters)
    for _ in range(K.ROUNDS):
        product_b, product_a = c2 * round_b, c0 * round_a  # < 2**64: exact in uint64
        c0, c1, c2, c3 = (
            (product_b >> _SHIFT32) ^ c1 ^ np.uint64(k0),
            product_b & _MASK32,
            (product_a >> _SHIFT32) ^ c3 ^ np.uint64(k1),
            product_a & _MASK32,
        )
        k0, k1 = (k0 + K.KEY_A) & 0xFFFFFFFF, (k1 + K.KEY_B) & 0xFFFFFFFF
    return [c.astype(np.uint32) for c in (c0, c1, c2, c3)]


def _odd24(words: np.ndarray) -> np.ndarray:
    """k = (w >> 8) | 1: the odd 24-bit integer of a uint32 word (int32)."""
    return ((words >> np.uint32(K.UNIFORM_SHIFT)) | np.uint32(1)).view(np.int32)


def _horner(x: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    p = _F(coefficients[-1])
    for c in coefficients[-2::-1]:
        p = p * x + _F(c)
    return p


def log_uniform(words: np.ndarray) -> np.ndarray:
    """ln u for u = ((w >> 8) | 1) * 2**-24: uint32 words -> float32."""
    u = _odd24(words).astype(np.float32) * _F(K.UNIFORM_SCALE)
    bits = u.view(np.uint32)
    mantissa = (bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)
    big = (mantissa > np.uint32(K.SQRT2_BITS)).astype(np.uint32)  # above sqrt(2): halve, raise the exponent
    mantissa = mantissa - (big << np.uint32(23))
    e = ((bits >> np.uint32(23)).view(np.int32) - np.int32(127) + big.view(np.int32)).astype(np.float32)
    x = mantissa.view(np.float32) - _F(1.0)
    z = x * x
    y = _horner(x, K.LN_P) * x * z
    y = y + e * _F(K.LN2_LO)
    y = y - _F(0.5) * z
    return (x + y) + e * _F(K.LN2_HI)


def radius(words: np.ndarray) -> np.ndarray:
    """sqrt(-2 ln u): uint32 words -> float32."""
    return np.sqrt(_F(-2.0) * log_uniform(words))


def cos_sin(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos(2 pi u) and sin(2 pi u) for u = ((w >> 8) | 1) * 2**-24: uint32 words -> two float32 arrays.

    4u = n + t with n the nearest integer (never a tie: k is odd) and |t| < 1/2, found exactly in integers.
    """
    k = _odd24(words)
    n = (k + np.int32(1 << 21)) >> np.int32(22)
    t = (k - (n << np.int32(22))).astype(np.float32) * _F(K.QUARTER_SCALE)
    z = t * t
    s = _horner(z, K.SIN_P) * t + t * _F(K.SIN_LEAD)
    c = _horner(z, K.COS_P) * z + _F(1.0)
    odd = (n & np.int32(1)).astype(bool)
    cos, sin = np.where(odd, s, c), np.where(odd, c, s)
    # Negated by flipping the sign bit (what IEEE negation does; faster than np.where here):
    # cos < 0 in quadrants 1 and 2, sin < 0 in quadrants 2 and 3.
    cos = (cos.view(np.int32) ^ (((n + np.int32(1)) & np.int32(2)) << np.int32(30))).view(np.float32)
    sin = (sin.view(np.int32) ^ ((n & np.int32(2)) << np.int32(30))).view(np.float32)
    return cos, sin


def normals(seed: int, counters: np.ndarray, out: np.ndarray) -> None:
    """The four normals of each group: counters (uint64, N) -> out (N, 4) float32."""
    w0, w1, w2, w3 = philox4x32(seed, counters)
    r01, r23 = radius(w0), radius(w2)
    cos1, sin1 = cos_sin(w1)
    cos3, sin3 = cos_sin(w3)
    for r, (radii, trig) in enumerate(((r01, cos1), (r01, sin1), (r23, cos3), (r23, sin3))):
        np.multiply(radii, trig, out=out[:, r])


def noise_numpy(seed: int, start: int, count: int, latent_dim: int) -> np.ndarray:
    """Samples start .. start+count-1 of ``seed``: (count, latent_dim) float32, a chunk of rows at a time."""
    per_row = -(-latent_dim // 4)
    out = np.empty((count, 4 * per_row), dtype=np.float32)  # whole groups; the padding columns are cut off
    rows_a_chunk = max(1, _CHUNK_GROUPS // per_row)
    for begin in range(0, count, rows_a_chunk):
        end = min(count, begin + rows_a_chunk)
        first = (start + begin) * per_row
        counters = np.arange(first, first + (end - begin) * per_row, dtype=np.uint64)
        normals(seed, counters, out[begin:end].reshape(-1, 4))
    return out if per_row * 4 == latent_dim else np.ascontiguousarray(out[:, :latent_dim])
