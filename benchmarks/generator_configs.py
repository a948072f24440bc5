"""The whole-generator kernel's configuration space for tuning, and the arithmetic that predicts each point.

A configuration is (BLOCK_M, BLOCK_K, BLOCK_H2, OUT_SPLIT, num_warps, num_stages); see the docstring of
``kernels/generator.py`` for what each one tiles. For a configuration and the generator's sizes
(latent, H1, H2, NOUT) this module counts, per sample:

- executed FLOPs: what the tensor cores run, padding and the recomputation of layers 1-2 in every
  output block included (``executed_flops_per_sample``); over the useful FLOPs this is the
  OUT_SPLIT overhead of the kernel's docstring (1.22 at s=1 ... 4.41 at s=16; a little more here,
  as the latent is padded to a multiple of BLOCK_K);
- L2 weight reads: every program reads W1, W2 and its slice of W3 for its BLOCK_M samples
  (``weight_bytes_per_sample``); the weights (1.1 MB in bf16) stay in L2, so this traffic meets the
  L2's bandwidth, not HBM's;
- HBM bytes: z in (unless the noise is made in the kernel) and the image out (``hbm_bytes_per_sample``).

Each count over a ceiling measured on the GPU gives a bound in samples/s (``bounds``): the smallest
binds. ``only_config`` runs the kernel's own launcher under one configuration, and
``compiled_stats`` reads the registers, spills and shared memory of what Triton compiled.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import triton

SIZES = (100, 256, 512, 784)  # latent, H1, H2, NOUT of the seed's generator (GeneratorConfig defaults)
CASES = {"z-float": (True, "float"), "seed-uint8": (False, "uint8")}  # case -> (z read from memory, output)

# Throughput at batch 65,536, beyond the kernel's autotune space (GPU_CONFIGS, which the sweep runs first):
# other block shapes, warps (4-16) and pipeline depths (1-3). Kept from the candidate grid (BLOCK_M 16-256,
# BLOCK_K 32/64, BLOCK_H2 32-128, OUT_SPLIT 1-16, 4-16 warps) at 2 stages, plus stages 1 and 3 of its 16 most
# promising points, each compiled offline for sm_90 in bf16 (benchmarks/compile_generator_offline.py,
# Triton 3.8): those with at most 64 bytes of stack a thread and shared memory within the H100's 227 KB, whose
# predicted bound (``bounds``, with 790 TFLOP/s and an assumed 7 TB/s of L2) passes 1e8 samples/s, best
# first, so a time limit cuts the least promising. Rerun that script when the kernel changes.
SWEEP: list[tuple[int, int, int, int, int, int]] = [
    (64, 32, 32, 2, 8, 1),
    (64, 32, 32, 2, 8, 3),
    (64, 32, 64, 2, 8, 1),
    (64, 32, 64, 2, 8, 2),
    (64, 64, 32, 2, 8, 1),
    (64, 64, 32, 2, 8, 2),
    (64, 64, 32, 2, 8, 3),
    (64, 64, 64, 2, 8, 1),
    (64, 64, 64, 2, 8, 2),
    (128, 32, 32, 8, 8, 1),
    (128, 32, 32, 8, 8, 3),
    (128, 32, 32, 8, 16, 2),
    (128, 32, 32, 8, 16, 3),
    (128, 32, 64, 8, 8, 1),
    (128, 32, 64, 8, 8, 2),
    (128, 32, 64, 8, 8, 3),
    (128, 64, 32, 8, 8, 1),
    (128, 64, 32, 8, 8, 2),
    (128, 64, 32, 8, 8, 3),
    (128, 64, 32, 8, 16, 2),
    (128, 64, 32, 8, 16, 3),
    (128, 64, 64, 8, 8, 1),
    (128, 64, 64, 8, 8, 2),
    (128, 64, 64, 8, 8, 3),
    (64, 32, 32, 4, 8, 1),
    (64, 32, 32, 4, 8, 2),
    (64, 32, 32, 4, 8, 3),
    (64, 32, 32, 4, 16, 1),
    (64, 32, 32, 4, 16, 2),
    (64, 32, 32, 4, 16, 3),
    (64, 32, 64, 4, 8, 1),
    (64, 32, 64, 4, 8, 3),
    (64, 64, 32, 4, 8, 1),
    (64, 64, 32, 4, 8, 2),
    (64, 64, 32, 4, 8, 3),
    (64, 64, 32, 4, 16, 1),
    (64, 64, 32, 4, 16, 2),
    (64, 64, 32, 4, 16, 3),
    (64, 64, 64, 4, 8, 1),
    (64, 64, 64, 4, 8, 2),
    (64, 64, 64, 4, 8, 3),
    (32, 32, 32, 1, 8, 2),
    (32, 32, 32, 1, 16, 2),
    (32, 32, 64, 1, 8, 2),
    (32, 32, 64, 1, 16, 2),
    (32, 64, 32, 1, 8, 2),
    (32, 64, 32, 1, 16, 2),
    (32, 64, 64, 1, 8, 2),
    (32, 64, 64, 1, 16, 2),
    (32, 32, 32, 2, 4, 2),
    (32, 32, 32, 2, 16, 2),
    (32, 32, 64, 2, 4, 2),
    (32, 32, 64, 2, 16, 2),
    (32, 32, 128, 2, 8, 2),
    (32, 32, 128, 2, 16, 2),
    (32, 64, 32, 2, 4, 2),
    (32, 64, 32, 2, 8, 2),
    (32, 64, 32, 2, 16, 2),
    (32, 64, 64, 2, 4, 2),
    (32, 64, 64, 2, 8, 2),
    (32, 64, 64, 2, 16, 2),
    (32, 64, 128, 2, 8, 2),
    (32, 64, 128, 2, 16, 2),
    (128, 32, 32, 16, 8, 2),
    (128, 32, 32, 16, 16, 2),
    (128, 32, 64, 16, 8, 2),
    (128, 32, 64, 16, 16, 2),
    (128, 32, 128, 16, 8, 2),
    (128, 64, 32, 16, 8, 2),
    (128, 64, 32, 16, 16, 2),
    (128, 64, 64, 16, 8, 2),
    (128, 64, 64, 16, 16, 2),
    (128, 64, 128, 16, 8, 2),
    (64, 32, 32, 8, 4, 2),
    (64, 32, 32, 8, 8, 2),
    (64, 32, 32, 8, 16, 2),
    (64, 32, 64, 8, 4, 2),
    (64, 32, 64, 8, 8, 2),
    (64, 32, 64, 8, 16, 2),
    (64, 32, 128, 8, 8, 2),
    (64, 64, 32, 8, 4, 2),
    (64, 64, 32, 8, 8, 2),
    (64, 64, 32, 8, 16, 2),
    (64, 64, 64, 8, 4, 2),
    (64, 64, 64, 8, 8, 2),
    (64, 64, 64, 8, 16, 2),
    (64, 64, 128, 8, 8, 2),
    (32, 32, 32, 4, 4, 2),
    (32, 32, 32, 4, 8, 2),
    (32, 32, 32, 4, 16, 2),
    (32, 32, 64, 4, 4, 2),
    (32, 32, 64, 4, 8, 2),
    (32, 32, 64, 4, 16, 2),
    (32, 32, 128, 4, 4, 2),
    (32, 32, 128, 4, 8, 2),
    (32, 32, 128, 4, 16, 2),
    (32, 64, 32, 4, 4, 2),
    (32, 64, 32, 4, 8, 2),
    (32, 64, 32, 4, 16, 2),
    (32, 64, 64, 4, 4, 2),
    (32, 64, 64, 4, 8, 2),
    (32, 64, 64, 4, 16, 2),
    (32, 64, 128, 4, 4, 2),
    (32, 64, 128, 4, 8, 2),
    (32, 64, 128, 4, 16, 2),
]

# Batch 1 (latency), seed -> uint8: BLOCK_M = 16, the smallest a dot allows, one sample spread over 13, 7 or 4
# programs (OUT_SPLIT 16, 8, 4); fewer and wider h2 steps (BLOCK_H2 64, 128) and pipeline depths 1-3, since
# the time is a chain of dependent weight loads. Compiled offline for a batch of 1 the same way.
LATENCY: list[tuple[int, int, int, int, int, int]] = [
    (16, 32, 128, 16, 4, 1),
    (16, 32, 128, 16, 4, 2),
    (16, 32, 128, 16, 4, 3),
    (16, 32, 128, 16, 8, 1),
    (16, 32, 128, 16, 8, 2),
    (16, 32, 128, 16, 8, 3),
    (16, 32, 64, 16, 4, 1),
    (16, 32, 64, 16, 4, 2),
    (16, 32, 64, 16, 4, 3),
    (16, 32, 64, 16, 8, 1),
    (16, 32, 64, 16, 8, 2),
    (16, 32, 64, 16, 8, 3),
    (16, 32, 128, 8, 4, 1),
    (16, 32, 128, 8, 4, 2),
    (16, 32, 128, 8, 4, 3),
    (16, 32, 128, 8, 8, 1),
    (16, 32, 128, 8, 8, 2),
    (16, 32, 128, 8, 8, 3),
    (16, 32, 64, 8, 4, 1),
    (16, 32, 64, 8, 4, 2),
    (16, 32, 64, 8, 4, 3),
    (16, 32, 64, 8, 8, 1),
    (16, 32, 64, 8, 8, 2),
    (16, 32, 64, 8, 8, 3),
    (16, 32, 128, 4, 4, 2),
    (16, 32, 128, 4, 8, 2),
    (16, 32, 64, 4, 4, 2),
    (16, 32, 64, 4, 8, 2),
]


def label(config: tuple[int, int, int, int, int, int]) -> str:
    bm, bk, bh2, split, warps, stages = config
    return f"M{bm}-K{bk}-H{bh2}-s{split}-w{warps}-st{stages}"


def make_config(config: tuple[int, int, int, int, int, int]):
    """The ``triton.Config`` of a configuration tuple."""
    bm, bk, bh2, split, warps, stages = config
    meta = {"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H2": bh2, "OUT_SPLIT": split}
    return triton.Config(meta, num_warps=warps, num_stages=stages)


def autotune_space() -> list[tuple[int, int, int, int, int, int]]:
    """The kernel's own autotune configurations (``kernels.generator.GPU_CONFIGS``) as tuples."""
    from kernels.generator import GPU_CONFIGS

    keys = ("BLOCK_M", "BLOCK_K", "BLOCK_H2", "OUT_SPLIT")
    return [(*(c.kwargs[k] for k in keys), c.num_warps, c.num_stages) for c in GPU_CONFIGS]


