"""The whole 3-layer MLP generator in one Triton launch: z -> h1 -> h2 -> image, h1/h2 never leave the chip.

One program owns BLOCK_M samples:

1. h1 = LeakyReLU(z @ W1.T + b1): a K-loop over the latent in BLOCK_K chunks into a (BLOCK_M, H1P)
   fp32 accumulator. z is loaded, or made in the kernel with ``tl.randn(seed, i * latent + j)``
   (the noise contract of ``gankit.noise``), so a seed -> image launch reads no input at all.
2. Layers 2 and 3 are interleaved: h1 is a register tensor and cannot be sliced, so h2 is produced
   BLOCK_H2 columns at a time from the whole of h1 (K = H1P), activated, and at once consumed as a
   K-chunk of layer 3: ``acc3 += h2_chunk @ W3.T[chunk]``. Only a (BLOCK_M, BLOCK_H2) slice of h2
   ever exists, and the (BLOCK_M, NOUTP) output accumulator is the largest live tensor: that is
   what bounds BLOCK_M (16-32 rows for 784 outputs). No FLOP is computed twice.
3. tanh (exp-based), then a float32 store, or uint8: (y + 1) * 127.5 rounded half up and clipped
   (a quarter of the write traffic).

Sizes that are not powers of two are padded to the next power of two inside the kernel and masked
(padded h1/h2 columns are exactly 0 after LeakyReLU, so they add nothing). Weights are stored
transposed, (in, out) row-major, in the compute dtype (fp32, fp16 or bf16); biases fp32; all
accumulation fp32. Reference: ``kernels.reference.generator_reference``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.fused_linear import apply_activation

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
MAX_OUTPUT_PAD = 2048  # beyond this the output accumulator does not fit a program: use per-layer kernels
MAX_HIDDEN_PAD = 1024


@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


def _configs() -> list[triton.Config]:
    if INTERPRETED:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_K": 32, "BLOCK_H2": 64}, num_warps=1)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H2": bh}, num_warps=w, num_stages=s)
        for bm, bk, bh, w, s in [
            (16, 32, 32, 4, 2),
            (16, 64, 64, 4, 2),
            (32, 32, 32, 8, 2),
            (32, 64, 64, 8, 2),
            (64, 32, 32, 8, 1),
        ]
    ]


@triton.autotune(configs=_configs(), key=["LATENT", "H1", "H2", "NOUT", "NOISE", "UINT8", "IEEE", "B_BUCKET"])
@triton.jit
def generator_kernel(
    z_ptr,
    w1_ptr,
    b1_ptr,
    w2_ptr,
    b2_ptr,
    w3_ptr,
    b3_ptr,
    out_ptr,
    B,
    seed,
    start,
    slope,
    B_BUCKET,
    LATENT: tl.constexpr,
    H1: tl.constexpr,
    H2: tl.constexpr,
    NOUT: tl.constexpr,
    H1P: tl.constexpr,
    NOUTP: tl.constexpr,
    NOISE: tl.constexpr,
    UINT8: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_H2: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < B
    wdtype = w1_ptr.dtype.element_ty

    # Layer 1: z (BLOCK_M, LATENT) @ W1.T (LATENT, H1) -> h1 (BLOCK_M, H1P)
    h1_cols = tl.arange(0, H1P)
    h1_ok = h1_cols < H1
    acc1 = tl.zeros((BLOCK_M, H1P), dtype=tl.float32)
    for k0 in range(0, LATENT, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < LATENT
        if NOISE:
            offsets = (rows + start)[:, None] * LATENT + k[None, :]
            z = tl.where(k_ok[None, :], tl.randn(seed, offsets), 0.0)
        else:
            z = tl.load(z_ptr + rows[:, None] * LATENT + k[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w1 = tl.load(w1_ptr + k[:, None] * H1 + h1_cols[None, :], mask=k_ok[:, None] & h1_ok[None, :], other=0.0)
        acc1 += _dot(z.to(wdtype), w1, IEEE)
    acc1 += tl.load(b1_ptr + h1_cols, mask=h1_ok, other=0.0)[None, :]
    h1 = apply_activation(acc1, 1, slope).to(wdtype)

    # Layers 2 and 3, interleaved: each BLOCK_H2-wide slice of h2 is made and consumed at once.
    out_cols = tl.arange(0, NOUTP)
    out_ok = out_cols < NOUT
    acc3 = tl.zeros((BLOCK_M, NOUTP), dtype=tl.float32)
    for n0 in range(0, H2, BLOCK_H2):
        n = n0 + tl.arange(0, BLOCK_H2)
        n_ok = n < H2
        w2 = tl.load(w2_ptr + h1_cols[:, None] * H2 + n[None, :], mask=h1_ok[:, None] & n_ok[None, :], other=0.0)
        h2 = _dot(h1, w2, IEEE) + tl.load(b2_ptr + n, mask=n_ok, other=0.0)[None, :]
        h2 = apply_activation(h2, 1, slope).to(wdtype)
        w3 = tl.load(w3_ptr + n[:, None] * NOUT + out_cols[None, :], mask=n_ok[:, None] & out_ok[None, :], other=0.0)
        acc3 += _dot(h2, w3, IEEE)
    acc3 += tl.load(b3_ptr + out_cols, mask=out_ok, other=0.0)[None, :]
    images = apply_activation(acc3, 2, slope)

    mask = row_ok[:, None] & out_ok[None, :]
    pointers = out_ptr + rows[:, None] * NOUT + out_cols[None, :]
    if UINT8:
        levels = tl.floor((images + 1.0) * 127.5 + 0.5)
        tl.store(pointers, tl.minimum(tl.maximum(levels, 0.0), 255.0).to(tl.uint8), mask=mask)
    else:
        tl.store(pointers, images, mask=mask)


@dataclass
class PackedGenerator:
    """A 3-Linear generator laid out for the kernel: W.T (in, out) in ``dtype``, biases fp32."""

    weights_t: list[torch.Tensor]
    biases: list[torch.Tensor]
    slope: float

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        w1, w2, w3 = self.weights_t
        return w1.shape[0], w1.shape[1], w2.shape[1], w3.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights_t[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights_t[0].device


def fits_whole_generator(layer_sizes: list[tuple[int, int]]) -> bool:
    """True when the one-launch kernel can hold this generator (3 Linears, padded widths within bounds)."""
    if len(layer_sizes) != 3:
        return False
    (_, h1), (_, _), (_, out) = layer_sizes
    return triton.next_power_of_2(h1) <= MAX_HIDDEN_PAD and triton.next_power_of_2(out) <= MAX_OUTPUT_PAD


def pack_generator(
    weights: list[torch.Tensor], biases: list[torch.Tensor], slope: float, dtype: torch.dtype, device: torch.device
) -> PackedGenerator:
    """weights: [(H1, L), (H2, H1), (OUT, H2)] as nn.Linear stores them; biases: [(H1,), (H2,), (OUT,)]."""
    if len(weights) != 3 or len(biases) != 3:
        raise ValueError(f"the whole-generator kernel takes exactly 3 layers, got {len(weights)}")
    return PackedGenerator(
        [w.detach().to(device=device, dtype=dtype).t().contiguous() for w in weights],
        [b.detach().to(device=device, dtype=torch.float32).contiguous() for b in biases],
        float(slope),
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
) -> torch.Tensor:
    """Images of z (B, latent) float32, or of samples start .. start+count-1 of ``seed`` when z is None.

    Returns (B, OUT) float32 in [-1, 1], or uint8 when output='uint8'.
    """
    latent, h1, h2, nout = packed.sizes
    if output not in ("float", "uint8"):
        raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
    if z is not None:
        if z.ndim != 2 or z.shape[1] != latent or z.dtype != torch.float32:
            raise ValueError(f"z must be (B, {latent}) float32, got {tuple(z.shape)} {z.dtype}")
        if z.device != packed.device or not z.is_contiguous():
            raise ValueError(f"z must be contiguous on {packed.device}, got {z.device}")
        batch = z.shape[0]
    else:
        if count is None or count < 0:
            raise ValueError(f"without z, count must be given and >= 0 (got {count})")
        if not (0 <= seed < 2**64 and start >= 0):
            raise ValueError(f"need 0 <= seed < 2**64 and start >= 0 (got {seed}, {start})")
        batch = count
    dtype = torch.uint8 if output == "uint8" else torch.float32
    if out is None:
        out = torch.empty((batch, nout), dtype=dtype, device=packed.device)
    elif out.shape != (batch, nout) or out.dtype != dtype or not out.is_contiguous():
        raise ValueError(f"out must be contiguous ({batch}, {nout}) {dtype}, got {tuple(out.shape)} {out.dtype}")
    if batch == 0:
        return out
    (w1, w2, w3), (b1, b2, b3) = packed.weights_t, packed.biases

    def grid(meta):
        return (triton.cdiv(batch, meta["BLOCK_M"]),)

    generator_kernel[grid](
        z if z is not None else out,
        w1,
        b1,
        w2,
        b2,
        w3,
        b3,
        out,
        batch,
        seed,
        start,
        packed.slope,
        triton.next_power_of_2(batch),
        LATENT=latent,
        H1=h1,
        H2=h2,
        NOUT=nout,
        H1P=max(16, triton.next_power_of_2(h1)),
        NOUTP=max(16, triton.next_power_of_2(nout)),
        NOISE=z is None,
        UINT8=output == "uint8",
        IEEE=packed.dtype == torch.float32 and not allow_tf32,
    )
    return out
