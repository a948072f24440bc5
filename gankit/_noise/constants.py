"""Every number of noise v2, in one place: Philox4x32-10's constants and the float32 polynomial
coefficients. native.c and kernels/noise.py hold the same values (the bit-exactness tests compare them).

The polynomials were fitted for minimax relative error (Lawson's iteration on float64 least squares)
and rounded to float32; the accuracy each reaches in float32 evaluation is measured over all 2**23
uniforms by tests/test_noise.py.
"""

from __future__ import annotations

ROUNDS = 10
ROUND_A = 0xD2511F53
ROUND_B = 0xCD9E8D57
KEY_A = 0x9E3779B9
KEY_B = 0xBB67AE85

UNIFORM_SHIFT = 8  # k = (w >> 8) | 1: an odd 24-bit integer; u = k * 2**-24 is exact in float32
UNIFORM_SCALE = 2.0**-24
QUARTER_SCALE = 2.0**-22  # k * 2**-22 = 4u: the angle in quarter turns

# ln(1 + x) = x - x**2 / 2 + x**3 * LN_P(x) for x in [sqrt(1/2) - 1, sqrt(2) - 1]; coefficients from x**0 up.
LN_P = (
    0.3333333134651184,
    -0.250008225440979,
    0.20001226663589478,
    -0.16623355448246002,
    0.14201751351356506,
    -0.1316019743680954,
    0.12761640548706055,
    -0.07634538412094116,
)
LN2_HI = 0.693359375  # 9 bits: e * LN2_HI is exact for |e| <= 2**15
LN2_LO = -0.00021219444170128554  # ln 2 - LN2_HI, rounded
SQRT2_BITS = 0x3FB504F3  # float32 sqrt(2): a mantissa above it is halved

# With t in quarter turns (|t| < 1/2) and z = t**2:
# sin(pi t / 2) = 1.5 t + t * SIN_P(z)  (1.5 t is exact; SIN_P[0] = pi/2 - 1.5 carries the rest)
# cos(pi t / 2) = 1 + z * COS_P(z)
SIN_LEAD = 1.5
SIN_P = (0.07079631835222244, -0.6459634900093079, 0.07968003302812576, -0.004601658787578344)
COS_P = (-1.2337005138397217, 0.25366923213005066, -0.02086016535758972, 0.0009037664858624339)
