"""Compile the whole-generator kernel's configurations for sm_90 without a GPU: registers, stack, shared memory.

    python -m benchmarks.compile_generator_offline --out offline.json [--set sweep|latency|autotune|grid]
        [--case z-float|seed-uint8] [--batch 65536]

The candidate configurations beyond the kernel's own (``compile_kernels_sm90.py`` records every
variant the launchers can launch). Triton's wheel carries ptxas and cuobjdump, so a configuration
compiles for Hopper (sm_90) on any machine: this is how ``generator_configs.SWEEP`` and ``LATENCY``
were chosen (at most 64 bytes of stack a thread, shared memory within the H100's 227 KB a block).
The signature is the one the launcher produces for the bundled generator in bf16 (pointers 16-byte
aligned; the batch divisible by 16, or 1), so the numbers are those of the kernel a GPU run
compiles with the same Triton; the GPU has Triton 3.6, so treat numbers made with another version
as a lead. ``--set grid`` compiles the whole candidate grid (slow: about 2 s a point).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

from benchmarks import generator_configs as space
from benchmarks.compile_kernels_sm90 import BLOCK_SHARED_LIMIT as SHARED_LIMIT
from benchmarks.compile_kernels_sm90 import resources, target

MAX_STACK = 64  # bytes a thread: what GPU_CONFIGS were held to


def grid() -> list[tuple[int, int, int, int, int, int]]:
    """The candidate grid, less the points whose output block is narrower than a dot or whose live register
    tensors clearly cannot fit a thread's 255 registers (h1, the layer-3 accumulator and one h2 slice)."""
    points = []
    for bm, bk, bh2, split, warps, stages in itertools.product(
        (16, 32, 64, 128, 256), (32, 64), (32, 64, 128), (1, 2, 4, 8, 16), (4, 8, 16), (1, 2, 3)
    ):
        block_out = 1024 // split
        live = max(bm * (256 + bk), bm * (block_out + 128) + 1.5 * bm * bh2) / (32 * warps)
        if block_out >= 16 and 16 <= live <= 192:  # 16: the narrowest dot
            points.append((bm, bk, bh2, split, warps, stages))
    return points


def signature(fn, case: str, batch: int, constexprs: dict) -> tuple[dict, dict]:
    """(signature, attributes) of a launch of the bundled generator in bf16, as Triton's launcher makes them
    (adds the batch to ``constexprs`` when it is 1)."""
    reads_z, output = space.CASES[case]
    out_type = "*u8" if output == "uint8" else "*fp32"
    types, attrs = {}, {}
    for index, param in enumerate(fn.params):
        name = param.name
        if param.is_constexpr:
            types[name] = "constexpr"
        elif name.endswith("_ptr"):
            # labels_ptr and cb_ptr: the launcher passes ``out`` in their place for an unconditional generator
            stands_in = name in ("out_ptr", "labels_ptr", "cb_ptr")
            types[name] = out_type if stands_in else "*bf16" if name.startswith("w") else "*fp32"
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name.startswith("slope"):
            types[name] = "fp32"
        elif name in ("B", "B_BUCKET") and batch == 1:  # Triton specializes an int argument equal to 1
            types[name], constexprs[name] = "constexpr", 1
        else:
            types[name] = "i32"
            if name in ("B", "B_BUCKET") and batch % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in constexprs]
    if missing:
        raise SystemExit(f"the kernel has constexpr parameters this script does not know: {missing}")
    return types, attrs


def compile_one(config: tuple, case: str, batch: int) -> dict:
    import triton
    from triton.compiler import ASTSource

    from kernels.fused_linear import TANH
    from kernels.generator import generator_kernel

    fn = generator_kernel.fn
    latent, h1, h2, nout = space.SIZES
    bm, bk, bh2, split, warps, stages = config
    reads_z, output = space.CASES[case]
    pads = {"H1P": max(16, triton.next_power_of_2(h1)), "NOUTP": max(16, triton.next_power_of_2(nout))}
    sizes = {"LATENT": latent, "H1": h1, "H2": h2, "NOUT": nout, **pads}
    blocks = {"BLOCK_M": bm, "BLOCK_K": bk, "BLOCK_H2": bh2, "OUT_SPLIT": split}
    # DOT_PRECISION: the launcher passes "tf32" for bf16 weights (it only matters for fp32 operands)
    constexprs = {**sizes, "NOISE": not reads_z, "UINT8": output == "uint8", "DOT_PRECISION": "tf32", **blocks}
    constexprs["OUTPUT_ACT"] = TANH  # the bundled generator's output
    constexprs["CONDITIONAL"] = False  # the bundled (unconditional) generator: the label gather is compiled out
    types, attrs = signature(fn, case, batch, constexprs)
    paths = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    source = ASTSource(fn, types, constexprs=paths, attrs=attrs)
    begin = time.perf_counter()
    kernel = triton.compile(source, target=target(), options={"num_warps": warps, "num_stages": stages})
    row = {"label": space.label(config), "config": list(config), "compile_s": time.perf_counter() - begin}
    row.update(resources(kernel.asm["cubin"]), shared_bytes=kernel.metadata.shared, wgmma="wgmma" in kernel.asm["ptx"])
    row["fits"] = row["stack_bytes"] <= MAX_STACK and row["shared_bytes"] <= SHARED_LIMIT
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", choices=("sweep", "latency", "autotune", "grid"), default="sweep")
    parser.add_argument("--case", choices=tuple(space.CASES), default="z-float")
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--labels", default="", help="comma-separated labels (M64-K32-H64-s4-w8-st2): only these")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("TRITON_INTERPRET=1 is set: the kernel would be the interpreter's; unset it to compile for sm_90.")
    sets = {"sweep": space.SWEEP, "latency": space.LATENCY, "autotune": space.autotune_space(), "grid": grid()}
    configs = [c for c in sets[args.set] if not args.labels or space.label(c) in args.labels.split(",")]
    rows = []
    for config in configs:
        try:
            row = compile_one(config, args.case, args.batch)
        except Exception as exc:  # a point that does not compile is a result too
            row = {"label": space.label(config), "config": list(config), "error": f"{type(exc).__name__}: {exc}"[:300]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.out.write_text(json.dumps({"case": args.case, "batch": args.batch, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
