"""gankit.noise (noise v2): one mapping, the same bits from NumPy, C, torch and the Triton interpreter,
independent of how the index range is cut, accurate, and standard normal.

Tolerances:
- Against the mapping in float64 (a pure-Python Philox and math.log/cos/sin): |Δ| <= 3e-7 |z|. The
  exhaustive test below bounds the float32 relative errors over all 2**23 uniforms: R 9.8e-8 and
  cos/sin 1.02e-7; the product R * cos adds one rounding, 2**-24 = 6e-8. Sum 2.6e-7.
- A compiled Triton kernel on a GPU: |Δ| <= 1e-6 |z| against gankit.noise. The GPU may fuse any
  mul+add into an FMA, and tl.sqrt_rn is IEEE. Each evaluation is within 9.8e-8 (R) and 1.02e-7
  (cos/sin) of float64 math; the same polynomials with every mul+add fused, emulated over all 2**23
  inputs, stayed within the same bounds (benchmarks/run_noise.py records both). Two evaluations
  therefore differ by at most 2 * (9.8e-8 + 1.02e-7 + 6e-8) = 5.2e-7 relative; 1e-6 leaves a factor
  of 2 for contraction patterns other than none and all.
- Statistics: 5 standard errors of each statistic at the sample size used (the values are fixed by the
  seed, so a correct mapping passes every time; a wrong one moves a statistic by far more).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from gankit._noise import np_impl, torch_impl
from gankit.noise import NOISE_NAME, NOISE_VERSION, cpu_implementation, noise
from kernels.noise import _cos_sin, _radius, latent_noise

noise_module = importlib.import_module("gankit.noise")  # the attribute gankit.noise is the function
ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
NEEDS_GPU = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU; its CPU twin runs here instead")
NATIVE = noise_module._native
NEEDS_NATIVE = pytest.mark.skipif(
    NATIVE is None, reason="C extension not built (source checkout on PYTHONPATH); `make test` requires it"
)
GPU_RTOL = 1e-6
SPEC_RTOL = 3e-7
ALL_WORDS = np.arange(2**23, dtype=np.uint32) << np.uint32(9)  # every top-23-bit pattern: every uniform
CASES = [  # (seed, start, count, latent): seed and counter extremes, latents not divisible by 4
    (0, 0, 300, 100),
    (2**64 - 1, 2**33 + 3, 257, 7),
    (2**32 - 1, 2**31 - 3, 64, 1),
    (2**40 + 17, 5, 33, 101),
    (987654321, 2**33 - 2, 9, 4),
]
CASE_IDS = [f"seed{s}-start{st}-n{n}-L{latent}" for s, st, n, latent in CASES]


def bits(values: torch.Tensor | np.ndarray) -> np.ndarray:
    array = values.cpu().numpy() if isinstance(values, torch.Tensor) else values
    return np.ascontiguousarray(array).view(np.uint32)


def assert_same_bits(got: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> None:
    got, expected = bits(got), bits(expected)
    assert got.shape == expected.shape
    differ = np.count_nonzero(got != expected)
    assert differ == 0, f"{differ} of {got.size} values differ"


# ---- the mapping, independently: Random123's Philox in Python ints, Box-Muller in float64 ----

_M32 = 0xFFFFFFFF


def philox_python(key: tuple[int, int], counter: tuple[int, int, int, int]) -> list[int]:
    c, (k0, k1) = list(counter), key
    for _ in range(10):
        pa, pb = c[0] * 0xD2511F53, c[2] * 0xCD9E8D57
        c = [(pb >> 32) ^ c[1] ^ k0, pb & _M32, (pa >> 32) ^ c[3] ^ k1, pa & _M32]
        k0, k1 = (k0 + 0x9E3779B9) & _M32, (k1 + 0xBB67AE85) & _M32
    return c


def spec_normals(seed: int, start: int, count: int, latent: int) -> np.ndarray:
    """The docstring's mapping in float64: (count, latent)."""
    per_row = -(-latent // 4)
    out = np.empty((count, 4 * per_row))
    for i in range(count):
        for g in range(per_row):
            q = (start + i) * per_row + g
            w = philox_python((seed & _M32, seed >> 32), (q & _M32, q >> 32, 0, 0))
            u = [((x >> 8) | 1) / 2**24 for x in w]
            r01, r23 = math.sqrt(-2 * math.log(u[0])), math.sqrt(-2 * math.log(u[2]))
            a1, a3 = 2 * math.pi * u[1], 2 * math.pi * u[3]
            out[i, 4 * g : 4 * g + 4] = [r01 * math.cos(a1), r01 * math.sin(a1), r23 * math.cos(a3), r23 * math.sin(a3)]
    return out[:, :latent]


@pytest.mark.parametrize(
    ("key", "counter", "expected"),
    [  # Random123's known-answer vectors for philox4x32-10
        ((0, 0), (0, 0, 0, 0), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ((_M32, _M32), (_M32,) * 4, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            (0xA4093822, 0x299F31D0),
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ],
)
def test_python_philox_matches_random123(key, counter, expected) -> None:
    assert philox_python(key, counter) == expected


@pytest.mark.parametrize("seed", [0, 2**32 + 5, 2**64 - 1])
def test_philox_words_of_numpy_and_torch(seed: int) -> None:
    counters = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 123456789012345]
    expected = np.array([philox_python((seed & _M32, seed >> 32), (q & _M32, q >> 32, 0, 0)) for q in counters])
    from_numpy = np.stack(np_impl.philox4x32(seed, np.array(counters, dtype=np.uint64)), axis=1)
    from_torch = torch.stack(torch_impl.philox4x32(seed, torch.tensor(counters, dtype=torch.int64)), dim=1)
    assert np.array_equal(from_numpy, expected) and np.array_equal(from_torch.numpy(), expected)


@pytest.mark.parametrize(("seed", "start", "count", "latent"), CASES, ids=CASE_IDS)
def test_values_are_the_documented_mapping(seed: int, start: int, count: int, latent: int) -> None:
    count = min(count, 40)  # the pure-Python Philox is slow
    z = noise(seed, start, count, latent).double().numpy()
    expected = spec_normals(seed, start, count, latent)
    assert np.all(np.abs(z - expected) <= SPEC_RTOL * np.abs(expected))


def test_v2_values_are_frozen() -> None:
    """The digest of v2's first values, recorded when v2 was made. If this fails, the mapping changed:
    every saved run's samples would change with it, so the change needs a new NOISE_VERSION."""
    digest = hashlib.sha256(bits(noise(0, 0, 1000, 100)).tobytes() + bits(noise(2**64 - 1, 2**33, 100, 7)).tobytes())
    assert digest.hexdigest() == "ca3e2793a6f81a52530e5197d70dc539022fc93daa0cbc384560fd3cd343e2b7"
    assert (NOISE_VERSION, NOISE_NAME) == (2, "philox4x32-10/bm4/v2")


# ---- every implementation gives the same bits ----


@pytest.mark.parametrize(("seed", "start", "count", "latent"), CASES, ids=CASE_IDS)
def test_torch_path_equals_numpy(seed: int, start: int, count: int, latent: int) -> None:
    """CPU twin of test_torch_path_on_gpu_equals_cpu: the same torch ops, on the CPU."""
    got = torch_impl.noise_torch(seed, start, count, latent, torch.device("cpu"))
    assert_same_bits(got, np_impl.noise_numpy(seed, start, count, latent))


@pytest.mark.gpu
@NEEDS_GPU
@pytest.mark.parametrize(("seed", "start", "count", "latent"), CASES, ids=CASE_IDS)
def test_torch_path_on_gpu_equals_cpu(seed: int, start: int, count: int, latent: int) -> None:
    """Separate elementwise CUDA ops are IEEE float32 (not fused), float64 sqrt is IEEE: the CPU's bits."""
    got = noise(seed, start, count, latent, device="cuda")
    assert got.device.type == "cuda"
    assert_same_bits(got, np_impl.noise_numpy(seed, start, count, latent))


@NEEDS_NATIVE
@pytest.mark.parametrize(("seed", "start", "count", "latent"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_native_equals_numpy(seed: int, start: int, count: int, latent: int, threads: int) -> None:
    out = np.full((count, latent), np.nan, dtype=np.float32)
    NATIVE.fill(out, seed, start, count, latent, threads)
    assert_same_bits(out, np_impl.noise_numpy(seed, start, count, latent))


@NEEDS_NATIVE
def test_native_equals_numpy_on_a_million_values() -> None:
    """~500k radius and ~500k angle words through the C polynomials (the SIMD clone this CPU runs)."""
    out = np.empty((10_000, 100), dtype=np.float32)
    NATIVE.fill(out, 77, 10**9, 10_000, 100, 2)
    assert_same_bits(out, np_impl.noise_numpy(77, 10**9, 10_000, 100))


@NEEDS_NATIVE
def test_native_rejects_a_wrong_buffer() -> None:
    with pytest.raises(ValueError, match="len\\(out\\) == count \\* latent"):
        NATIVE.fill(np.empty((3, 10), dtype=np.float32), 0, 0, 3, 11, 1)
    with pytest.raises(ValueError, match="1 <= threads <= 256"):
        NATIVE.fill(np.empty((3, 10), dtype=np.float32), 0, 0, 3, 10, 0)


def test_native_extension_is_built_where_required() -> None:
    """`make test` (what CI runs) pip-installs gankit, which must build the C extension, and sets
    GANKIT_REQUIRE_NATIVE=1. A source checkout run with PYTHONPATH=. (the GPU machine) has no build."""
    if os.environ.get("GANKIT_REQUIRE_NATIVE") != "1":
        pytest.skip("only `make test` installs gankit (building the extension); it sets GANKIT_REQUIRE_NATIVE=1")
    assert NATIVE is not None, "pip install -e . did not build gankit._noise._native (see setup.py)"
    assert cpu_implementation() == "native"


def test_cpu_noise_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """noise() on the CPU calls the C extension with the whole range and the thread count, or NumPy."""
    calls = []

    class Spy:
        @staticmethod
        def fill(out, *args) -> None:
            calls.append(args)
            out[...] = np_impl.noise_numpy(*args[:4])

    monkeypatch.setattr(noise_module, "_native", Spy())
    assert_same_bits(noise(3, 10, 1000, 100), np_impl.noise_numpy(3, 10, 1000, 100))
    noise(3, 10, 2, 100)
    threads = min(torch.get_num_threads(), 1000 * 100 // noise_module.MIN_NORMALS_A_THREAD)
    assert calls == [(3, 10, 1000, 100, max(1, threads)), (3, 10, 2, 100, 1)]
    monkeypatch.setattr(noise_module, "_native", None)
    assert cpu_implementation() == "numpy"
    assert_same_bits(noise(3, 10, 20, 7), np_impl.noise_numpy(3, 10, 20, 7))


@triton.jit
def latent_kernel(out_ptr, seed, start, LATENT: tl.constexpr, ROWS: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[i] = z of sample start + i, BLOCK_K latent columns at a time (as kernels.generator makes it)."""
    rows = tl.arange(0, ROWS).to(tl.int64)
    for k0 in range(0, LATENT, BLOCK_K):
        z = latent_noise(seed, start + rows, k0, LATENT, BLOCK_K)
        cols = k0 + tl.arange(0, BLOCK_K)
        tl.store(out_ptr + rows[:, None] * LATENT + cols[None, :], z, mask=cols[None, :] < LATENT)


@pytest.mark.parametrize(("seed", "start", "count", "latent"), CASES, ids=CASE_IDS)
def test_triton_latent_noise_equals_gankit_noise(seed: int, start: int, count: int, latent: int) -> None:
    out = torch.full((8, latent), float("nan"), device=DEVICE)
    latent_kernel[(1,)](out, seed, start, latent, 8, min(32, max(4, triton.next_power_of_2(latent))))
    expected = noise(seed, start, 8, latent)
    if ON_GPU:  # FMA contraction: within the derived bound (module docstring)
        assert torch.all((out.cpu() - expected).abs() <= GPU_RTOL * expected.abs())
    else:  # the interpreter's ops are NumPy float32 ops
        assert_same_bits(out, expected)


@triton.jit
def parts_kernel(words_ptr, radius_ptr, cos_ptr, sin_ptr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    words = tl.load(words_ptr + offsets).to(tl.uint32, bitcast=True)
    cos, sin = _cos_sin(words)
    tl.store(radius_ptr + offsets, _radius(words))
    tl.store(cos_ptr + offsets, cos)
    tl.store(sin_ptr + offsets, sin)


# ---- accuracy of the polynomials, over every uniform ----


def ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the last place of the float32 nearest ``exact``."""
    return np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)


@pytest.mark.slow
def test_polynomial_accuracy_over_all_uniforms() -> None:
    u = ((ALL_WORDS >> np.uint32(8)) | np.uint32(1)).astype(np.float64) * 2.0**-24
    ln, radius = np_impl.log_uniform(ALL_WORDS), np_impl.radius(ALL_WORDS)
    cos, sin = np_impl.cos_sin(ALL_WORDS)
    exact_radius, exact_cos, exact_sin = np.sqrt(-2 * np.log(u)), np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)
    assert ulps(ln, np.log(u)).max() <= 0.9  # measured 0.86
    assert ulps(radius, exact_radius).max() <= 1.0  # measured 0.98
    assert ulps(cos, exact_cos).max() <= 1.25 and ulps(sin, exact_sin).max() <= 1.25  # measured 1.21
    assert (np.abs(radius - exact_radius) / exact_radius).max() <= 9.8e-8  # the bounds the tolerances use
    assert (np.abs(cos - exact_cos) / np.abs(exact_cos)).max() <= 1.02e-7
    assert (np.abs(sin - exact_sin) / np.abs(exact_sin)).max() <= 1.02e-7


@pytest.mark.slow
def test_torch_and_triton_polynomials_equal_numpy_over_all_uniforms() -> None:
    """Every input the float part can get: torch (incl. its float64 sqrt) and the Triton helpers."""
    cos, sin = np_impl.cos_sin(ALL_WORDS)
    radius = np_impl.radius(ALL_WORDS)
    words = torch.from_numpy(ALL_WORDS.astype(np.int64))
    torch_cos, torch_sin = torch_impl.cos_sin(words)
    for got, expected in ((torch_impl.radius(words), radius), (torch_cos, cos), (torch_sin, sin)):
        assert_same_bits(got, expected)
    as_int32 = torch.from_numpy(ALL_WORDS.view(np.int32)).to(DEVICE)
    outputs = [torch.full((2**23,), float("nan"), device=DEVICE) for _ in range(3)]
    block = 2**10 if ON_GPU else 2**16  # the interpreter is fastest on big NumPy blocks
    parts_kernel[(2**23 // block,)](as_int32, *outputs, BLOCK=block)
    if ON_GPU:
        for got, expected in zip(outputs, (radius, cos, sin)):
            expected = torch.from_numpy(expected)
            assert torch.all((got.cpu() - expected).abs() <= GPU_RTOL / 2 * expected.abs())
    else:
        for got, expected in zip(outputs, (radius, cos, sin)):
            assert_same_bits(got, expected)


# ---- the contract: any cut of the index range gives the same vectors ----


@pytest.mark.parametrize("latent", [100, 7, 1])
def test_chunking_does_not_change_values(latent: int) -> None:
    whole = noise(42, 0, 300, latent)
    parts = torch.cat([noise(42, 0, 7, latent), noise(42, 7, 200, latent), noise(42, 207, 93, latent)])
    assert_same_bits(parts, whole)
    assert_same_bits(noise(42, 5, 1, latent)[0], whole[5])
    assert not torch.equal(noise(42, 0, 10, latent), noise(43, 0, 10, latent))


def test_large_call_split_over_threads_equals_small_calls() -> None:
    """A call big enough for several threads (2**15 normals each) == the same rows one at a time."""
    whole = noise(5, 2**33, 3000, 100)
    rows = [0, 1, 1499, 1500, 1501, 2999]
    assert_same_bits(torch.stack([noise(5, 2**33 + r, 1, 100)[0] for r in rows]), whole[rows])


def test_last_counter_below_2_63() -> None:
    """latent 4: one group a sample, so sample 2**63 - 1 has the last int64 counter."""
    z = noise(9, 2**63 - 2, 2, 4)
    assert_same_bits(z, torch_impl.noise_torch(9, 2**63 - 2, 2, 4, torch.device("cpu")))
    assert np.allclose(z.double().numpy(), spec_normals(9, 2**63 - 2, 2, 4), rtol=SPEC_RTOL, atol=0)


# ---- statistics ----


def test_standard_normal_statistics() -> None:
    z = noise(7, 0, 10_000, 100)  # 10**6 values, 25 groups a sample
    assert z.dtype == torch.float32 and z.shape == (10_000, 100)
    z, n = z.double(), z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.std().item() - 1) < 5 / math.sqrt(2 * n)
    for threshold, p in ((2.326, 0.01), (4.0, 3.167e-5)):  # one-sided tail probabilities, both tails counted
        share = (z.abs() > threshold).double().mean().item()
        assert abs(share - 2 * p) < 5 * math.sqrt(2 * p / n), threshold
    assert z.abs().max().item() <= math.sqrt(48 * math.log(2))  # the smallest u is 2**-24
    # Kolmogorov-Smirnov distance to N(0, 1): 2.69 / sqrt(n) is its 1e-6 quantile
    values = z.flatten().sort().values
    cdf = torch.special.ndtr(values)
    steps = torch.arange(1, n + 1, dtype=torch.float64) / n
    assert torch.maximum(steps - cdf, cdf - (steps - 1 / n)).max().item() < 2.69 / math.sqrt(n)


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def test_no_correlation_within_groups_nor_between_neighbours() -> None:
    """Within a group (all six pairs of its 4 normals, incl. the two sharing a radius), across groups
    and across samples: corr(x, y) and corr(x**2, y**2) (dependence a shared radius or angle would show)."""
    z = noise(11, 0, 10_000, 100).double()
    groups = z.view(10_000, 25, 4)
    bound = 5 / math.sqrt(groups[..., 0].numel())  # 2.5e5 pairs each
    pairs = [(groups[..., a], groups[..., b]) for a in range(4) for b in range(a + 1, 4)]
    pairs.append((groups[:, :-1, 3], groups[:, 1:, 0]))  # last normal of a group, first of the next
    pairs.append((z[:-1], z[1:]))  # the same element of consecutive samples
    for a, b in pairs:
        assert abs(correlation(a, b)) < bound
        assert abs(correlation(a**2, b**2)) < bound


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed must be in"):
        noise(-1, 0, 1, 10)
    with pytest.raises(ValueError, match="seed must be in"):
        noise(2**64, 0, 1, 10)
    with pytest.raises(ValueError, match="start >= 0"):
        noise(0, -5, 1, 10)
    with pytest.raises(ValueError, match="count >= 0"):
        noise(0, 0, -1, 10)
    with pytest.raises(ValueError, match="latent_dim > 0"):
        noise(0, 0, 1, 0)
    with pytest.raises(ValueError, match="pass the 2\\*\\*63 Philox counters"):
        noise(0, 2**63 - 1, 2, 4)
    assert noise(0, 0, 0, 10).shape == (0, 10)
