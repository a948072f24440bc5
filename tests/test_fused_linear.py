"""kernels.fused_linear vs a float64 reference (CPU: the Triton interpreter; GPU: the compiled kernel).

Check: max |y - reference| <= TOL * max(1, max |reference|), reference in float64 from the same
(unrounded) inputs. TOL per compute dtype:

- fp32 (IEEE) 1e-5: products and sums in fp32.
- fp16 1e-2: inputs and output rounded to fp16 (11 significant bits).
- bf16 2e-2: inputs and output rounded to bf16 (8 significant bits). On the CPU the interpreter widens
  bf16 to fp32 before its dot (see kernels.fused_linear), so the CPU proves the rounding, the masking
  and the fp32 accumulation; the tensor-core instruction itself is proven on a GPU.
- tf32 2e-3: inputs rounded to 11 significant bits by the tensor cores. GPU only: the interpreter
  ignores ``input_precision`` and computes exact fp32 (its CPU twin checks just that).

Every output is poisoned with NaN before the launch, so an element the kernel fails to write fails.
"""

from __future__ import annotations

import pytest
import torch
from triton.runtime.errors import OutOfResources

from kernels import fused_linear as module
from kernels.fused_linear import (
    CONFIG_KEYS,
    GPU_CONFIGS,
    _keep_compiling_configs,
    check_device,
    config_tuple,
    fused_linear,
    fused_linear_kernel,
)
from kernels.reference import fused_linear_reference

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
NEEDS_GPU = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU; its CPU twin runs here instead")
GPU_ONLY = [pytest.mark.gpu, NEEDS_GPU]
INTERPRETER_ONLY = pytest.mark.skipif(ON_GPU, reason="checks the interpreter; its GPU twin runs here instead")
TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
TF32_TOLERANCE = 2e-3


def inputs(m: int, n: int, k: int, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fresh random x (m, k), weight (n, k) scaled like nn.Linear's, bias (n,): fp32 on DEVICE."""
    generator = torch.Generator().manual_seed(m * 1_000_003 + n * 1009 + k)
    x = torch.randn(m, k, generator=generator)
    weight = torch.randn(n, k, generator=generator) / max(k, 1) ** 0.5
    b = torch.randn(n, generator=generator) if bias else None
    return x.to(DEVICE), weight.to(DEVICE), b.to(DEVICE) if bias else None


def run(x, weight, bias, act="leaky_relu", dtype=torch.float32, allow_tf32=False, rows=None) -> torch.Tensor:
    """The kernel's output, written into a NaN-poisoned tensor; ``rows``: only those rows are returned."""
    out = torch.full((x.shape[0], weight.shape[0]), float("nan"), dtype=dtype, device=DEVICE)
    got = fused_linear(x.to(dtype), weight.to(dtype), bias, act, 0.2, allow_tf32=allow_tf32, out=out)
    assert got.data_ptr() == out.data_ptr() and got.dtype == dtype
    return got if rows is None else got[rows]


def max_error(got: torch.Tensor, x, weight, bias, act="leaky_relu") -> float:
    """max |got - reference| / max(1, max |reference|), reference in float64 on the CPU."""
    expected = fused_linear_reference(
        x.double().cpu(), weight.double().cpu(), bias.double().cpu() if bias is not None else None, act, 0.2
    )
    assert torch.isfinite(got).all(), "the kernel left NaN (unwritten) elements"
    return (got.double().cpu() - expected).abs().max().item() / max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("m", [1, 3, 64, 257, 1000])
@pytest.mark.parametrize("act", ["leaky_relu", "relu", "tanh", "sigmoid", "none"])
def test_batches_and_activations(m: int, act: str) -> None:
    x, weight, bias = inputs(m, 256, 100)
    assert max_error(run(x, weight, bias, act), x, weight, bias, act) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 1.0, -0.5])
