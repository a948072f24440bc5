"""Compile every kernel variant the launchers can launch for sm_90 (H100/H200) without a GPU, and record its resources.

    python -m benchmarks.compile_kernels_sm90 --out record.json [--jobs 1] [--no-sass] [--resume]
    python -m benchmarks.compile_kernels_sm90 --keys keys.json          # cache keys only, nothing compiled
    python -m benchmarks.compile_kernels_sm90 --out rows.json --only ID,ID   # these variants (``variant_id``)

A variant is (kernel, precision, case, configuration): the whole-generator kernel
(``kernels.generator``) for fp32 (IEEE products), tf32 and bf16, float32 or uint8 output, z read from
memory or made in the kernel, unconditional or class-conditional, under each of ``GPU_CONFIGS``;
the fused linear kernel (``kernels.fused_linear``) for the bundled generator's three layers (the first
also class-conditional) in the same precisions under each of its ``GPU_CONFIGS``. The signature is the
one the launcher makes at batch 65,536 (pointers 16-byte aligned, integers divisible by 16 marked so,
integers equal to 1 made constants), so the binary and Triton's cache key are those a GPU run with the
same Triton compiles.

Each row: registers a thread, stack (local memory) bytes a thread, spill stores and loads (``STL`` and
``LDL`` in the SASS: Triton kernels keep nothing else in local memory), shared memory a block, the
occupancy that allows on an H100 SM, the SASS instruction mix (tensor-core ``HGMMA``/``HMMA`` against
the rest) and ``key``: the hash ``triton.compile`` files the kernel under (it changes with the kernel
source, the configuration, the signature and Triton). ``cache_key`` recomputes it without compiling:
``tests/test_kernel_sm90.py`` compiles only the variants whose key a committed record lacks.

Triton's wheel ships ptxas and cuobjdump, so this runs on any machine; run it with TRITON_INTERPRET
unset (under the interpreter the kernels are different functions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.harness import write_results

SIZES = (100, 256, 512, 784)  # latent, H1, H2, NOUT of the bundled generator (GeneratorConfig defaults)
BATCH = 65536  # divisible by 16: the launcher marks B (and B_BUCKET) so, as for any batch divisible by 16
CLASSES = 10
PRECISIONS = ("bf16", "tf32", "fp32")  # compiled in this order: the most wanted first
LAYERS = ((SIZES[0], SIZES[1]), (SIZES[1], SIZES[2]), (SIZES[2], SIZES[3]))  # (K, N) of the three Linears

# H100 SM (sm_90): what bounds how many blocks run on one SM at once (CUDA occupancy calculator, cc 9.0)
SM_REGISTERS = 65536
SM_SHARED = 228 * 1024  # a block may use at most 227 KB of it; the driver reserves 1 KB a block
BLOCK_SHARED_LIMIT = 227 * 1024
SHARED_RESERVED_PER_BLOCK = 1024
SM_THREADS = 2048
SM_BLOCKS = 32
REGISTER_UNIT = 256  # registers are allocated a warp at a time, in units of 256
MAX_REGISTERS = 255

MMA_OPS = ("HGMMA", "HMMA")  # warpgroup (wgmma) and warp-level (mma.sync) tensor-core instructions
COUNTED_OPS = MMA_OPS + ("FFMA", "FMUL", "FADD", "MUFU", "LDG", "STG", "LDS", "STS", "LDSM", "STL", "LDL")


def variant_id(variant: dict) -> str:
    """A readable unique name, e.g. generator-bf16-z-float-uncond-M64-K32-H32-s2-w8-st2 or
    linear-bf16-L1c-M64-N128-K64-w4-st3 (layer 1, conditional)."""
    c = variant["config"]
    if variant["kernel"] == "generator":
        bm, bk, bh2, split, warps, stages = c
        source = "z" if variant["reads_z"] else "seed"
        cond = "cond" if variant["conditional"] else "uncond"
        return (
            f"generator-{variant['precision']}-{source}-{variant['output']}-{cond}-"
            f"M{bm}-K{bk}-H{bh2}-s{split}-w{warps}-st{stages}"
        )
    bm, bn, bk, warps, stages = c
    layer = f"L{variant['layer']}{'c' if variant['conditional'] else ''}"
    return f"linear-{variant['precision']}-{layer}-M{bm}-N{bn}-K{bk}-w{warps}-st{stages}"


def variants() -> list[dict]:
    """Every (kernel, precision, case, configuration) the launchers can launch for the bundled generator sizes,
    the most wanted first (bf16, then tf32, then fp32; in each, the generator kernel, then the layers)."""
    from kernels import fused_linear, generator
    from kernels.fused_linear import config_tuple

    found = []
    for precision in PRECISIONS:
        for config in generator.GPU_CONFIGS:
            for conditional in (False, True):
                for reads_z in (True, False):
                    for output in ("float", "uint8"):
                        found.append(
                            {
                                "kernel": "generator",
                                "precision": precision,
                                "reads_z": reads_z,
                                "output": output,
                                "conditional": conditional,
                                "config": list(config_tuple(config, generator.CONFIG_KEYS)),
                            }
                        )
        for config in fused_linear.GPU_CONFIGS:
            for layer, conditional in ((1, False), (1, True), (2, False), (3, False)):
                found.append(
                    {
                        "kernel": "fused_linear",
                        "precision": precision,
                        "layer": layer,
                        "conditional": conditional,
                        "config": list(config_tuple(config, fused_linear.CONFIG_KEYS)),
                    }
                )
    for variant in found:
        variant["id"] = variant_id(variant)
    return found


def traits(variant: dict) -> set[str]:
    """The kinds of launch a variant stands for, as the kernels' NOT_FOR tables and launch kinds name them."""
    kinds = {variant["precision"], "conditional" if variant["conditional"] else "unconditional"}
    if variant["kernel"] == "generator":
        kinds.add("uint8" if variant["output"] == "uint8" else "float")
        kinds.add("z" if variant["reads_z"] else "noise")
    else:
        kinds.add(f"K{LAYERS[variant['layer'] - 1][0]}")
    return kinds