def output_blocks(split: int, nout: int) -> tuple[int, int]:
    """(programs along the output row, columns each): blocks wholly past NOUT are not launched."""
    block_out = max(16, triton.next_power_of_2(nout)) // split
    return math.ceil(nout / block_out), block_out


def executed_flops_per_sample(config: tuple, sizes: tuple[int, int, int, int] = SIZES) -> int:
    """FLOPs the tensor cores run for one sample, padding and per-block recomputation included."""
    bm, bk, bh2, split, _, _ = config
    latent, h1, h2, nout = sizes
    blocks, block_out = output_blocks(split, nout)
    k_pad, h1_pad, h2_pad = math.ceil(latent / bk) * bk, max(16, triton.next_power_of_2(h1)), math.ceil(h2 / bh2) * bh2
    return 2 * blocks * (k_pad * h1_pad + h1_pad * h2_pad + h2_pad * block_out)


def weight_bytes_per_sample(config: tuple, sizes: tuple[int, int, int, int] = SIZES, weight_bytes: int = 2) -> float:
    """Bytes of weights and biases a sample costs in L2 reads (masked elements are not read)."""
    bm, _, _, split, _, _ = config
    latent, h1, h2, nout = sizes
    blocks, _ = output_blocks(split, nout)
    layers_1_2 = (latent * h1 + h1 * h2) * weight_bytes + (h1 + h2) * 4  # read by every output block
    layer_3 = h2 * nout * weight_bytes + nout * 4  # the blocks of a row read W3 once between them
    return (blocks * layers_1_2 + layer_3) / bm