def test_leaky_relu_takes_any_slope(slope: float) -> None:
    """An imported generator keeps its own slope (0 is ReLU, 1 no activation): the kernel applies the one given."""
    x, weight, bias = inputs(33, 70, 100)
    got = fused_linear(x, weight, bias, "leaky_relu", slope, out=torch.full((33, 70), float("nan"), device=DEVICE))
    expected = fused_linear_reference(x.double().cpu(), weight.double().cpu(), bias.double().cpu(), "leaky_relu", slope)
    assert (got.double().cpu() - expected).abs().max().item() <= TOLERANCE[torch.float32] * expected.abs().max().item()


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # the interpreter's NumPy: the point
def test_sigmoid_is_mapped_to_minus_one_one_without_overflow() -> None:
    """sigmoid -> 2 * sigmoid - 1, so an output saturates at exactly -1 and 1, never NaN (exp(-x) overflows to inf)."""
    x = torch.tensor([[-200.0], [-30.0], [0.0], [30.0], [200.0]], device=DEVICE)
    got = fused_linear(x, torch.ones(1, 1, device=DEVICE), None, "sigmoid").flatten().cpu()
    assert got.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (5, 7, 13), (3, 33, 100), (17, 784, 512), (65, 100, 257)])
def test_odd_dims(m: int, n: int, k: int) -> None:
    x, weight, bias = inputs(m, n, k)
    assert max_error(run(x, weight, bias), x, weight, bias) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize(("m", "n", "k", "act"), [(64, 96, 100, "leaky_relu"), (3, 784, 512, "tanh")])
def test_dtypes(dtype: torch.dtype, m: int, n: int, k: int, act: str) -> None:
    x, weight, bias = inputs(m, n, k)
    assert max_error(run(x, weight, bias, act, dtype), x, weight, bias, act) <= TOLERANCE[dtype]


@pytest.mark.gpu
@NEEDS_GPU
@pytest.mark.parametrize("act", ["leaky_relu", "tanh"])
@pytest.mark.parametrize("m", [3, 257])
def test_tf32_on_gpu(m: int, act: str) -> None:
    x, weight, bias = inputs(m, 784, 512)
    tf32 = run(x, weight, bias, act, allow_tf32=True)
    ieee = run(x, weight, bias, act)
    assert max_error(tf32, x, weight, bias, act) <= TF32_TOLERANCE
    assert max_error(ieee, x, weight, bias, act) <= TOLERANCE[torch.float32]  # fp32 really is IEEE on the GPU
    assert not torch.equal(tf32, ieee)  # and allow_tf32 really reaches the tensor cores


@INTERPRETER_ONLY
def test_tf32_flag_under_interpreter() -> None:
    """CPU twin of test_tf32_on_gpu: the TF32 path runs, and the interpreter computes it in exact fp32."""
    x, weight, bias = inputs(65, 784, 512)
    tf32 = run(x, weight, bias, allow_tf32=True)
    assert torch.equal(tf32, run(x, weight, bias))
    assert max_error(tf32, x, weight, bias) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize(
    "m", [pytest.param(2**21 + 3, marks=GPU_ONLY, id="M*N>2**31"), pytest.param(1003, id="cpu-twin")]
)
def test_offsets_past_int32(m: int) -> None:
    """M * N > 2**31 elements: row offsets must be int64. The CPU twin runs the same check at a size it can hold."""
    x, weight, bias = inputs(m, 1024, 16)
    tail = slice(m - 5, m)
    got = run(x, weight, bias, dtype=torch.float16, rows=tail)
    assert max_error(got, x[tail], weight, bias) <= TOLERANCE[torch.float16]


