"""The one source of latent noise for every sampling path: noise v2.

Sample ``i`` of seed ``s`` is ``z_i = noise(s, i, 1, latent_dim)[0]``, whatever the backend, batch
size, chunking, number of processes or resume. The mapping (``NOISE_NAME``, version ``NOISE_VERSION``),
for latent size L and G = ceil(L / 4) groups a sample:

1. Group g of sample i has the 64-bit counter q = i * G + g (q < 2**63, Triton's int64 offsets).
2. Its words (w0, w1, w2, w3) are Philox4x32-10 with key (s mod 2**32, s >> 32) and counter
   (q mod 2**32, q >> 32, 0, 0): the four words of Triton's ``tl.randint4x(s, q)``.
3. Each word gives u = ((w >> 8) | 1) * 2**-24: its top 23 bits as an odd multiple of 2**-24, exact in
   float32 and strictly inside (0, 1), so no clamping is needed.
4. Box-Muller, both branches: element 4g + r of z_i (kept while 4g + r < L) is n_r, with
   n0 = R0 cos(2 pi u1), n1 = R0 sin(2 pi u1), n2 = R2 cos(2 pi u3), n3 = R2 sin(2 pi u3),
   R = sqrt(-2 ln u). ln, cos and sin are gankit's own float32 polynomials (gankit/_noise/constants.py,
   steps in gankit/_noise/np_impl.py): ln by exponent/mantissa bits, cos and sin by quarter turns found
   exactly in integers. Max error against float64 math over all 2**23 uniforms: ln 0.86 ulp, R 0.98 ulp,
   cos and sin 1.21 ulp (tests/test_noise.py measures it). |z| <= sqrt(48 ln 2) = 5.77.

Only integer ops, exact conversions and IEEE float32 +, -, *, sqrt, in a fixed order, never fused: so
the values are the same bit for bit in NumPy, in C (any x86 CPU, any SIMD width), in torch on the CPU
or a GPU and in the Triton interpreter. A compiled Triton kernel on a GPU fuses mul+add into FMA: within
1e-6 relative (the bound is derived in tests/test_noise.py). Version 1 (element j of sample i was
``tl.randn(s, i * L + j)``) gave other vectors: runs made under it can only be continued by gankit
versions that make v1 noise.

Where it runs: on the CPU the C extension ``gankit._noise._native`` (built by ``pip install``; threads:
``torch.get_num_threads()``), or the NumPy implementation when it is not built; on other devices torch
ops; inside Triton kernels ``kernels.noise.latent_noise``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gankit._noise.np_impl import noise_numpy
from gankit.cpu import compute_threads
from gankit.errors import NoiseError

if TYPE_CHECKING:
    import torch

try:
    from gankit._noise import _native
except ImportError:  # not built (a source checkout on PYTHONPATH, or no compiler at install time)
    _native = None

NOISE_VERSION = 2
NOISE_NAME = "philox4x32-10/bm4/v2"
MIN_NORMALS_A_THREAD = 1 << 15  # ~0.1 ms of work: starting a thread costs ~0.05 ms


def cpu_implementation() -> str:
    """Which implementation makes CPU noise: 'native' (the C extension, when built) or 'numpy'."""
    return "numpy" if _native is None else "native"


def check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise NoiseError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def check_range(start: int, count: int, latent_dim: int) -> None:
    """NoiseError unless samples start .. start+count-1 of latent ``latent_dim`` lie inside the contract."""
    if start < 0 or count < 0 or latent_dim <= 0:
        raise NoiseError(f"need start >= 0, count >= 0, latent_dim > 0 (got {start}, {count}, {latent_dim})")
    if (start + count) * -(-latent_dim // 4) > 2**63:
        raise NoiseError(f"samples up to {start + count} of latent {latent_dim} pass the 2**63 Philox counters")


def noise_array(seed: int, start: int, count: int, latent_dim: int) -> np.ndarray:
    """Latent vectors of samples start .. start+count-1 of ``seed``: a (count, latent_dim) float32 array, made on
    the CPU without torch."""
    seed = check_seed(seed)
    check_range(start, count, latent_dim)
    if _native is None:
        return noise_numpy(seed, start, count, latent_dim)
    out = np.empty((count, latent_dim), dtype=np.float32)
    threads = max(1, min(compute_threads(), count * latent_dim // MIN_NORMALS_A_THREAD))
    _native.fill(out, seed, start, count, latent_dim, threads)
    return out


def noise(
    seed: int,
    start: int,
    count: int,
    latent_dim: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Latent vectors of samples start .. start+count-1 of ``seed``: (count, latent_dim) float32 on ``device``."""
    import torch

    if torch.device(device).type != "cpu":
        from gankit._noise.torch_impl import noise_torch

        seed = check_seed(seed)
        check_range(start, count, latent_dim)
        return noise_torch(seed, start, count, latent_dim, torch.device(device))
    return torch.from_numpy(noise_array(seed, start, count, latent_dim))