def hbm_bytes_per_sample(case: str, sizes: tuple[int, int, int, int] = SIZES) -> int:
    """z read (fp32) unless the noise is made in the kernel, plus the image written."""
    reads_z, output = CASES[case]
    latent, _, _, nout = sizes
    return (4 * latent if reads_z else 0) + nout * (1 if output == "uint8" else 4)


def bounds(config: tuple, case: str, ceilings: dict[str, float], sizes: tuple = SIZES) -> dict[str, float]:
    """Samples/s each measured ceiling allows this configuration: ceilings holds 'tensor_core_flops',
    'hbm_bytes' and 'l2_bytes' per second (whichever were measured)."""
    need = {
        "tensor_core_flops": executed_flops_per_sample(config, sizes),
        "hbm_bytes": hbm_bytes_per_sample(case, sizes),
        "l2_bytes": weight_bytes_per_sample(config, sizes),
    }
    return {name: ceilings[name] / need[name] for name in need if ceilings.get(name)}


@contextlib.contextmanager
def only_config(autotuner, config) -> Iterator[None]:
    """Run ``autotuner``'s kernel under one configuration (no benchmarking), as the launcher calls it."""
    saved = autotuner.configs, autotuner.cache
    autotuner.configs, autotuner.cache = [config], {}
    try:
        yield
    finally:
        autotuner.configs, autotuner.cache = saved


def compiled_kernels(autotuner) -> dict[int, object]:
    """id -> kernel, for every kernel Triton has compiled (or loaded) for ``autotuner``'s function here."""
    fn = autotuner
    while not hasattr(fn, "device_caches") and hasattr(fn, "fn"):
        fn = fn.fn
    kernels = {}
    for entry in getattr(fn, "device_caches", {}).values():
        kernels.update({id(kernel): kernel for kernel in entry[0].values()})
    return kernels


def compiled_stats(kernel) -> dict[str, int | None]:
    """Registers and spills a thread, and shared memory a program, of a launched kernel (None where unknown)."""
    metadata = getattr(kernel, "metadata", None)
    return {
        "registers": getattr(kernel, "n_regs", None),
        "spills": getattr(kernel, "n_spills", None),
        "shared_bytes": getattr(metadata, "shared", None),
    }