def derive_not_for(rows: list[dict], kernel: str) -> dict[tuple[int, ...], tuple[str, ...]]:
    """A kernel's NOT_FOR table from compile rows: for each configuration, the fewest and most general entries (a
    kind, or kinds joined by "+") that rule out every variant that failed (did not compile, spills, or exceeds
    shared memory) and no variant that fits. Candidates are tried from one kind up, in sorted order."""
    import itertools

    table = {}
    by_config: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["kernel"] == kernel:
            by_config.setdefault(tuple(row["config"]), []).append(row)
    for config, group in sorted(by_config.items()):
        failed = [traits(r) for r in group if not r.get("fits")]
        fitting = [traits(r) for r in group if r.get("fits")]
        if not failed:
            continue
        kinds = sorted(set().union(*failed))
        entries, uncovered = [], list(failed)
        for size in range(1, len(kinds) + 1):
            for candidate in itertools.combinations(kinds, size):
                need = set(candidate)
                if any(need <= t for t in fitting) or not any(need <= t for t in uncovered):
                    continue
                entries.append("+".join(candidate))
                uncovered = [t for t in uncovered if not need <= t]
        table[config] = tuple(entries)
    return table


def reuse(keys: dict[str, str], rows: list[dict], compile_anyway: set[str] = frozenset()) -> tuple[list[str], dict]:
    """(ids to compile, {id: recorded row}) for variants whose current cache keys are ``keys``: a recorded row is
    reused when it was made under the variant's current key (the same kernel source, configuration, signature
    and Triton), except for the ids in ``compile_anyway``."""
    by_key = {row["key"]: row for row in rows}
    reused = {
        vid: by_key[key]
        for vid, key in keys.items()
        if key in by_key and by_key[key]["id"] == vid and vid not in compile_anyway
    }
    return [vid for vid in keys if vid not in reused], reused


