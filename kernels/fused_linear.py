"""y = act(x @ W.T + b) in one Triton kernel: the matmul, the bias and the activation fused.

x: (M, K) and W: (N, K) in fp32, fp16 or bf16; b: (N,) fp32 or None; y: (M, N) in x's dtype.
Accumulation is fp32. fp32 inputs use IEEE fp32 products (``allow_tf32=False``) or TF32 tensor
cores (``allow_tf32=True``). Edges are masked, so any M, N, K works (K = 100 included).
Reference: ``kernels.reference.fused_linear_reference``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

ACT_CODES = {"none": 0, "leaky_relu": 1, "tanh": 2}
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def apply_activation(x, ACT: tl.constexpr, slope):
    """ACT 0: identity, 1: LeakyReLU(slope), 2: tanh (exp-based, stable for large |x|)."""
    if ACT == 1:
        x = tl.where(x >= 0, x, x * slope)
    elif ACT == 2:
        t = tl.exp(-2.0 * tl.abs(x))
        y = (1.0 - t) / (1.0 + t)
        x = tl.where(x >= 0, y, -y)
    return x


def _configs() -> list[triton.Config]:
    if INTERPRETED:  # the interpreter is for correctness: one small config keeps it quick
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=1)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in [
            (16, 64, 64, 4, 3),
            (32, 64, 64, 4, 3),
            (64, 64, 32, 4, 4),
            (64, 128, 64, 4, 3),
            (128, 128, 32, 8, 3),
            (128, 256, 64, 8, 3),
            (128, 64, 64, 4, 4),
        ]
    ]


@triton.autotune(configs=_configs(), key=["M", "N", "K", "IEEE"])
@triton.jit
def fused_linear_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    M,
    N,
    K,
    slope,
    stride_xm,
    stride_wn,
    stride_ym,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + ks
        x = tl.load(
            x_ptr + rows[:, None] * stride_xm + k[None, :], mask=(rows[:, None] < M) & (k[None, :] < K), other=0.0
        )
        # W is (N, K) row-major: read a (BLOCK_K, BLOCK_N) tile of W.T directly.
        w = tl.load(
            w_ptr + cols[None, :] * stride_wn + k[:, None], mask=(cols[None, :] < N) & (k[:, None] < K), other=0.0
        )
        if IEEE:
            acc += tl.dot(x, w, input_precision="ieee")
        else:
            acc += tl.dot(x, w)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=cols < N, other=0.0)[None, :]
    acc = apply_activation(acc, ACT, slope)
    tl.store(
        y_ptr + rows[:, None] * stride_ym + cols[None, :],
        acc.to(y_ptr.dtype.element_ty),
        mask=(rows[:, None] < M) & (cols[None, :] < N),
    )


def fused_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "leaky_relu",
    slope: float = 0.2,
    allow_tf32: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """act(x @ weight.T + bias): x (M, K), weight (N, K) same dtype (fp32/fp16/bf16), bias (N,) -> (M, N)."""
    if act not in ACT_CODES:
        raise ValueError(f"act must be one of {sorted(ACT_CODES)}, got {act!r}")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x (M, K) and weight (N, K); got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16) or weight.dtype != x.dtype:
        raise ValueError(f"x and weight must share a dtype among fp32/fp16/bf16; got {x.dtype} and {weight.dtype}")
    if x.device != weight.device or (bias is not None and bias.device != x.device):
        raise ValueError(f"x, weight and bias must be on one device; got {x.device}, {weight.device}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    if x.stride(1) != 1 or weight.stride(1) != 1:
        raise ValueError("x and weight must be contiguous along K (call .contiguous())")
    M, K = x.shape
    N = weight.shape[0]
    if out is None:
        out = torch.empty((M, N), dtype=x.dtype, device=x.device)
    elif out.shape != (M, N) or out.stride(1) != 1:
        raise ValueError(f"out must be ({M}, {N}) and contiguous along N, got {tuple(out.shape)}")
    bias_arg = bias.float().contiguous() if bias is not None else out  # dummy pointer when HAS_BIAS is False

    def grid(meta):
        return (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"]))

    fused_linear_kernel[grid](
        x,
        weight,
        bias_arg,
        out,
        M,
        N,
        K,
        float(slope),
        x.stride(0),
        weight.stride(0),
        out.stride(0),
        HAS_BIAS=bias is not None,
        ACT=ACT_CODES[act],
        IEEE=x.dtype == torch.float32 and not allow_tf32,
    )
    return out
