"""y = act(x @ W.T + b) in one Triton launch: the matmul, the bias and the activation fused.

x: (M, K) and W: (N, K), both fp32, fp16 or bf16, any strides; b: (N,) or None, added in fp32;
y: (M, N) in x's dtype. act: leaky_relu (any slope), relu, tanh, sigmoid (as 2 * sigmoid - 1, into
[-1, 1]: gankit's convention for a sigmoid generator, see ``gankit.config.GeneratorConfig``) or none.
Products accumulate in fp32: fp32 inputs use IEEE fp32 products, or TF32 tensor cores with
``allow_tf32=True``. Any M, N, K (K = 100 included): every edge is masked.
Reference: ``kernels.reference.fused_linear_reference``.

W may be ``nn.Linear``'s weight as it is, but a transposed view of a contiguous W.T (``w_t.t()``) is
the faster layout: its tiles are contiguous along N. Compiled offline for sm_90 (Triton 3.6 and 3.8),
the 64x128x64 bf16 configuration spills 568 bytes a thread with W's own layout, none with W.T's.

On the CPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, set before Triton is
imported). It computes every dot in exact fp32: ``input_precision`` is ignored there, so a TF32
tolerance can only be proven on a GPU, and bf16 operands are widened to fp32 first (the
interpreter's own dot would multiply their raw 16-bit patterns). A bf16 product is exact in fp32, so
that is what the tensor cores compute, up to the order of the fp32 additions.

The helpers above the kernel (activations, the dot, device checks) are shared with ``kernels.generator``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_INTERPRETER = tl.constexpr(INTERPRETED)

NONE = tl.constexpr(0)
LEAKY_RELU = tl.constexpr(1)
TANH = tl.constexpr(2)
RELU = tl.constexpr(3)
SIGMOID = tl.constexpr(4)
ACTIVATIONS = {
    "none": NONE.value,
    "leaky_relu": LEAKY_RELU.value,
    "tanh": TANH.value,
    "relu": RELU.value,
    "sigmoid": SIGMOID.value,
}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def activate(x, ACT: tl.constexpr, slope):
    """Elementwise on the fp32 accumulator: NONE, LEAKY_RELU(slope), RELU, TANH or SIGMOID (2 * sigmoid - 1)."""
    if ACT == LEAKY_RELU:
        x = tl.where(x >= 0, x, x * slope)
    elif ACT == RELU:
        x = tl.maximum(x, 0.0)
    elif ACT == SIGMOID:
        x = 2.0 / (1.0 + tl.exp(-x)) - 1.0  # exp overflows to inf for x < -88: 2 / inf - 1 = -1, no NaN
    elif ACT == TANH:
        t = tl.exp(-2.0 * tl.abs(x))  # in (0, 1]: no overflow for any x
        y = (1.0 - t) / (1.0 + t)
        x = tl.where(x >= 0, y, -y)
    return x


@triton.jit
def dot_acc(a, b, acc, DOT_PRECISION: tl.constexpr):
    """acc + a @ b in fp32. DOT_PRECISION: "ieee" or "tf32" (it only matters for fp32 operands)."""
    if _INTERPRETER:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


def dot_precision(dtype: torch.dtype, allow_tf32: bool) -> str:
    return "tf32" if allow_tf32 or dtype != torch.float32 else "ieee"


def check_device(device: torch.device) -> None:
    """ValueError unless the kernels can run on ``device`` (CUDA, or the CPU under the interpreter)."""
    if device.type == "cuda" or (device.type == "cpu" and INTERPRETED):
        return
    raise ValueError(
        f"tensors are on {device}: the kernels need a CUDA device, or TRITON_INTERPRET=1 (set before Triton is "
        "imported) to run on the CPU interpreter"
    )


def precision_kind(dtype: torch.dtype, dot: str) -> str:
    """A launch's operand kind as NOT_FOR tables name it: "fp32" (IEEE products), "tf32", "fp16" or "bf16"."""
    if dtype == torch.float32:
        return "tf32" if dot == "tf32" else "fp32"
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def config_tuple(config: triton.Config, keys: tuple[str, ...]) -> tuple[int, ...]:
    """(the block sizes named by ``keys``, num_warps, num_stages): how a NOT_FOR table names a configuration."""
    return (*(config.kwargs[k] for k in keys), config.num_warps, config.num_stages)


