"""GPU benchmark: the Triton kernels against eager, torch.compile and onnxruntime, held to the issue's targets.

    python -m benchmarks.bench_gpu_kernels --out benchmarks/results/gpu-h100-YYYY-MM-DD.json [--plot gpu.png]

For each precision and batch size, on the bundled generator (or --model), every path is first
checked against eager fp32 (``gankit.perf.bench.gate``; on its first 65,536 samples and its last
1,024), then timed with ``triton.testing.do_bench`` (CUDA events, L2 flushed between calls; median,
p20, p80):

- eager: the model in the precision's dtype, z already cast;
- compile-MODE: ``torch.compile`` of the same model (default, reduce-overhead, max-autotune), one
  static shape per batch size;
- triton-z / triton-z-uint8: the whole-generator kernel fed z (float32 or uint8 images);
- triton-seed / triton-seed-uint8: the same kernel from (seed, first index), noise made in the
  kernel, no input read;
- triton-layers: the per-layer fused Linear kernels (the backend's fallback), for comparison;
- onnxruntime-cuda: gankit's ONNX export on onnxruntime's CUDA execution provider with IOBinding
  (fp32 export; fp16 export for bf16, as gankit exports no bf16 graph). Without onnxruntime-gpu the
  row says so ("unavailable").

Roofline: useful FLOPs (``GeneratorConfig.flops_per_sample``) against a dense GEMM in the same
precision measured in this run, and against the datasheet peak when the GPU is an H100 SXM. The
autotuner's choice for the whole-generator kernel is recorded per case. Targets (H100, bf16, batch
65536): >= 3x eager, >= 1.5x the best torch.compile, >= 50% of the tensor-core roofline; batch-1
seed -> image <= 10 us. They are printed as PASS/FAIL and stored in the JSON with the environment.

A run fits a time limit: ``--paths`` picks paths (shell patterns), ``--deadline-s`` stops starting
rows once that many seconds have passed (the rest are recorded as left out), the JSON is rewritten
before and after every row (a killed run leaves what it measured, and the row it was in is marked
"started"), and ``--append`` adds to an earlier run's JSON, so one benchmark can be split over
several processes (``benchmarks/gpu_all.sh bench`` does). ``--report-only`` re-evaluates the
targets and redraws the plot of an existing JSON (no GPU needed).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.harness import environment, write_results

DATASHEET_H100_SXM = {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}  # dense FLOP/s
TARGET = {"precision": "bf16", "batch": 65536, "vs_eager": 3.0, "vs_compile": 1.5, "roofline": 0.5, "latency_s": 10e-6}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
ONNX_PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp16"}  # no TF32 switch in gankit's ORT backend
CHECK_HEAD, CHECK_TAIL = 65536, 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--model", default=None, help="generator .safetensors (default: the bundled one)")
    parser.add_argument("--precisions", default="bf16,tf32,fp32", help="comma-separated: fp32, tf32, fp16, bf16")
    parser.add_argument("--batches", default="1,256,65536,1048576", help="comma-separated batch sizes")
    parser.add_argument("--compile-modes", default=",".join(COMPILE_MODES), help="comma-separated; '' for none")
    parser.add_argument("--paths", default="*", help="comma-separated shell patterns of path names (default: all)")
    parser.add_argument("--deadline-s", type=float, default=None, help="start no row after this many seconds")
    parser.add_argument("--append", action="store_true", help="add to the results already in --out")
    parser.add_argument("--plot", type=Path, default=None, help="PNG: samples/s against batch size, per precision")
    parser.add_argument("--report-only", action="store_true", help="re-evaluate and plot --out; measure nothing")
    return parser.parse_args(argv)


def timed(fn: Callable[[], object]) -> dict[str, float]:
    from triton.testing import do_bench

    median, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    return {"median_s": median / 1e3, "p20_s": p20 / 1e3, "p80_s": p80 / 1e3}


def selected(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def onnxruntime_cuda(generator, precision: str, z: torch.Tensor) -> Callable:
    """onnxruntime's CUDA EP on gankit's export; the export and session are made on the first call.

    BackendError (the row then reads "unavailable") where the installed onnxruntime has no CUDA EP.
    """
    from gankit.errors import BackendError

    state: dict = {}

    def call() -> torch.Tensor:
        if "backend" not in state:
            import onnxruntime as ort

            from gankit.backends.onnxruntime import OnnxRuntimeBackend

            providers = ort.get_available_providers()
            if "CUDAExecutionProvider" not in providers or not torch.cuda.is_available():
                raise BackendError(
                    f"onnxruntime {ort.__version__} here has no CUDAExecutionProvider (providers: "
                    f"{', '.join(providers)}; CUDA device: {torch.cuda.is_available()}): it needs onnxruntime-gpu"
                )
            state["backend"] = OnnxRuntimeBackend(generator, precision=ONNX_PRECISION[precision], device="cuda")
        return state["backend"].generate(z)

    return call


def path_names(precision: str, compile_modes: list[str]) -> list[str]:
    """The paths ``paths`` makes for ``precision``, in the order they run: cheap first, slow compiles last."""
    names = ["eager", "triton-z", "triton-z-uint8", "triton-seed", "triton-seed-uint8", "triton-layers"]
    if precision in ONNX_PRECISION:
        names.append("onnxruntime-cuda")
    return names + [f"compile-{mode}" for mode in compile_modes]


def paths(generator, precision: str, batch: int, z: torch.Tensor, compile_modes: list[str]) -> dict[str, Callable]:
    """name -> a call that makes ``batch`` images (float32 or uint8, flat or shaped) on z's device.

    ``generator`` is left as it is. Setup that costs time (compiling, exporting) happens on a path's
    first call, not here.
    """
    from gankit.device import TORCH_DTYPES, matmul_precision
    from kernels.fused_linear import fused_linear
    from kernels.generator import generator_forward, pack_generator

    dtype = TORCH_DTYPES[precision]
    tf32 = precision == "tf32"
    model = copy.deepcopy(generator).to(z.device, dtype).eval()
    z_cast = z.to(dtype)

    def torch_call(module: Callable) -> Callable:
        def call() -> torch.Tensor:
            with torch.inference_mode(), matmul_precision(precision):
                return module(z_cast)

        return call

    layers, config = generator.layers, generator.config
    weights, biases = [x.weight for x in layers], [x.bias for x in layers]
    packed = pack_generator(weights, biases, config.hidden_slopes, dtype, z.device, config.output_activation)
    per_layer = [  # W as the (out, in) view of a contiguous W.T: the kernel's faster layout
        (x.weight.detach().to(z.device, dtype).t().contiguous().t(), x.bias.detach().to(z.device, torch.float32))
        for x in layers
    ]
    acts = [("leaky_relu", slope) for slope in config.hidden_slopes] + [(config.output_activation, 0.0)]

    def triton_layers() -> torch.Tensor:
        h = z_cast
        for (weight, bias), (act, slope) in zip(per_layer, acts):
            h = fused_linear(h, weight, bias, act, slope, allow_tf32=tf32)
        return h

    calls: dict[str, Callable] = {"eager": torch_call(model)}
    calls["triton-z"] = lambda: generator_forward(packed, z=z, allow_tf32=tf32)
    calls["triton-z-uint8"] = lambda: generator_forward(packed, z=z, output="uint8", allow_tf32=tf32)
    calls["triton-seed"] = lambda: generator_forward(packed, count=batch, seed=1, start=0, allow_tf32=tf32)
    calls["triton-seed-uint8"] = lambda: generator_forward(
        packed, count=batch, seed=1, start=0, output="uint8", allow_tf32=tf32
    )
    calls["triton-layers"] = triton_layers
    if precision in ONNX_PRECISION:
        calls["onnxruntime-cuda"] = onnxruntime_cuda(generator, precision, z)
    for mode in compile_modes:  # each mode compiles its own copy of the model
        compiled = torch.compile(copy.deepcopy(model), mode=mode, dynamic=False, fullgraph=True)
        calls[f"compile-{mode}"] = torch_call(compiled)
    return calls


def checked_ranges(batch: int) -> list[tuple[int, int]]:
    """(first, count) of the samples each path is checked on: all, or the first 65,536 and the last 1,024."""
    if batch <= CHECK_HEAD + CHECK_TAIL:
        return [(0, batch)]
    return [(0, CHECK_HEAD), (batch - CHECK_TAIL, CHECK_TAIL)]


def check(images: torch.Tensor, expected: torch.Tensor, precision: str) -> tuple[float, str | None]:
    """(max |Δ| against eager fp32, why it is wrong or None), by ``gankit bench``'s gate
    (``gankit.perf.bench.gate``); uint8 paths in grey levels scaled back to [-1, 1] units, one level of
    rounding forgiven."""
    from gankit.perf.bench import gate

    images = images.reshape(expected.shape)
    diff = (images.float() / 127.5 - 1.0 - expected).abs() if images.dtype == torch.uint8 else None
    if diff is not None:
        diff = (diff - 1 / 127.5).clamp(min=0)  # one grey level of rounding
    else:
        diff = (images.float() - expected).abs()
    return diff.max().item(), gate(diff, precision)


def measure(row: dict, call: Callable, expected: torch.Tensor, rows: torch.Tensor, config, ceilings) -> None:
    """Check one path against eager fp32 (``expected``: the images of sample indices ``rows``), then time it
    and hold it to the roofline; fills ``row``."""
    from gankit.perf.ceilings import roofline
    from kernels.generator import generator_kernel

    begin = time.perf_counter()
    images = call()
    row["first_call_s"] = time.perf_counter() - begin  # compiling, autotuning, exporting
    if row["path"].startswith("triton-") and row["path"] != "triton-layers":
        row["autotuned"] = str(generator_kernel.best_config)
    flat = images.reshape(row["batch"], -1)
    row["max_abs_error"], problem = check(flat[rows.to(flat.device)], expected, row["precision"])
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


def load_report(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"results": [], "ceilings": {}}


def save_report(report: dict, path: Path) -> None:
    report["targets"] = evaluate_targets(report)
    write_results(path, report)


def put_row(report: dict, row: dict) -> None:
    """Add ``row``, replacing an earlier row of the same path, precision and batch (a rerun wins)."""
    key = (row["path"], row["precision"], row["batch"])
    report["results"] = [r for r in report["results"] if (r["path"], r["precision"], r["batch"]) != key]
    report["results"].append(row)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def run(args: argparse.Namespace, report: dict) -> None:
    """Measure every selected (precision, batch, path) into ``report``, saving it to ``args.out`` as it goes."""
    from gankit.checkpoint import load_generator
    from gankit.errors import GankitError
    from gankit.noise import noise
    from gankit.perf.ceilings import measure_ceilings

    begin = time.monotonic()
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4096)
    device = torch.device("cuda")
    batches = [int(b) for b in args.batches.split(",") if b]
    compile_modes = [m for m in args.compile_modes.split(",") if m]
    patterns = [p for p in args.paths.split(",") if p]
    reference = load_generator(args.model, device=device)
    config = reference.config
    env = environment(device)
    datasheet = DATASHEET_H100_SXM if "H100" in env.get("gpu", "") else {}
    report.update(environment=env, config=json.loads(config.to_json()), flops_per_sample=config.flops_per_sample)

    def out_of_time() -> bool:
        return args.deadline_s is not None and time.monotonic() - begin > args.deadline_s

    spent = f"left out: the run's time budget ({args.deadline_s or 0:.0f} s) was spent"

    for precision in [p for p in args.precisions.split(",") if p]:
        names = [name for name in path_names(precision, compile_modes) if selected(name, patterns)]
        ceilings = None
        for batch in batches:
            if out_of_time():
                for name in names:
                    put_row(report, {"path": name, "precision": precision, "batch": batch, "status": spent})
                continue
            if ceilings is None:
                ceilings = measure_ceilings(device, precision)
                report["ceilings"][precision] = asdict(ceilings)
                print(f"{precision}: {ceilings.flops_per_second / 1e12:.0f} TFLOP/s ({ceilings.gemm})", flush=True)
            ranges = checked_ranges(batch)
            rows = torch.cat([torch.arange(first, first + count) for first, count in ranges])
            z = noise(7, 0, batch, config.latent_dim, device=device)
            seeded = torch.cat([noise(1, first, count, config.latent_dim, device=device) for first, count in ranges])
            with torch.inference_mode():  # eager fp32 (IEEE) images of the checked samples of z and of seed 1
                expected = reference(z[rows.to(device)]).reshape(len(rows), -1).float()
                expected_seeded = reference(seeded).reshape(len(rows), -1).float()
            calls = paths(load_generator(args.model), precision, batch, z, compile_modes)
            for name in names:
                row = {"path": name, "precision": precision, "batch": batch}
                if out_of_time():
                    put_row(report, {**row, "status": spent})
                    continue
                row["status"] = "started: not finished (the process was stopped while measuring it)"
                put_row(report, row)
                save_report(report, args.out)
                try:
                    reference_images = expected_seeded if name.startswith("triton-seed") else expected
                    measure(row, calls[name], reference_images, rows, config, ceilings)
                except GankitError as exc:
                    row["status"] = f"unavailable: {first_line(exc)}"
                except Exception as exc:  # a path that fails is reported; the others go on
                    row["status"] = f"error: {type(exc).__name__}: {first_line(exc)}"
                if name == "onnxruntime-cuda" and precision != ONNX_PRECISION[precision]:
                    row["note"] = f"{ONNX_PRECISION[precision]} export: gankit exports no {precision} ONNX graph"
                if precision in datasheet and "flops_per_s" in row:
                    row["fraction_of_datasheet_peak"] = row["flops_per_s"] / datasheet[precision]
                save_report(report, args.out)
                print(format_row(row), flush=True)
            del calls, z, expected, expected_seeded
            torch.cuda.empty_cache()
        if 1 in batches and selected("triton-seed-uint8", patterns) and not out_of_time():
            latency = batch1_latency(load_generator(args.model), precision)
            report.setdefault("batch1_seed_to_image", {})[precision] = latency
            print(f"{precision} batch-1 seed -> image: {latency}", flush=True)
        save_report(report, args.out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = load_report(args.out) if args.append or args.report_only else {"results": [], "ceilings": {}}
    if args.report_only:
        if not args.out.exists():
            sys.exit(f"--report-only: {args.out} does not exist")
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_gpu_kernels.py needs a CUDA GPU and found none; on a CPU use `gankit bench`.")
        if os.environ.get("TRITON_INTERPRET") == "1":
            sys.exit("TRITON_INTERPRET=1 is set: the kernels would run on the CPU interpreter. Unset it and run again.")
        run(args, report)
    save_report(report, args.out)
    for line in report["targets"]:
        print(line["verdict"], line["what"], flush=True)
    if args.plot is not None:
        print(f"wrote {args.plot}" if plot(report, args.plot) else "nothing was timed: no plot")
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


def plot(report: dict, path: Path) -> bool:
    """samples/s against batch size, a panel a precision, a line a path, with the float-output roofline:
    ``gankit bench``'s own plot, fed this script's rows. False (and no file) when nothing was timed."""
    from gankit.perf.bench import BenchReport, Measurement
    from gankit.perf.ceilings import Ceilings
    from gankit.perf.report import plot_report

    measurements = []
    for row in (r for r in report["results"] if "samples_per_s" in r):
        output = "uint8" if row["path"].endswith("uint8") else "float"
        roof = row["samples_per_s"] / row["fraction_of_roofline"] if output == "float" else None
        measurement = Measurement(row["path"], row["precision"], row["batch"], output, row["status"])
        measurement.samples_per_second, measurement.roofline_samples_per_second = row["samples_per_s"], roof
        measurements.append(measurement)
    ceilings = {p: Ceilings(**c) for p, c in report["ceilings"].items() if any(m.precision == p for m in measurements)}
    if not ceilings:
        return False
    env, config = report.get("environment", {}), report.get("config", {})
    plot_report(BenchReport(env, config, report.get("flops_per_sample", 0), ceilings, measurements), path)
    return True


if __name__ == "__main__":
    main()
