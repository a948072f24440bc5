"""The whole 3-Linear generator in one Triton launch: z -> h1 -> h2 -> image, h1 and h2 never leave the chip.

image = out(W3 @ leaky_s2(W2 @ leaky_s1(W1 @ z + b1) + b2) + b3), per sample: each hidden layer has its
own LeakyReLU slope (0 is ReLU, 1 no activation) and ``out`` is tanh or sigmoid mapped to [-1, 1]
(2 * sigmoid - 1, gankit's convention: ``gankit.config.GeneratorConfig``). z is read from memory or made
in the kernel from (seed, index) by ``kernels.noise.latent_noise`` (noise v2, the contract of
``gankit.noise``), so a seed -> image launch reads no input at all. Reference:
``kernels.reference.generator_reference``.

Class-conditional generators (``CONDITIONAL``, a constexpr: off, the gather is compiled out and the
unconditional kernel has no label operand at all): row ``labels[b]`` of ``class_bias`` (K, H1) fp32 is added to
sample b's layer-1 accumulator with its bias, before the LeakyReLU: a per-sample bias, one (BLOCK_M, H1P)
gather a program.

Tiling. Program (i, j) owns BLOCK_M samples and output columns [j, j + 1) * BLOCK_OUT, where
BLOCK_OUT = NOUTP / OUT_SPLIT (NOUTP: the output width padded to a power of two).

1. h1 = leaky(z @ W1.T + b1): a loop over the latent in BLOCK_K chunks into a (BLOCK_M, H1P) fp32
   accumulator. h1 then lives in registers, whole, in the weights' dtype.
2. Layers 2 and 3 interleaved. A register tensor cannot be sliced, so h2 is never materialised:
   each pass makes BLOCK_H2 columns of h2 from the whole of h1 (one dot with K = H1P), activates
   them, and consumes them at once as a K-chunk of layer 3: ``acc += h2_chunk @ W3.T[chunk, cols]``.
   Only a (BLOCK_M, BLOCK_H2) slice of h2 ever exists.
3. The output activation, then a float32 store, or uint8: (y + 1) * 127.5 rounded like ``torch.round`` and clipped
   (a quarter of the write traffic).

Why OUT_SPLIT. The live tensors are h1 (BLOCK_M, H1P) and the layer-3 accumulator (BLOCK_M,
BLOCK_OUT) fp32. With OUT_SPLIT = 1 (the whole 784-wide row, padded to 1024, in one program) nothing
is recomputed, but only ~16 samples fit a program, and every program reads all the weights (1.1 MB
in bf16, from L2) for those 16: ~70 KB of L2 reads a sample. With OUT_SPLIT = s, output blocks of
NOUTP / s columns go to s programs (blocks wholly past NOUT are not launched), each of which
recomputes layers 1-2 for its samples; in exchange a program holds more samples (fewer weight reads
a sample: ~32 KB at 64 x s=4, ~23 KB at 128 x s=8) or, at batch 1, one row is spread over many SMs.
FLOPs computed per useful FLOP for the 100-256-512-784 generator, padding included: s=1 1.22, s=2
1.50, s=4 2.06, s=8 2.79, s=16 4.41. Which wins depends on the GPU and the batch, so s is autotuned
beside BLOCK_M (keyed on the batch rounded up to a power of two) and the benchmark script records
the choice; the interpreter runs s = 1. GPU_CONFIGS holds configurations that compile for sm_90
in bf16 with at most 64 bytes of stack a thread (checked offline with Triton's ptxas; most
alternatives spill hundreds), from no recomputation to latency-first. On paper, large batches are
bound by those L2 weight reads rather than by the tensor cores: benchmarks/bench_gpu_kernels.py
measures the kernel against the per-layer kernels, eager and torch.compile.

Sizes that are not powers of two are padded inside the kernel and masked: padded h1/h2 columns are
exactly 0 after LeakyReLU (zero weights, zero bias), so they add nothing. Weights are stored
transposed, (in, out) row-major, in the compute dtype (fp32, fp16 or bf16); biases fp32; every dot
accumulates in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.fused_linear import (
    ACTIVATIONS,
    INTERPRETED,
    LEAKY_RELU,
    activate,
    check_device,
    config_tuple,
    dot_acc,
    dot_precision,
    precision_kind,
    ruled_out,
)
from kernels.noise import latent_noise

OUTPUT_ACTIVATIONS = ("tanh", "sigmoid")

MAX_HIDDEN_PAD = 1024  # h1 (BLOCK_M, H1P) is held whole in registers
MAX_OUTPUT_PAD = 2048  # beyond these the per-layer kernels are used
MIN_DOT = 16  # every tl.dot dimension must be at least 16


@triton.jit
def to_uint8(images):
    """[-1, 1] -> uint8: (x + 1) * 127.5 rounded half to even (as torch.round), clipped to 0..255."""
    levels = (images + 1.0) * 127.5
    levels = levels + 8388608.0  # 2**23: the fp32 addition rounds to an integer, ties to even ...
    levels = levels - 8388608.0  # ... and this subtraction is exact (for 0 <= levels < 2**22)
    return tl.minimum(tl.maximum(levels, 0.0), 255.0).to(tl.uint8)


CONFIG_KEYS = ("BLOCK_M", "BLOCK_K", "BLOCK_H2", "OUT_SPLIT")
GPU_CONFIGS = [
    triton.Config(
        {"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H2": bh2, "OUT_SPLIT": split}, num_warps=warps, num_stages=stages
    )
    for bm, bk, bh2, split, warps, stages in [
        (16, 32, 32, 1, 8, 2),  # a whole output row a program: nothing recomputed
        (32, 32, 32, 2, 8, 2),
        (32, 32, 64, 2, 8, 2),
        (64, 32, 32, 2, 8, 2),
        (64, 32, 64, 4, 8, 2),
        (128, 32, 32, 8, 8, 2),
        (64, 32, 64, 16, 4, 2),
        (16, 32, 64, 8, 4, 2),
        (16, 32, 64, 16, 4, 2),  # batch 1-16: one row spread over 13 programs (latency)
    ]
]
INTERPRETER_CONFIG = triton.Config({"BLOCK_M": 64, "BLOCK_K": 32, "BLOCK_H2": 64, "OUT_SPLIT": 1})


def launch_kinds(named_args: dict, kwargs: dict) -> set[str]:
    """The kinds of a launch as NOT_FOR names them: precision, (un)conditional, float/uint8 out, z/noise in."""
    kinds = {precision_kind(named_args["w1_ptr"].dtype, kwargs["DOT_PRECISION"])}
    kinds.add("conditional" if kwargs["CONDITIONAL"] else "unconditional")
    kinds.add("uint8" if kwargs["UINT8"] else "float")
    kinds.add("noise" if kwargs["NOISE"] else "z")
    return kinds


def _keep_valid_configs(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop the configs whose output block would be narrower than a dot allows (tiny outputs only), and those
    NOT_FOR this launch's kinds."""
    kinds = launch_kinds(named_args, kwargs)
    return [
        c
        for c in configs
        if kwargs["NOUTP"] // c.kwargs["OUT_SPLIT"] >= MIN_DOT
        and not ruled_out(NOT_FOR, config_tuple(c, CONFIG_KEYS), kinds)
    ]


