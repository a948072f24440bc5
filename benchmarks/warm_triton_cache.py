"""Compile the Triton kernels' configurations in parallel processes before a benchmark autotunes them.

    python -m benchmarks.warm_triton_cache --sets autotune,layers --precisions bf16,tf32,fp32 --batches 1,256
    python -m benchmarks.warm_triton_cache --sets autotune,sweep,latency --precisions bf16 --batches 256

Triton's autotuner compiles its configurations one after another in the process that launches the
kernel, about 2 s each for the whole-generator kernel: the benchmark's 4 kernel variants x 9
configurations x 2 batch classes x 3 precisions would spend minutes there. This script launches
each (kernel, configuration, precision, variant, batch) once in a pool of worker processes, each
under a one-configuration autotuner, so the compiled kernels land in Triton's on-disk cache
(``~/.triton/cache`` or ``$TRITON_CACHE_DIR``), where the benchmark's autotuning loads them.

A launch compiles the binary another launch finds only if every argument specializes the same way:
Triton keys on integers equal to 1 or divisible by 16 and on pointer alignment, so the workers call
the same launchers (``generator_forward``, ``fused_linear``) on the same generator, and a batch of
256 stands for every batch divisible by 16 (65,536 and 1,048,576 included), 1 for itself.

Sets: autotune (``kernels.generator.GPU_CONFIGS``, the 4 variants z/seed x float/uint8), layers
(``kernels.fused_linear.GPU_CONFIGS``, the 3 layers), sweep (``generator_configs.SWEEP`` and the
autotune space, z -> float, batch 256: the tuning script's sweep; it compiles its best few for
seed -> uint8 itself) and latency (``generator_configs.LATENCY``,
seed -> uint8, batch 1). Prints one line a failed launch and a count; writes no file.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from benchmarks import generator_configs as space
from benchmarks.bench_gpu_kernels import first_line

VARIANTS = [(reads_z, output) for reads_z in (True, False) for output in ("float", "uint8")]
_STATE: dict = {}  # a worker's generator, packed once per precision


def tasks(sets: list[str], precisions: list[str], batches: list[int]) -> list[tuple]:
    """("generator", precision, reads_z, output, batch, config) and ("layers", precision, batch, config index)."""
    from kernels.fused_linear import GPU_CONFIGS as LAYER_CONFIGS

    found: list[tuple] = []
    for precision in precisions:
        if "autotune" in sets:
            found += [
                ("generator", precision, *v, b, c) for c in space.autotune_space() for v in VARIANTS for b in batches
            ]
        if "layers" in sets:
            found += [("layers", precision, b, i) for i in range(len(LAYER_CONFIGS)) for b in batches]
        if "sweep" in sets:
            points = space.autotune_space() + [p for p in space.SWEEP if p not in space.autotune_space()]
            found += [("generator", precision, *space.CASES["z-float"], 256, p) for p in points]
        if "latency" in sets:
            found += [("generator", precision, *space.CASES["seed-uint8"], 1, p) for p in space.LATENCY]
    return list(dict.fromkeys(found))


def _prepared(precision: str) -> dict:
    import torch

    from gankit.checkpoint import load_generator
    from gankit.device import TORCH_DTYPES
    from kernels.generator import pack_generator

    if precision not in _STATE:
        generator = load_generator()
        dtype, device = TORCH_DTYPES[precision], torch.device("cuda")
        weights, biases = [x.weight for x in generator.layers], [x.bias for x in generator.layers]
        _STATE[precision] = {
            "packed": pack_generator(weights, biases, generator.config.slope, dtype, device),
            "layers": [
                (w.detach().to(device, dtype).t().contiguous().t(), b.detach().to(device))
                for w, b in zip(weights, biases)
            ],
            "latent": generator.config.latent_dim,
            "slope": generator.config.slope,
            "dtype": dtype,
        }
    return _STATE[precision]


def warm(task: tuple) -> tuple[tuple, str]:
    """Launch one task under its one configuration; (task, "ok" or the error's first line)."""
    import torch

    from kernels.fused_linear import GPU_CONFIGS as LAYER_CONFIGS
    from kernels.fused_linear import fused_linear, fused_linear_kernel
    from kernels.generator import generator_forward, generator_kernel

    try:
        kind, precision = task[0], task[1]
        state, tf32 = _prepared(precision), precision == "tf32"
        if kind == "generator":
            _, _, reads_z, output, batch, config = task
            with space.only_config(generator_kernel, space.make_config(config)):
                if reads_z:
                    z = torch.randn(batch, state["latent"], device="cuda")
                    generator_forward(state["packed"], z=z, output=output, allow_tf32=tf32)
                else:
                    generator_forward(state["packed"], count=batch, seed=1, output=output, allow_tf32=tf32)
        else:
            _, _, batch, index = task
            x = torch.randn(batch, state["latent"], device="cuda").to(state["dtype"])
            with space.only_config(fused_linear_kernel, LAYER_CONFIGS[index]):
                for i, (weight, bias) in enumerate(state["layers"]):
                    act = "tanh" if i == len(state["layers"]) - 1 else "leaky_relu"
                    x = fused_linear(x, weight, bias, act, state["slope"], allow_tf32=tf32)
        torch.cuda.synchronize()
        return task, "ok"
    except Exception as exc:  # a configuration that does not fit is the autotuner's to skip; report it
        return task, f"{type(exc).__name__}: {first_line(exc)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="autotune,layers", help="comma-separated: autotune, layers, sweep, latency")
    parser.add_argument("--precisions", default="bf16", help="comma-separated: fp32, tf32, fp16, bf16")
    parser.add_argument("--batches", default="1,256", help="batch sizes (autotune and layers sets)")
    parser.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--deadline-s", type=float, default=None, help="start no task after this many seconds")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("warm_triton_cache.py needs a CUDA GPU and found none.")
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("TRITON_INTERPRET=1 is set: nothing would be compiled. Unset it and run again.")
    batches = [int(b) for b in args.batches.split(",") if b]
    todo = tasks(args.sets.split(","), args.precisions.split(","), batches)
    begin, done, failed = time.monotonic(), 0, 0
    print(f"warming {len(todo)} launches in {args.workers} processes", flush=True)
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(warm, task) for task in todo}
        while pending:
            finished, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    task, status = future.result()
                except Exception as exc:  # a worker died: the pool is broken, and the rest end the same way
                    task, status = "?", f"{type(exc).__name__}: {first_line(exc)}"
                done += 1
                if status != "ok":
                    failed += 1
                    print(f"failed: {task}: {status}", flush=True)
            if args.deadline_s is not None and time.monotonic() - begin > args.deadline_s:
                print(f"deadline: {len(pending)} launches left out", flush=True)
                for future in pending:
                    future.cancel()
                break
    print(f"warmed {done - failed} of {len(todo)} launches ({failed} failed) in {time.monotonic() - begin:.0f} s")


if __name__ == "__main__":
    main()
