"""Noise v2 in Triton (the mapping of ``gankit.noise``): ``latent_noise`` makes a block of latent vectors
inside a kernel. References: gankit/_noise/np_impl.py (NumPy) and torch_impl.py (torch), which it equals.

Philox4x32-10 is Triton's own ``tl.randint4x(seed, q)``: key (seed low, seed high 32 bits), counter
(q low, q high, 0, 0), the four words unchanged (triton 3.6 and 3.8 have the same code). The float part
is the polynomials of gankit/_noise/constants.py in float32 ops, with ``tl.sqrt_rn`` (IEEE) for sqrt.
Under the interpreter every op is a NumPy float32 op, so the values equal gankit.noise bit for bit. On a
GPU the compiler contracts mul+add into FMA: values within a few ulps (bound in tests/test_noise.py).

Cost: one Philox call and one ln, sqrt and sin/cos pair per group of 4 normals, as on the CPU; the
groups are interleaved into latent order with two levels of ``tl.interleave`` (register shuffles).
"""

from __future__ import annotations

import triton
import triton.language as tl

from gankit._noise import constants as K

UNIFORM_SHIFT = tl.constexpr(K.UNIFORM_SHIFT)
UNIFORM_SCALE = tl.constexpr(K.UNIFORM_SCALE)
QUARTER_SCALE = tl.constexpr(K.QUARTER_SCALE)
SQRT2_BITS = tl.constexpr(K.SQRT2_BITS)
LN2_HI = tl.constexpr(K.LN2_HI)
LN2_LO = tl.constexpr(K.LN2_LO)
LN_P0, LN_P1, LN_P2, LN_P3, LN_P4, LN_P5, LN_P6, LN_P7 = (tl.constexpr(c) for c in K.LN_P)
SIN_LEAD = tl.constexpr(K.SIN_LEAD)
SIN_P0, SIN_P1, SIN_P2, SIN_P3 = (tl.constexpr(c) for c in K.SIN_P)
COS_P0, COS_P1, COS_P2, COS_P3 = (tl.constexpr(c) for c in K.COS_P)


@triton.jit
def _odd24(words):
    """uint32 words -> k = (w >> 8) | 1, int32."""
    return ((words >> UNIFORM_SHIFT) | 1).to(tl.int32, bitcast=True)


@triton.jit
def _radius(words):
    """sqrt(-2 ln u), u = k * 2**-24: the steps of np_impl.log_uniform and np_impl.radius."""
    u = _odd24(words).to(tl.float32) * UNIFORM_SCALE
    bits = u.to(tl.int32, bitcast=True)
    mantissa = (bits & 0x7FFFFF) | 0x3F800000
    big = (mantissa > SQRT2_BITS).to(tl.int32)
    mantissa = mantissa - (big << 23)
    e = ((bits >> 23) - 127 + big).to(tl.float32)
    x = mantissa.to(tl.float32, bitcast=True) - 1.0
    z = x * x
    p = LN_P7 * x + LN_P6
    p = p * x + LN_P5
    p = p * x + LN_P4
    p = p * x + LN_P3
    p = p * x + LN_P2
    p = p * x + LN_P1
    p = p * x + LN_P0
    y = p * x * z
    y = y + e * LN2_LO
    y = y - 0.5 * z
    ln = (x + y) + e * LN2_HI
    return tl.sqrt_rn(-2.0 * ln)


@triton.jit
def _cos_sin(words):
    """cos(2 pi u) and sin(2 pi u): the steps of np_impl.cos_sin."""
    k = _odd24(words)
    n = (k + (1 << 21)) >> 22
    t = (k - (n << 22)).to(tl.float32) * QUARTER_SCALE
    z = t * t
    s = SIN_P3 * z + SIN_P2
    s = s * z + SIN_P1
    s = s * z + SIN_P0
    s = s * t + t * SIN_LEAD
    c = COS_P3 * z + COS_P2
    c = c * z + COS_P1
    c = c * z + COS_P0
    c = c * z + 1.0
    quadrant = n & 3
    odd = (quadrant & 1) != 0
    cos = tl.where(odd, s, c)
    sin = tl.where(odd, c, s)
    cos = tl.where(((quadrant + 1) & 2) != 0, -cos, cos)
    sin = tl.where((quadrant & 2) != 0, -sin, sin)
    return cos, sin


@triton.jit
def normals4(seed, counters):
    """The four normals of each group: counters int64 (any shape) -> four fp32 tensors of that shape."""
    w0, w1, w2, w3 = tl.randint4x(seed, counters)
    r01 = _radius(w0)
    r23 = _radius(w2)
    cos1, sin1 = _cos_sin(w1)
    cos3, sin3 = _cos_sin(w3)
    return r01 * cos1, r01 * sin1, r23 * cos3, r23 * sin3


@triton.jit
def latent_noise(seed, rows, k0, LATENT: tl.constexpr, BLOCK_K: tl.constexpr):
    """Latent columns k0 .. k0+BLOCK_K-1 of samples ``rows``: rows int64 (BLOCK_M,) -> (BLOCK_M, BLOCK_K) fp32.

    k0 is a multiple of BLOCK_K, itself a power of two >= 4, so the block holds whole groups. Columns
    >= LATENT are 0.
    """
    PER_ROW: tl.constexpr = (LATENT + 3) // 4
    groups = k0 // 4 + tl.arange(0, BLOCK_K // 4)
    n0, n1, n2, n3 = normals4(seed, rows[:, None] * PER_ROW + groups[None, :])
    z = tl.interleave(tl.interleave(n0, n2), tl.interleave(n1, n3))  # n0 n1 n2 n3 of group 0, then group 1 ...
    k = k0 + tl.arange(0, BLOCK_K)
    return tl.where(k[None, :] < LATENT, z, 0.0)