def config_id(config) -> str:
    k = config.kwargs
    return f"M{k['BLOCK_M']}-N{k['BLOCK_N']}-K{k['BLOCK_K']}-w{config.num_warps}-s{config.num_stages}"


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=config_id)
def test_every_autotune_config(config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each GPU block configuration on odd sizes (on a CPU: under the interpreter, which runs one config otherwise)."""
    monkeypatch.setattr(fused_linear_kernel, "configs", [config])
    monkeypatch.setattr(fused_linear_kernel, "cache", {})
    x, weight, bias = inputs(37, 100, 77)
    for dtype in (torch.float32, torch.bfloat16):
        try:
            got = run(x, weight, bias, "tanh", dtype)
        except OutOfResources:  # a GPU with less shared memory: the autotuner skips the config too
            pytest.skip(f"{config_id(config)} does not fit this GPU in {dtype}")
        assert max_error(got, x, weight, bias, "tanh") <= TOLERANCE[dtype], (config_id(config), dtype)


@pytest.mark.parametrize("layout", ["W.T-view", "x-transposed", "x-strided"])
def test_strided_operands(layout: str) -> None:
    """Any strides: W as a view of a contiguous W.T (the layout the backend uses), x transposed or sliced."""
    x, weight, bias = inputs(33, 100, 77)
    if layout == "W.T-view":
        weight = weight.t().contiguous().t()
    elif layout == "x-transposed":
        x = x.t().contiguous().t()
    else:
        x = torch.stack([x, x], dim=2)[:, :, 0]  # strides (2K, 2)
    assert max_error(run(x, weight, bias), x, weight, bias) <= TOLERANCE[torch.float32]


def test_no_bias_and_empty_batch() -> None:
    x, weight, _ = inputs(17, 40, 30, bias=False)
    assert max_error(run(x, weight, None, "none"), x, weight, None, "none") <= TOLERANCE[torch.float32]
    assert fused_linear(x[:0], weight).shape == (0, 40)


def test_launcher_rejects_bad_inputs() -> None:
    x, weight = torch.randn(4, 8, device=DEVICE), torch.randn(5, 8, device=DEVICE)
    with pytest.raises(ValueError, match=r"need x \(M, K\) and weight \(N, K\); got x \(4, 8\) and weight \(5, 9\)"):
        fused_linear(x, torch.randn(5, 9, device=DEVICE))
    with pytest.raises(ValueError, match="share a dtype among fp32/fp16/bf16; got torch.float32 and torch.float16"):
        fused_linear(x, weight.half())
    with pytest.raises(ValueError, match=r"share a dtype .* got torch.float64"):
        fused_linear(x.double(), weight.double())
    with pytest.raises(ValueError, match=r"bias must be a float \(5,\) tensor, got \(4,\)"):
        fused_linear(x, weight, torch.randn(4, device=DEVICE))
    with pytest.raises(ValueError, match="act must be one of none, leaky_relu, tanh, relu, sigmoid, got 'gelu'"):
        fused_linear(x, weight, act="gelu")
    with pytest.raises(ValueError, match=r"out must be \(4, 5\) torch.float32"):
        fused_linear(x, weight, out=torch.empty(4, 5, dtype=torch.float16, device=DEVICE))
    with pytest.raises(ValueError, match="tensors are on meta: the kernels need a CUDA device, or TRITON_INTERPRET=1"):
        fused_linear(x.to("meta"), weight.to("meta"))
    with pytest.raises(ValueError, match="on one device"):
        fused_linear(x, weight.to("meta"))
    check_device(DEVICE)


def test_class_bias_adds_row_labels_m_before_the_activation() -> None:
    """A class-conditional layer 1: row labels[m] of a (classes, N) table is a per-row bias."""
    x, weight, bias = inputs(70, 48, 20)
    table = torch.randn(10, 48, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    labels = torch.randint(0, 10, (70,), generator=torch.Generator().manual_seed(6)).to(DEVICE)
    out = torch.full((70, 48), float("nan"), device=DEVICE)
    got = fused_linear(x, weight, bias, "leaky_relu", 0.2, out=out, class_bias=table, labels=labels)
    expected = fused_linear_reference(
        x.double().cpu(),
        weight.double().cpu(),
        bias.double().cpu(),
        "leaky_relu",
        0.2,
        table.double().cpu(),
        labels.cpu(),
    )
    assert torch.isfinite(got).all()
    assert (got.double().cpu() - expected).abs().max().item() <= TOLERANCE[torch.float32] * max(
        1.0, expected.abs().max().item()
    )
    assert max_error(run(x, weight, bias), x, weight, bias) <= TOLERANCE[torch.float32]  # off: as before
    with pytest.raises(ValueError, match="give both or neither"):
        fused_linear(x, weight, bias, class_bias=table)
    with pytest.raises(ValueError, match="need class_bias"):
        fused_linear(x, weight, bias, class_bias=table, labels=labels[:3])


def test_not_for_keeps_a_config_from_its_kinds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    first = config_tuple(GPU_CONFIGS[0], CONFIG_KEYS)
    monkeypatch.setattr(module, "NOT_FOR", {first: ("K512+fp32", "conditional")})

    def kept(dtype: torch.dtype, k: int, dot: str = "ieee", conditional: bool = False) -> list:
        named = {"x_ptr": torch.empty(1, dtype=dtype), "K": k}
        return _keep_compiling_configs(GPU_CONFIGS, named, DOT_PRECISION=dot, CONDITIONAL=conditional)

    assert kept(torch.float32, 512) == GPU_CONFIGS[1:]
    assert kept(torch.float32, 512, dot="tf32") == kept(torch.float32, 256) == GPU_CONFIGS
    assert kept(torch.bfloat16, 100, dot="tf32", conditional=True) == GPU_CONFIGS[1:]