def canaries(rows: list[dict]) -> list[str]:
    """One fitting variant a (kernel, precision), the first the record holds: compiled on every check and compared
    with the record, so a record that no longer describes what this Triton compiles is caught."""
    chosen = {}
    for row in rows:
        if row.get("fits"):
            chosen.setdefault((row["kernel"], row["precision"]), row["id"])
    return list(chosen.values())


def _pointer(precision: str) -> str:
    return "*bf16" if precision == "bf16" else "*fp32"


def _int_argument(value: int, types: dict, attrs: dict, constexprs: dict, name: str, index: int) -> None:
    """How Triton's launcher specializes an int argument: 1 becomes a constant, a multiple of 16 is marked."""
    if value == 1:
        types[name], constexprs[name] = "constexpr", 1
        return
    types[name] = "i32"
    if value % 16 == 0:
        attrs[(index,)] = [["tt.divisibility", 16]]


def source_and_options(variant: dict):
    """(ASTSource, options) of the variant, as the launcher's specialization makes them."""
    from triton.compiler import ASTSource

    from kernels.fused_linear import ACTIVATIONS, fused_linear_kernel
    from kernels.generator import generator_kernel

    precision = variant["precision"]
    weights = _pointer(precision)
    dot = "ieee" if precision == "fp32" else "tf32"
    latent, h1, h2, nout = SIZES
    types, attrs, constexprs = {}, {}, {}
    if variant["kernel"] == "generator":
        fn = generator_kernel.fn
        bm, bk, bh2, split, warps, stages = variant["config"]
        out = "*u8" if variant["output"] == "uint8" else "*fp32"
        conditional = variant["conditional"]
        pointers = {
            "z_ptr": "*fp32" if variant["reads_z"] else out,  # ``out`` stands in for z under in-kernel noise
            "w1_ptr": weights,
            "b1_ptr": "*fp32",
            "w2_ptr": weights,
            "b2_ptr": "*fp32",
            "w3_ptr": weights,
            "b3_ptr": "*fp32",
            "labels_ptr": "*i64" if conditional else out,
            "cb_ptr": "*fp32" if conditional else out,
            "out_ptr": out,
        }
        ints = {"B": BATCH, "B_BUCKET": BATCH}
        unspecialized = {"seed": "i32", "start": "i32", "slope1": "fp32", "slope2": "fp32"}
        constexprs.update(
            LATENT=latent,
            H1=h1,
            H2=h2,
            NOUT=nout,
            H1P=h1,  # 256 and 1024: already powers of two
            NOUTP=1024,
            NOISE=not variant["reads_z"],
            UINT8=variant["output"] == "uint8",
            OUTPUT_ACT=ACTIVATIONS["tanh"],
            CONDITIONAL=conditional,
            DOT_PRECISION=dot,
            BLOCK_M=bm,
            BLOCK_K=bk,
            BLOCK_H2=bh2,
            OUT_SPLIT=split,
        )
    else:
        fn = fused_linear_kernel.fn
        bm, bn, bk, warps, stages = variant["config"]
        k, n = LAYERS[variant["layer"] - 1]
        conditional = variant["conditional"]
        pointers = {
            "x_ptr": weights,
            "w_ptr": weights,
            "b_ptr": "*fp32",
            "labels_ptr": "*i64" if conditional else weights,
            "cb_ptr": "*fp32" if conditional else weights,
            "y_ptr": weights,
        }
        # x contiguous (B, K); W the .t() view of a contiguous W.T: stride_wn 1, stride_wk N; y contiguous
        ints = {"M": BATCH, "N": n, "stride_xm": k, "stride_xk": 1, "stride_wn": 1, "stride_wk": n}
        ints.update(stride_ym=n, M_BUCKET=BATCH)
        unspecialized = {"slope": "fp32"}
        act = "tanh" if variant["layer"] == 3 else "leaky_relu"
        constexprs.update(
            K=k,
            HAS_BIAS=True,
            CONDITIONAL=conditional,
            ACT=ACTIVATIONS[act],
            DOT_PRECISION=dot,
            BLOCK_M=bm,
            BLOCK_N=bn,
            BLOCK_K=bk,
        )
    for index, param in enumerate(fn.params):
        name = param.name
        if param.is_constexpr:
            types[name] = "constexpr"
        elif name in pointers:
            types[name] = pointers[name]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in ints:
            _int_argument(ints[name], types, attrs, constexprs, name, index)
        elif name in unspecialized:
            types[name] = unspecialized[name]
        else:
            raise SystemExit(f"{fn.__name__} has a parameter this script does not know: {name}")
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in constexprs]
    if missing:
        raise SystemExit(f"{fn.__name__} has constexpr parameters this script does not know: {missing}")
    paths = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    return ASTSource(fn, types, constexprs=paths, attrs=attrs), {"num_warps": warps, "num_stages": stages}


