"""GPU benchmark: the Triton kernels against eager and torch.compile, held to the issue's targets.

    python benchmarks/bench_gpu_kernels.py --out benchmarks/results/gpu-h100-YYYY-MM-DD.json

For each precision and batch size, on the bundled generator (or --model), every path is first
checked against eager fp32 (``gankit.perf.bench.TOLERANCE``), then timed with ``triton.testing.do_bench``
(CUDA events, L2 flushed between calls; median, p20, p80):

- eager: the model in the precision's dtype, z already cast;
- compile-MODE: ``torch.compile`` of the same model, one static shape per batch size;
- triton-z / triton-z-uint8: the whole-generator kernel fed z (float32 or uint8 images);
- triton-seed / triton-seed-uint8: the same kernel from (seed, first index), noise made in the
  kernel, no input read;
- triton-layers: the per-layer fused Linear kernels (the backend's fallback), for comparison.

Roofline: useful FLOPs (``GeneratorConfig.flops_per_sample``) against a dense GEMM in the same
precision measured in this run, and against the datasheet peak when the GPU is an H100 SXM. The
autotuner's choice for the whole-generator kernel is recorded per case. Targets (H100, bf16, batch
65536): >= 3x eager, >= 1.5x the best torch.compile, >= 50% of the tensor-core roofline; batch-1
seed -> image <= 10 us. They are printed as PASS/FAIL and stored in the JSON with the environment.

max-autotune compiles take a minute or more a shape: keep a run under ~10 minutes by splitting it
(``--precisions bf16`` first, then ``--precisions fp32,tf32 --compile-modes default``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

DATASHEET_H100_SXM = {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}  # dense FLOP/s
TARGET = {"precision": "bf16", "batch": 65536, "vs_eager": 3.0, "vs_compile": 1.5, "roofline": 0.5, "latency_s": 10e-6}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--model", default=None, help="generator .safetensors (default: the bundled one)")
    parser.add_argument("--precisions", default="bf16,tf32,fp32", help="comma-separated: fp32, tf32, fp16, bf16")
    parser.add_argument("--batches", default="1,4096,65536,1048576", help="comma-separated batch sizes")
    parser.add_argument("--compile-modes", default="default,max-autotune", help="comma-separated; '' for none")
    return parser.parse_args()


def timed(fn: Callable[[], object]) -> dict[str, float]:
    from triton.testing import do_bench

    median, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    return {"median_s": median / 1e3, "p20_s": p20 / 1e3, "p80_s": p80 / 1e3}


def paths(generator, precision: str, batch: int, z: torch.Tensor, compile_modes: list[str]) -> dict[str, Callable]:
    """name -> a call that makes ``batch`` images (float32 or uint8, flat or shaped) on the GPU."""
    from gankit.device import TORCH_DTYPES, matmul_precision
    from kernels.fused_linear import fused_linear
    from kernels.generator import generator_forward, pack_generator

    dtype = TORCH_DTYPES[precision]
    tf32 = precision == "tf32"
    model = generator.to(z.device, dtype).eval()
    z_cast = z.to(dtype)

    def torch_call(module: Callable) -> Callable:
        def call() -> torch.Tensor:
            with torch.inference_mode(), matmul_precision(precision):
                return module(z_cast)

        return call

    layers, config = generator.layers, generator.config
    weights, biases = [x.weight for x in layers], [x.bias for x in layers]
    packed = pack_generator(weights, biases, config.hidden_slopes, dtype, z.device, config.output_activation)
    per_layer = [(x.weight.detach().t().contiguous().t(), x.bias.detach().float()) for x in layers]
    acts = [("leaky_relu", slope) for slope in config.hidden_slopes] + [(config.output_activation, 0.0)]

    def triton_layers() -> torch.Tensor:
        h = z_cast
        for (weight, bias), (act, slope) in zip(per_layer, acts):
            h = fused_linear(h, weight, bias, act, slope, allow_tf32=tf32)
        return h

    calls: dict[str, Callable] = {"eager": torch_call(model)}
    for mode in compile_modes:
        calls[f"compile-{mode}"] = torch_call(torch.compile(model, mode=mode, dynamic=False, fullgraph=True))
    calls["triton-z"] = lambda: generator_forward(packed, z=z, allow_tf32=tf32)
    calls["triton-z-uint8"] = lambda: generator_forward(packed, z=z, output="uint8", allow_tf32=tf32)
    calls["triton-seed"] = lambda: generator_forward(packed, count=batch, seed=1, start=0, allow_tf32=tf32)
    calls["triton-seed-uint8"] = lambda: generator_forward(
        packed, count=batch, seed=1, start=0, output="uint8", allow_tf32=tf32
    )
    calls["triton-layers"] = triton_layers
    return calls


def check(images: torch.Tensor, expected: torch.Tensor, precision: str) -> tuple[float, str | None]:
    """Max |Δ| against eager fp32 (uint8 paths: in grey levels, scaled back to [-1, 1] units)."""
    from gankit.perf.bench import TOLERANCE

    images = images.reshape(expected.shape)
    if images.dtype == torch.uint8:
        images = images.float() / 127.5 - 1.0
        tolerance = TOLERANCE[precision] + 1 / 127.5  # plus one grey level of rounding
    else:
        tolerance = TOLERANCE[precision]
    error = (images.float() - expected).abs().max().item()
    return error, None if error <= tolerance else f"max |Δ| {error:.3g} > tolerance {tolerance:.3g}"


def measure(row: dict, call: Callable, expected: torch.Tensor, config, ceilings) -> None:
    """Check one path against eager fp32, then time it and hold it to the roofline; fills ``row``."""
    from gankit.perf.ceilings import roofline
    from kernels.generator import generator_kernel

    images = call()
    if row["path"].startswith("triton-") and row["path"] != "triton-layers":
        row["autotuned"] = str(generator_kernel.best_config)
    row["max_abs_error"], problem = check(images, expected, row["precision"])
    row["status"] = problem or "ok"
    if problem is not None:
        return
    row.update(timed(call))
    output = "uint8" if row["path"].endswith("uint8") else "float"
    row["samples_per_s"] = row["batch"] / row["median_s"]
    row["flops_per_s"] = row["samples_per_s"] * config.flops_per_sample
    bound = roofline(config, ceilings, row["batch"], row["precision"], output)
    row["fraction_of_roofline"] = row["samples_per_s"] / bound


def batch1_latency(generator, precision: str) -> dict[str, float]:
    """seed -> one image through the backend (uint8), and the bare kernel replayed from a CUDA graph."""
    from triton.testing import do_bench_cudagraph

    from gankit.backends.triton import TritonBackend
    from kernels.generator import generator_forward

    backend = TritonBackend(generator, precision=precision, device="cuda")
    backend.generate_seeded(1, 0, 1, output="uint8")  # autotune before anything is captured
    walls = []
    for i in range(2000):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        backend.generate_seeded(1, i, 1, output="uint8")
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - begin)
    walls.sort()
    out = torch.empty(1, generator.config.image_size, dtype=torch.uint8, device="cuda")
    graph_ms = do_bench_cudagraph(lambda: generator_forward(backend.packed, count=1, seed=1, output="uint8", out=out))
    return {
        "do_bench_median_s": timed(lambda: backend.generate_seeded(1, 0, 1, output="uint8"))["median_s"],
        "synchronous_wall_median_s": walls[len(walls) // 2],
        "cuda_graph_replay_s": graph_ms / 1e3,
    }


def main() -> None:
    args = parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_kernels.py needs a CUDA GPU and found none; on a CPU use `gankit bench`.")
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("TRITON_INTERPRET=1 is set: the kernels would run on the CPU interpreter. Unset it and run again.")
    from gankit.checkpoint import load_generator
    from gankit.io import atomic_path
    from gankit.noise import noise
    from gankit.perf.ceilings import measure_ceilings
    from gankit.perf.environment import environment

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    device = torch.device("cuda")
    precisions = [p for p in args.precisions.split(",") if p]
    batches = [int(b) for b in args.batches.split(",") if b]
    compile_modes = [m for m in args.compile_modes.split(",") if m]
    reference = load_generator(args.model, device=device)
    config = reference.config
    env = environment(device)
    datasheet = DATASHEET_H100_SXM if "H100" in env.get("gpu", "") else {}
    report: dict = {"environment": env, "config": json.loads(config.to_json()), "ceilings": {}, "results": []}
    report["flops_per_sample"] = config.flops_per_sample

    for precision in precisions:
        ceilings = measure_ceilings(device, precision)
        report["ceilings"][precision] = asdict(ceilings)
        print(f"{precision}: {ceilings.flops_per_second / 1e12:.0f} TFLOP/s ({ceilings.gemm})", flush=True)
        for batch in batches:
            z = noise(7, 0, batch, config.latent_dim, device=device)
            with torch.inference_mode():  # eager fp32 (IEEE) images of z, and of samples 0 .. batch-1 of seed 1
                expected = reference(z).reshape(batch, -1).float()
                expected_seeded = reference(noise(1, 0, batch, config.latent_dim, device=device)).reshape(batch, -1)
            for name, call in paths(load_generator(args.model), precision, batch, z, compile_modes).items():
                row = {"path": name, "precision": precision, "batch": batch}
                try:
                    reference_images = expected_seeded if name.startswith("triton-seed") else expected
                    measure(row, call, reference_images, config, ceilings)
                except Exception as exc:  # a path that fails is reported; the others go on
                    row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                if precision in datasheet and "flops_per_s" in row:
                    row["fraction_of_datasheet_peak"] = row["flops_per_s"] / datasheet[precision]
                report["results"].append(row)
                print(format_row(row), flush=True)
            torch.cuda.empty_cache()
        report.setdefault("batch1_seed_to_image", {})[precision] = batch1_latency(load_generator(args.model), precision)
        print(f"{precision} batch-1 seed -> image: {report['batch1_seed_to_image'][precision]}", flush=True)

    report["targets"] = evaluate_targets(report)
    for line in report["targets"]:
        print(line["verdict"], line["what"], flush=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def format_row(row: dict) -> str:
    if "median_s" not in row:
        return f"{row['path']:<24} {row['precision']:<5} {row['batch']:>8}  {row['status']}"
    return (
        f"{row['path']:<24} {row['precision']:<5} {row['batch']:>8} {row['samples_per_s']:>14,.0f}/s "
        f"{row['median_s'] * 1e6:>10.1f} us {100 * row['fraction_of_roofline']:>6.1f}% roofline  "
        f"max|Δ| {row['max_abs_error']:.1e}  {row.get('autotuned', '')}"
    )


def evaluate_targets(report: dict) -> list[dict]:
    """The issue's targets, where this run measured what they need."""
    rows = {(r["path"], r["precision"], r["batch"]): r for r in report["results"] if "median_s" in r}
    precision, batch = TARGET["precision"], TARGET["batch"]
    verdicts = []

    def add(what: str, value: float | None, goal: float, higher_is_better: bool = True) -> None:
        if value is None:
            verdicts.append({"what": what, "value": None, "goal": goal, "verdict": "NOT MEASURED"})
            return
        ok = value >= goal if higher_is_better else value <= goal
        verdicts.append({"what": what, "value": value, "goal": goal, "verdict": "PASS" if ok else "FAIL"})

    eager = rows.get(("eager", precision, batch))
    compiled = [r for (path, p, b), r in rows.items() if path.startswith("compile-") and (p, b) == (precision, batch)]
    best_compile = max(compiled, key=lambda r: r["samples_per_s"]) if compiled else None
    for path in ("triton-z", "triton-seed-uint8"):
        kernel = rows.get((path, precision, batch))
        case = f"{path} {precision} batch {batch}"
        rate = kernel["samples_per_s"] if kernel else None
        add(f"{case}: x eager", rate / eager["samples_per_s"] if rate and eager else None, TARGET["vs_eager"])
        vs_compile = rate / best_compile["samples_per_s"] if rate and best_compile else None
        add(f"{case}: x best torch.compile", vs_compile, TARGET["vs_compile"])
        add(f"{case}: fraction of roofline", kernel["fraction_of_roofline"] if kernel else None, TARGET["roofline"])
    latency = report.get("batch1_seed_to_image", {}).get(precision, {}).get("do_bench_median_s")
    add(f"batch-1 seed -> image ({precision}, do_bench median), seconds", latency, TARGET["latency_s"], False)
    return verdicts


if __name__ == "__main__":
    main()