def ruled_out(table: dict, config: tuple[int, ...], kinds: set[str]) -> bool:
    """True when ``table`` (a kernel's NOT_FOR) keeps ``config`` from a launch of these kinds: an entry is a kind, or
    kinds joined by "+", all of which the launch has."""
    return any(set(entry.split("+")) <= kinds for entry in table.get(config, ()))


CONFIG_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_K")
GPU_CONFIGS = [
    triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages)
    for bm, bn, bk, warps, stages in [
        (16, 64, 64, 4, 3),  # small batches: more programs along N
        (32, 64, 64, 4, 3),
        (64, 64, 32, 4, 4),
        (64, 128, 64, 4, 3),
        (128, 64, 32, 4, 4),
        (128, 128, 32, 8, 3),
        (128, 256, 64, 8, 3),
    ]
]
# The interpreter is for correctness: one config and no autotuning (bigger blocks run faster in NumPy).
INTERPRETER_CONFIG = triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32})


def _keep_compiling_configs(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop the configs NOT_FOR this launch's kinds: its precision, (un)conditional, its K."""
    kinds = {precision_kind(named_args["x_ptr"].dtype, kwargs["DOT_PRECISION"]), f"K{named_args['K']}"}
    kinds.add("conditional" if kwargs["CONDITIONAL"] else "unconditional")
    return [c for c in configs if not ruled_out(NOT_FOR, config_tuple(c, CONFIG_KEYS), kinds)]


@triton.autotune(
    configs=[INTERPRETER_CONFIG] if INTERPRETED else GPU_CONFIGS,
    key=["M_BUCKET", "N", "K", "DOT_PRECISION"],
    prune_configs_by={"early_config_prune": _keep_compiling_configs},
)
@triton.jit
def fused_linear_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    labels_ptr,
    cb_ptr,
    y_ptr,
    M,
    N,
    K: tl.constexpr,  # a layer's fan-in: known when compiling, so the K loop's trip count is too
    slope,
    stride_xm,
    stride_xk,
    stride_wn,
    stride_wk,
    stride_ym,
    M_BUCKET,  # autotuning key only: M rounded up to a power of two, so a new batch size does not retune
    HAS_BIAS: tl.constexpr,
    CONDITIONAL: tl.constexpr,  # off: the unconditional kernel, unchanged (the gather is compiled out)
    ACT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # N varies fastest across programs: the programs that share a block of x rows run together, so x
    # is read from memory about once (W, at most a few MB, stays in L2).
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // num_n
    pid_n = pid % num_n
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # int64: M * K may pass 2**31
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < K
        x = tl.load(
            x_ptr + rows[:, None] * stride_xm + k[None, :] * stride_xk, mask=row_ok[:, None] & k_ok[None, :], other=0.0
        )
        w = tl.load(  # the (BLOCK_K, BLOCK_N) tile of W.T, read in place
            w_ptr + k[:, None] * stride_wk + cols[None, :] * stride_wn, mask=k_ok[:, None] & col_ok[None, :], other=0.0
        )
        acc = dot_acc(x, w, acc, DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0)[None, :]
    if CONDITIONAL:  # a per-sample bias: row labels[m] of the (classes, N) table
        labels = tl.load(labels_ptr + rows, mask=row_ok, other=0)
        acc += tl.load(cb_ptr + labels[:, None] * N + cols[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    y = activate(acc, ACT, slope)
    tl.store(
        y_ptr + rows[:, None] * stride_ym + cols[None, :],
        y.to(y_ptr.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


# The configurations (config_tuple) that spill or exceed shared memory on sm_90 for some kinds of launch, which the
# autotuner therefore never runs for them: derived from benchmarks/results/sm90-compile-*.json by
# benchmarks/compile_kernels_sm90.py (derive_not_for; benchmarks/TUNING.md), checked by tests/test_kernel_sm90.py.
# Below the kernel: Triton's cache key holds the kernel's first line, which this table must not move.
NOT_FOR: dict[tuple[int, ...], tuple[str, ...]] = {(128, 256, 64, 8, 3): ("conditional", "fp32", "tf32")}


def fused_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "leaky_relu",
    slope: float = 0.2,
    allow_tf32: bool = False,
    out: torch.Tensor | None = None,
    class_bias: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """act(x @ weight.T + bias [+ class_bias[labels]]) -> (M, N) in x's dtype (written into ``out`` when given).

    x: (M, K) and weight: (N, K), one dtype among fp32/fp16/bf16, any strides (fastest: x contiguous,
    weight the ``.t()`` view of a contiguous (K, N) W.T);
    bias: (N,) float or None; act: "leaky_relu" (with ``slope``), "relu", "tanh", "sigmoid" (2 * sigmoid - 1)
    or "none";
    allow_tf32: fp32 inputs on TF32 tensor cores instead of IEEE fp32 products;
    class_bias: (classes, N) float32 contiguous and labels: (M,) int64 in [0, classes) (not checked here: a read
    of device memory), both or neither: row labels[m] is added to row m before the activation (a class-conditional
    generator's layer 1).
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"need x (M, K) and weight (N, K); got x {tuple(x.shape)} and weight {tuple(weight.shape)}")
    if x.dtype not in DTYPES or weight.dtype != x.dtype:
        raise ValueError(f"x and weight must share a dtype among fp32/fp16/bf16; got {x.dtype} and {weight.dtype}")
    M, K = x.shape
    N = weight.shape[0]
    if bias is not None and (bias.shape != (N,) or not bias.is_floating_point()):
        raise ValueError(f"bias must be a float ({N},) tensor, got {tuple(bias.shape)} {bias.dtype}")
    devices = {x.device, weight.device} | ({bias.device} if bias is not None else set())
    if len(devices) != 1:
        raise ValueError(f"x, weight and bias must be on one device; got {sorted(map(str, devices))}")
    check_device(x.device)
    if (class_bias is None) != (labels is None):
        raise ValueError("class_bias and labels go together: give both or neither")
    if class_bias is not None and (
        class_bias.ndim != 2
        or class_bias.shape[1] != N
        or class_bias.dtype != torch.float32
        or not class_bias.is_contiguous()
        or labels.shape != (M,)
        or labels.dtype != torch.int64
        or {class_bias.device, labels.device} != {x.device}
    ):
        raise ValueError(
            f"need class_bias (classes, {N}) contiguous float32 and labels ({M},) int64 on {x.device}; got "
            f"{tuple(class_bias.shape)} {class_bias.dtype} on {class_bias.device} and {tuple(labels.shape)} "
            f"{labels.dtype} on {labels.device}"
        )
    if out is None:
        out = torch.empty((M, N), dtype=x.dtype, device=x.device)
    elif out.shape != (M, N) or out.dtype != x.dtype or out.device != x.device or out.stride(1) != 1:
        raise ValueError(
            f"out must be ({M}, {N}) {x.dtype} on {x.device}, contiguous along N; "
            f"got {tuple(out.shape)} {out.dtype} on {out.device}, strides {out.stride()}"
        )
    if M == 0 or N == 0:
        return out
    bias_fp32 = bias.float().contiguous() if bias is not None else out  # ``out`` stands in when HAS_BIAS is off

    def grid(meta: dict) -> tuple[int]:
        return (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

    fused_linear_kernel[grid](
        x,
        weight,
        bias_fp32,
        labels.contiguous() if labels is not None else out,  # ``out`` stands in when CONDITIONAL is off
        class_bias if class_bias is not None else out,
        out,
        M,
        N,
        K,
        float(slope),
        x.stride(0),
        x.stride(1),
        weight.stride(0),
        weight.stride(1),
        out.stride(0),
        triton.next_power_of_2(M),
        HAS_BIAS=bias is not None,
        CONDITIONAL=class_bias is not None,
        ACT=ACTIVATIONS[act],
        DOT_PRECISION=dot_precision(x.dtype, allow_tf32),
    )
    return out