@triton.autotune(
    configs=[INTERPRETER_CONFIG] if INTERPRETED else GPU_CONFIGS,
    key=["B_BUCKET", "LATENT", "H1", "H2", "NOUT", "NOISE", "UINT8", "DOT_PRECISION"],
    prune_configs_by={"early_config_prune": _keep_valid_configs},
)
@triton.jit(do_not_specialize=["seed", "start"])
def generator_kernel(
    z_ptr,
    w1_ptr,
    b1_ptr,
    w2_ptr,
    b2_ptr,
    w3_ptr,
    b3_ptr,
    labels_ptr,
    cb_ptr,
    out_ptr,
    B,
    seed,
    start,
    slope1,
    slope2,
    B_BUCKET,  # autotuning key only: the batch rounded up to a power of two
    LATENT: tl.constexpr,
    H1: tl.constexpr,
    H2: tl.constexpr,
    NOUT: tl.constexpr,
    H1P: tl.constexpr,
    NOUTP: tl.constexpr,
    NOISE: tl.constexpr,
    UINT8: tl.constexpr,
    OUTPUT_ACT: tl.constexpr,  # TANH or SIGMOID (kernels.fused_linear)
    CONDITIONAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_H2: tl.constexpr,
    OUT_SPLIT: tl.constexpr,
):
    BLOCK_OUT: tl.constexpr = NOUTP // OUT_SPLIT
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # int64: B * NOUT may pass 2**31
    row_ok = rows < B
    wdtype = w1_ptr.dtype.element_ty

    # Layer 1: h1 = leaky(z @ W1.T + b1), (BLOCK_M, H1P); z made or loaded BLOCK_K columns at a time.
    h1_cols = tl.arange(0, H1P)
    h1_ok = h1_cols < H1
    acc1 = tl.zeros((BLOCK_M, H1P), dtype=tl.float32)
    for k0 in range(0, LATENT, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < LATENT
        if NOISE:  # samples start + rows of seed, as gankit.noise makes them (padding columns are 0)
            z = latent_noise(seed, start + rows, k0, LATENT, BLOCK_K)
        else:
            z = tl.load(z_ptr + rows[:, None] * LATENT + k[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w1 = tl.load(w1_ptr + k[:, None] * H1 + h1_cols[None, :], mask=k_ok[:, None] & h1_ok[None, :], other=0.0)
        acc1 = dot_acc(z.to(wdtype), w1, acc1, DOT_PRECISION)
    acc1 += tl.load(b1_ptr + h1_cols, mask=h1_ok, other=0.0)[None, :]
    if CONDITIONAL:
        labels = tl.load(labels_ptr + rows, mask=row_ok, other=0)
        table = cb_ptr + labels[:, None] * H1 + h1_cols[None, :]
        acc1 += tl.load(table, mask=row_ok[:, None] & h1_ok[None, :], other=0.0)
    h1 = activate(acc1, LEAKY_RELU, slope1).to(wdtype)

    # Layers 2 and 3: each BLOCK_H2-wide slice of h2 is made from the whole of h1 and consumed at once.
    out_cols = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    out_ok = out_cols < NOUT
    acc3 = tl.zeros((BLOCK_M, BLOCK_OUT), dtype=tl.float32)
    for n0 in range(0, H2, BLOCK_H2):
        n = n0 + tl.arange(0, BLOCK_H2)
        n_ok = n < H2
        w2 = tl.load(w2_ptr + h1_cols[:, None] * H2 + n[None, :], mask=h1_ok[:, None] & n_ok[None, :], other=0.0)
        acc2 = dot_acc(h1, w2, tl.zeros((BLOCK_M, BLOCK_H2), dtype=tl.float32), DOT_PRECISION)
        acc2 += tl.load(b2_ptr + n, mask=n_ok, other=0.0)[None, :]
        h2 = activate(acc2, LEAKY_RELU, slope2).to(wdtype)
        w3 = tl.load(w3_ptr + n[:, None] * NOUT + out_cols[None, :], mask=n_ok[:, None] & out_ok[None, :], other=0.0)
        acc3 = dot_acc(h2, w3, acc3, DOT_PRECISION)
    acc3 += tl.load(b3_ptr + out_cols, mask=out_ok, other=0.0)[None, :]
    images = activate(acc3, OUTPUT_ACT, 0.0)

    pointers = out_ptr + rows[:, None] * NOUT + out_cols[None, :]
    mask = row_ok[:, None] & out_ok[None, :]
    if UINT8:
        tl.store(pointers, to_uint8(images), mask=mask)
    else:
        tl.store(pointers, images, mask=mask)


# The configurations (config_tuple) that spill or exceed shared memory on sm_90 for some kinds of launch
# (launch_kinds), which the autotuner therefore never runs for them: derived from
# benchmarks/results/sm90-compile-*.json by benchmarks/compile_kernels_sm90.py (derive_not_for;
# benchmarks/TUNING.md), checked by tests/test_kernel_sm90.py. Below the kernel: Triton's cache key holds the
# kernel's first line, which this table must not move.
NOT_FOR: dict[tuple[int, ...], tuple[str, ...]] = {
    (32, 32, 64, 2, 8, 2): ("fp32", "tf32"),
    (64, 32, 32, 2, 8, 2): ("fp32", "tf32"),
    (64, 32, 64, 4, 8, 2): ("fp32", "tf32"),
    (64, 32, 64, 16, 4, 2): ("conditional", "fp32", "tf32"),
    (128, 32, 32, 8, 8, 2): ("conditional", "fp32", "tf32"),
}


@dataclass
class PackedGenerator:
    """A 3-Linear generator laid out for the kernel: W.T (in, out) row-major in the compute dtype, biases fp32,
    the two hidden layers' LeakyReLU slopes, the output activation ("tanh" or "sigmoid") and, for a
    class-conditional generator, ``class_bias`` (K, H1) fp32 contiguous (None: unconditional)."""

    weights_t: list[torch.Tensor]
    biases: list[torch.Tensor]
    slopes: tuple[float, float]
    output_act: str = "tanh"
    class_bias: torch.Tensor | None = None

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(latent, H1, H2, NOUT)."""
        w1, w2, w3 = self.weights_t
        return w1.shape[0], w1.shape[1], w2.shape[1], w3.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights_t[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights_t[0].device


def fits_whole_generator(layer_sizes: list[tuple[int, int]]) -> bool:
    """True when the one-launch kernel takes this generator: 3 Linears, padded h1 and output within bounds."""
    if len(layer_sizes) != 3:
        return False
    (_, h1), _, (_, nout) = layer_sizes
    return triton.next_power_of_2(h1) <= MAX_HIDDEN_PAD and triton.next_power_of_2(nout) <= MAX_OUTPUT_PAD


def pack_generator(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    slope: float | Sequence[float],
    dtype: torch.dtype,
    device: torch.device,
    output_act: str = "tanh",
    class_bias: torch.Tensor | None = None,
) -> PackedGenerator:
    """weights: [(H1, latent), (H2, H1), (NOUT, H2)] as nn.Linear stores them; biases: [(H1,), (H2,), (NOUT,)].

    slope: the LeakyReLU slope of both hidden layers, or (slope 1, slope 2) (0 is ReLU, 1 no activation);
    output_act: "tanh" or "sigmoid" (2 * sigmoid - 1). dtype: fp32, fp16 or bf16, the dtype the dots
    multiply in. class_bias: a class-conditional generator's (K, H1) table (``Generator.class_bias``), or None.
    Done once; the result is what ``generator_forward`` takes.
    """
    slopes = tuple(float(s) for s in slope) if isinstance(slope, Sequence) else (float(slope),) * 2
    if len(slopes) != 2:
        raise ValueError(f"the whole-generator kernel takes 2 hidden-layer slopes, got {slopes}")
    if output_act not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_act must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {output_act!r}")
    if len(weights) != 3 or len(biases) != 3:
        raise ValueError(f"the whole-generator kernel takes exactly 3 layers, got {len(weights)} weights")
    sizes = [tuple(w.shape) for w in weights]
    layer_sizes = [(fan_in, fan_out) for fan_out, fan_in in sizes]
    if any(a[0] != b[1] for a, b in zip(sizes, sizes[1:])) or not fits_whole_generator(layer_sizes):
        raise ValueError(f"weights {sizes} are not a chain of Linears the kernel holds (see fits_whole_generator)")
    if [tuple(b.shape) for b in biases] != [(s[0],) for s in sizes]:
        raise ValueError(f"biases {[tuple(b.shape) for b in biases]} do not match weights {sizes}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be fp32, fp16 or bf16, got {dtype}")
    if class_bias is not None and (class_bias.ndim != 2 or class_bias.shape[1] != sizes[0][0]):
        raise ValueError(f"class_bias must be (classes, {sizes[0][0]}), got {tuple(class_bias.shape)}")
    device = torch.device(device)
    check_device(device)
    return PackedGenerator(
        [w.detach().to(device=device, dtype=dtype).t().contiguous() for w in weights],
        [b.detach().to(device=device, dtype=torch.float32).contiguous() for b in biases],
        slopes,
        output_act,
        None if class_bias is None else class_bias.detach().to(device=device, dtype=torch.float32).contiguous(),
    )


def generator_forward(
    packed: PackedGenerator,
    z: torch.Tensor | None = None,
    count: int | None = None,
    seed: int = 0,
    start: int = 0,
    output: str = "float",
    allow_tf32: bool = False,
    out: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flat images of z, or of samples start .. start+count-1 of ``seed`` (noise made in the kernel).

    z: (B, latent) float32, contiguous, on the packed weights' device; or None with ``count``.
    labels: (B,) int64 in [0, K) on that device, for a class-conditional ``packed`` only (range not checked here).
    Returns (B, NOUT) float32 in [-1, 1], or uint8 when output="uint8" (written into ``out`` when given).
    allow_tf32: fp32 weights on TF32 tensor cores instead of IEEE fp32 products.
    """
    latent, h1, h2, nout = packed.sizes
    if output not in ("float", "uint8"):
        raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
    if z is not None:
        if z.ndim != 2 or z.shape[1] != latent or z.dtype != torch.float32:
            raise ValueError(f"z must be (B, {latent}) float32, got {tuple(z.shape)} {z.dtype}")
        if z.device != packed.device or not z.is_contiguous():
            raise ValueError(f"z must be contiguous on {packed.device}; got {z.device}, strides {z.stride()}")
        batch = z.shape[0]
    else:
        if count is None or count < 0:
            raise ValueError(f"without z, count must be given and >= 0, got {count}")
        if not 0 <= seed < 2**64 or start < 0 or (start + count) * -(-latent // 4) > 2**63:
            raise ValueError(
                f"need 0 <= seed < 2**64 and 0 <= start, (start + count) * ceil(latent / 4) <= 2**63 (int64 "
                f"Philox counters); got {seed}, {start}"
            )
        batch = count
    conditional = packed.class_bias is not None
    if conditional != (labels is not None):
        raise ValueError("labels are required for a class-conditional generator, and refused for an unconditional one")
    wrong = labels is not None and (labels.shape != (batch,) or labels.dtype != torch.int64)
    if wrong or labels is not None and labels.device != packed.device:
        raise ValueError(
            f"labels must be ({batch},) int64 on {packed.device}, got {tuple(labels.shape)} {labels.dtype} on "
            f"{labels.device}"
        )
    dtype = torch.uint8 if output == "uint8" else torch.float32
    if out is None:
        out = torch.empty((batch, nout), dtype=dtype, device=packed.device)
    elif out.shape != (batch, nout) or out.dtype != dtype or out.device != packed.device or not out.is_contiguous():
        raise ValueError(
            f"out must be contiguous ({batch}, {nout}) {dtype} on {packed.device}; "
            f"got {tuple(out.shape)} {out.dtype} on {out.device}"
        )
    if batch == 0:
        return out
    (w1, w2, w3), (b1, b2, b3) = packed.weights_t, packed.biases
    nout_pad = max(MIN_DOT, triton.next_power_of_2(nout))

    def grid(meta: dict) -> tuple[int, int]:  # output blocks wholly past NOUT are not launched
        return (triton.cdiv(batch, meta["BLOCK_M"]), triton.cdiv(nout, nout_pad // meta["OUT_SPLIT"]))

    generator_kernel[grid](
        z if z is not None else out,  # ``out`` stands in for z when the noise is made in the kernel
        w1,
        b1,
        w2,
        b2,
        w3,
        b3,
        labels.contiguous() if conditional else out,  # ``out`` stands in when CONDITIONAL is off
        packed.class_bias if conditional else out,
        out,
        batch,
        seed,
        start,
        *packed.slopes,
        triton.next_power_of_2(batch),
        LATENT=latent,
        H1=h1,
        H2=h2,
        NOUT=nout,
        H1P=max(MIN_DOT, triton.next_power_of_2(h1)),
        NOUTP=nout_pad,
        NOISE=z is None,
        UINT8=output == "uint8",
        OUTPUT_ACT=ACTIVATIONS[packed.output_act],
        CONDITIONAL=conditional,
        DOT_PRECISION=dot_precision(packed.dtype, allow_tf32),
    )
    return out