def target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", 90, 32)  # H100 and H200: compute capability 9.0, 32-thread warps


def cache_key(variant: dict) -> str:
    """The hash ``triton.compile`` files this variant under, computed as it does, without compiling."""
    import hashlib

    from triton.compiler.compiler import make_backend
    from triton.runtime.cache import get_cache_key
    from triton.runtime.jit import get_cache_invalidating_env_vars

    source, options = source_and_options(variant)
    backend = make_backend(target())
    parsed = backend.parse_options(dict(options, **source.parse_options()))
    key = get_cache_key(source, backend, parsed, env_vars=get_cache_invalidating_env_vars())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def occupancy(registers: int, shared: int, warps: int) -> dict:
    """Blocks and warps a block shape keeps resident on an H100 SM, and what binds."""
    threads = 32 * warps
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    limits = {
        "threads": SM_THREADS // threads,
        "blocks": SM_BLOCKS,
        "registers": SM_REGISTERS // (per_warp * warps) if registers else SM_BLOCKS,
        "shared": SM_SHARED // (shared + SHARED_RESERVED_PER_BLOCK) if shared <= BLOCK_SHARED_LIMIT else 0,
    }
    blocks = min(limits.values())
    return {
        "blocks_per_sm": blocks,
        "warps_per_sm": blocks * warps,
        "occupancy": blocks * warps / (SM_THREADS // 32),
        "occupancy_limited_by": min(limits, key=limits.get),
    }


# an instruction line of Triton's SASS dump ("--:-:1:-:1\tLDC R1, ...") or of cuobjdump's ("/*0010*/ LDC R1, ...")
SASS_LINE = re.compile(
    r"\s*(?:[\w-]+:[\w-]+:[\w-]+:[\w-]+:\d+\s+|/\*[0-9a-f]{4,}\*/\s+)(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)"
)


def instruction_mix(sass: str) -> dict:
    """Static counts of SASS opcodes (predicates and modifiers stripped): the tensor-core MMAs and the rest."""
    ops = Counter()
    for line in sass.splitlines():
        match = SASS_LINE.match(line)
        if match:
            ops[match.group(1).split(".")[0]] += 1
    total = sum(ops.values())
    mma = sum(ops[o] for o in MMA_OPS)
    return {
        "sass_instructions": total,
        "mma_instructions": mma,
        "mma_fraction": mma / total if total else 0.0,
        "ops": {o: ops[o] for o in COUNTED_OPS if ops[o]},
    }


def resources(cubin: bytes) -> dict[str, int]:
    """REG and STACK a thread, as cuobjdump reports them."""
    import subprocess
    import tempfile

    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as handle:
        handle.write(cubin)
    try:
        tool = knobs.nvidia.cuobjdump.path
        text = subprocess.run([tool, "--dump-resource-usage", handle.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(handle.name)
    line = next(line for line in text.splitlines() if "REG:" in line)
    fields = dict(item.split(":", 1) for item in line.split())
    return {"registers": int(fields["REG"]), "stack_bytes": int(fields["STACK"])}


def compile_variant(variant: dict, sass: bool = True) -> dict:
    """The variant's row: what it uses, whether it fits, its instruction mix; ``error`` when it does not compile."""
    import triton

    row = {k: variant[k] for k in variant}
    begin = time.perf_counter()
    try:
        source, options = source_and_options(variant)
        kernel = triton.compile(source, target=target(), options=options)
    except Exception as exc:  # a variant that does not compile is a result too
        row.update(error=f"{type(exc).__name__}: {exc}"[:400], fits=False, key=cache_key(variant))
        return row
    row["compile_s"] = round(time.perf_counter() - begin, 2)
    row["key"] = kernel.hash
    row.update(resources(kernel.asm["cubin"]))
    row["shared_bytes"] = kernel.metadata.shared
    row["wgmma_in_ptx"] = "wgmma" in kernel.asm["ptx"]
    warps = variant["config"][-2]
    row.update(occupancy(row["registers"], row["shared_bytes"], warps))
    if sass:
        mix = instruction_mix(kernel.asm["sass"])
        row.update(mix, spill_stores=mix["ops"].get("STL", 0), spill_loads=mix["ops"].get("LDL", 0))
    row["spills"] = row["stack_bytes"] > 0 or row.get("spill_stores", 0) > 0
    row["fits"] = not row["spills"] and row["shared_bytes"] <= BLOCK_SHARED_LIMIT
    return row


def environment() -> dict:
    import platform
    import subprocess

    import triton
    from triton import knobs

    ptxas = subprocess.run([knobs.nvidia.ptxas.path, "--version"], capture_output=True, text=True).stdout
    return {
        "triton": triton.__version__,
        "ptxas": ptxas.strip().splitlines()[-1] if ptxas.strip() else "unknown",
        "target": "cuda sm_90, warp size 32",
        "python": platform.python_version(),
        "batch": BATCH,
        "sizes": list(SIZES),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def _compile_in_worker(args: tuple[dict, bool]) -> dict:
    return compile_variant(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the record (JSON): environment and one row a variant")
    parser.add_argument("--keys", type=Path, help="write {variant id: cache key} of every variant; compile nothing")
    parser.add_argument("--only", default="", help="comma-separated variant ids: only these")
    parser.add_argument("--jobs", type=int, default=1, help="compile in this many processes")
    parser.add_argument("--no-sass", action="store_true", help="skip the SASS instruction mix (faster)")
    parser.add_argument(
        "--resume", action="store_true", help="keep --out's rows whose key is current; compile the rest"
    )
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("TRITON_INTERPRET=1 is set: the kernels would be the interpreter's; unset it to compile for sm_90.")
    if not (args.out or args.keys):
        parser.error("give --out or --keys")
    chosen = [v for v in variants() if not args.only or v["id"] in args.only.split(",")]
    if args.only and len(chosen) != len(set(args.only.split(","))):
        known = {v["id"] for v in chosen}
        sys.exit(f"unknown variant ids: {sorted(set(args.only.split(',')) - known)}")
    if args.keys:
        write_results(args.keys, {"triton": environment()["triton"], "keys": {v["id"]: cache_key(v) for v in chosen}})
        if not args.out:
            return
    record = {"kind": "sm90-offline-compile", "environment": environment(), "rows": []}
    if args.resume and args.out.exists():
        todo, reused = reuse({v["id"]: cache_key(v) for v in chosen}, json.loads(args.out.read_text())["rows"])
        record["rows"] = list(reused.values())
        chosen = [v for v in chosen if v["id"] in todo]
        print(f"resume: {len(reused)} rows kept, {len(chosen)} to compile", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done, row in enumerate(pool.map(_compile_in_worker, [(v, not args.no_sass) for v in chosen]), 1):
            record["rows"].append(row)
            write_results(args.out, record)
            summary = {k: row.get(k) for k in ("registers", "stack_bytes", "shared_bytes", "mma_instructions", "fits")}
            print(f"[{done}/{len(chosen)}] {row['id']} {row.get('error') or summary}", flush=True)
    write_results(args.out, record)


if __name__ == "__main__":
    main()
