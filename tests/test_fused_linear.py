"""kernels.fused_linear vs a float64 reference (CPU: Triton interpreter; GPU: the compiled kernel).

Tolerances, relative to max |reference|: fp32 (IEEE) 1e-5; tf32 1e-3 and bf16 2e-2 (GPU only: the
interpreter computes everything in exact fp32 and has no bf16, so those are proven on a GPU); fp16 1e-2
(inputs are rounded to fp16, and so is the output).
"""

from __future__ import annotations

import pytest
import torch

from kernels.fused_linear import fused_linear
from kernels.reference import fused_linear_reference

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="tf32/bf16 need a GPU: the interpreter has no tf32 or bf16 math")

DTYPE_CASES = [
    pytest.param(torch.float32, False, 1e-5, id="fp32"),
    pytest.param(torch.float16, False, 1e-2, id="fp16"),
    pytest.param(torch.float32, True, 1e-3, id="tf32", marks=needs_gpu),
    pytest.param(torch.bfloat16, False, 2e-2, id="bf16", marks=needs_gpu),
]


def check(m: int, n: int, k: int, act: str, dtype: torch.dtype, tf32: bool, tol: float, bias: bool = True) -> None:
    torch.manual_seed(m * 1000 + n + k)
    x = torch.randn(m, k, device=DEVICE)
    w = torch.randn(n, k, device=DEVICE) / k**0.5
    b = torch.randn(n, device=DEVICE) if bias else None
    expected = fused_linear_reference(x.double(), w.double(), b.double() if bias else None, act, 0.2)
    out = torch.full((m, n), float("nan"), device=DEVICE, dtype=dtype)  # poisoned: an unwritten element fails
    got = fused_linear(x.to(dtype), w.to(dtype), b, act, 0.2, allow_tf32=tf32, out=out)
    assert got.data_ptr() == out.data_ptr() and got.dtype == dtype
    assert torch.isfinite(got).all()
    error = (got.double() - expected).abs().max().item()
    assert error <= tol * max(1.0, expected.abs().max().item()), f"max |err| {error:.3g}"


@pytest.mark.parametrize("m", [1, 3, 64, 257, 1000])
@pytest.mark.parametrize("act", ["leaky_relu", "tanh", "none"])
def test_batches_and_activations_fp32(m: int, act: str) -> None:
    check(m, 256, 100, act, torch.float32, False, 1e-5)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (7, 13), (33, 100), (784, 512), (100, 257)])
def test_odd_dims(n: int, k: int) -> None:
    check(5, n, k, "leaky_relu", torch.float32, False, 1e-5)


@pytest.mark.parametrize(("dtype", "tf32", "tol"), DTYPE_CASES)
def test_dtypes(dtype: torch.dtype, tf32: bool, tol: float) -> None:
    check(64, 96, 100, "leaky_relu", dtype, tf32, tol)
    check(3, 784, 512, "tanh", dtype, tf32, tol)


def test_no_bias() -> None:
    check(17, 40, 30, "none", torch.float32, False, 1e-5, bias=False)


def test_launcher_rejects_bad_inputs() -> None:
    x, w = torch.randn(4, 8, device=DEVICE), torch.randn(5, 8, device=DEVICE)
    with pytest.raises(ValueError, match=r"need x \(M, K\) and weight \(N, K\)"):
        fused_linear(x, torch.randn(5, 9, device=DEVICE))
    with pytest.raises(ValueError, match="share a dtype"):
        fused_linear(x, w.half())
    with pytest.raises(ValueError, match="bias must be"):
        fused_linear(x, w, torch.randn(4, device=DEVICE))
    with pytest.raises(ValueError, match="act must be one of"):
        fused_linear(x, w, act="gelu")
    with pytest.raises(ValueError, match="contiguous along K"):
        fused_linear(torch.randn(8, 4, device=DEVICE).t(), w)
