"""``gankit bench``: backends x batch sizes x precisions, timed properly, checked first, held to a roofline.

- Timing: on a GPU ``triton.testing.do_bench`` (median of CUDA-event timings after warm-up); on a CPU
  repeated wall-clock runs after warm-up, median and p90. Inputs rotate over several noise batches
  so that no cache holds the one input being timed.
- Correctness first: each backend's output is compared with eager fp32 on the same z before it is
  timed; a backend over its precision's tolerance is reported as failed and not timed.
- Roofline: FLOPs and bytes per sample from the generator config; the device's ceilings (a large
  GEMM in the benchmark's dtype, a large copy) are measured in the same run, so "% of roofline" is
  honest on any machine.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gankit.backends import Backend, backend_class, create_backend
from gankit.checkpoint import PRETRAINED, atomic_path, load_generator
from gankit.config import GeneratorConfig
from gankit.cpu import cpu_info
from gankit.errors import BackendError, GankitError
from gankit.noise import noise
from gankit.version import __version__

# Max |image - eager fp32 image| allowed before timing (images are in [-1, 1]).
# Max |Δ| over a whole batch (up to ~10^9 values): bf16 keeps 8 mantissa bits, so its worst pixel of a
# 4096-sample batch is ~0.08 off (10 grey levels) with nothing wrong; int8: see gankit.parity.
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 3e-2, "bf16": 0.15, "int8": 0.6}
TORCH_DTYPE = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ROTATING_INPUTS = 4
BACKEND_COLORS = {
    "eager": "tab:blue",
    "compile": "tab:orange",
    "onnxruntime": "tab:green",
    "triton": "tab:red",
    "openvino": "tab:purple",
}


@dataclass
class Ceilings:
    """What the device can do, measured in this run: dense matmul FLOP/s and copy bytes/s."""

    flops_per_second: float
    bytes_per_second: float
    gemm: str
    copy: str


@dataclass
class Measurement:
    backend: str
    precision: str
    batch: int
    output: str
    status: str
    max_abs_error: float | None = None
    median_seconds: float | None = None
    p90_seconds: float | None = None
    samples_per_second: float | None = None
    speedup_vs_eager: float | None = None
    roofline_samples_per_second: float | None = None
    fraction_of_roofline: float | None = None
    note: str = ""


@dataclass
class BenchReport:
    environment: dict[str, Any]
    config: dict[str, Any]
    flops_per_sample: int
    ceilings: dict[str, Ceilings] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)


# ----------------------------------------------------------------------------- environment


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions, threads, commit and date: everything a result needs to be read later."""
    cpu = cpu_info()
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "gankit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device_type": device.type,
        "cpu": cpu.model,
        "cpu_flags": cpu.relevant_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    for module in ("triton", "onnxruntime", "onnx", "numpy", "openvino"):
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            env["driver"] = smi.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


# ----------------------------------------------------------------------------- timing


def time_cpu(fn: Callable[[], object], min_seconds: float = 0.3, min_repeats: int = 5) -> list[float]:
    """Wall-clock seconds of repeated calls after two warm-up calls, for at least ``min_seconds``."""
    fn()
    fn()
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - begin < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) >= 10_000:
            break
    return times


def time_gpu(fn: Callable[[], object]) -> list[float]:
    """do_bench quantiles (median, p90) in seconds: CUDA events, L2 flushed between runs, after warm-up."""
    from triton.testing import do_bench

    median_ms, p90_ms = do_bench(fn, quantiles=[0.5, 0.9], warmup=50, rep=300)
    return [median_ms / 1e3, p90_ms / 1e3]


def _summarise(times: list[float], on_gpu: bool) -> tuple[float, float]:
    if on_gpu:
        return times[0], times[1]
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _gemm_operands(device: torch.device, precision: str, size: int) -> tuple[Callable[[], object], str]:
    """The matmul that bounds ``precision`` on ``device`` (on a CPU: int8 via VNNI, fp16 runs as fp32)."""
    if precision == "int8":
        a = torch.randint(-127, 128, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-127, 128, (size, size), dtype=torch.int8, device=device)
        return (lambda: torch._int_mm(a, b)), "int8"
    dtype = TORCH_DTYPE[precision]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # no fp16 arithmetic on CPUs: fp16 models run through casts at the fp32 rate
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return (lambda: a @ b), str(dtype).replace("torch.", "")


def measure_ceilings(device: torch.device, precision: str) -> Ceilings:
    """A large GEMM in the benchmark's dtype and a large copy, timed like everything else."""
    on_gpu = device.type == "cuda"
    size = 8192 if on_gpu else 4096
    gemm_call, dtype_name = _gemm_operands(device, precision, size)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        gemm = _summarise(time_gpu(gemm_call) if on_gpu else time_cpu(gemm_call), on_gpu)[0]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    count = (1 << 28) if on_gpu else (1 << 25)  # bytes: 256 MiB on a GPU, 32 MiB on a CPU (past L2/L3)
    src = torch.empty(count, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy = _summarise(time_gpu(lambda: dst.copy_(src)) if on_gpu else time_cpu(lambda: dst.copy_(src)), on_gpu)[0]
    return Ceilings(
        flops_per_second=2 * size**3 / gemm,
        bytes_per_second=2 * count / copy,  # read + write
        gemm=f"{size}x{size}x{size} {dtype_name} matmul" + (" (tf32)" if precision == "tf32" else ""),
        copy=f"{count >> 20} MiB device copy (read + write)",
    )


def bytes_per_sample(config: GeneratorConfig, batch: int, precision: str, output: str) -> float:
    """Unavoidable memory traffic a sample: its z in, its image out, and its share of the weights."""
    weight_bytes = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1}[precision]
    image_bytes = 1 if output == "uint8" else 4
    return 4 * config.latent_dim + image_bytes * config.image_size + weight_bytes * config.parameter_count / batch


def roofline(config: GeneratorConfig, ceilings: Ceilings, batch: int, precision: str, output: str) -> float:
    """Samples/s bound: min(compute ceiling / FLOPs a sample, copy ceiling / bytes a sample)."""
    compute = ceilings.flops_per_second / config.flops_per_sample
    memory = ceilings.bytes_per_second / bytes_per_sample(config, batch, precision, output)
    return min(compute, memory)


# ----------------------------------------------------------------------------- running


def _build(name: str, model_path: Path, precision: str, device: str, batch: int, compile_mode: str) -> Backend:
    if name == "onnxruntime":
        return create_backend(name, load_generator(model_path), precision=precision, device=device)
    options: dict[str, Any] = {"device": device}
    if name == "compile":
        options.update(mode=compile_mode, batch_size=batch)
    return create_backend(name, load_generator(model_path), precision=precision, **options)


def run_bench(
    model: str | Path | None = None,
    backends: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    precisions: list[str] | None = None,
    output: str = "float",
    device: str = "auto",
    compile_mode: str = "default",
    log: Callable[[str], None] = print,
) -> BenchReport:
    """Measure every (backend, precision, batch); see the module docstring for how."""
    from gankit.train import resolve_device

    model_path = Path(model) if model else PRETRAINED
    torch_device = resolve_device(device)
    on_gpu = torch_device.type == "cuda"
    if not backends:
        backends = ["eager", "compile", "triton"] if on_gpu else ["eager", "compile", "onnxruntime"]
        if not on_gpu and backend_class("openvino").unavailable_reason() is None:
            backends.append("openvino")
    batch_sizes = batch_sizes or ([1, 256, 65536, 1_048_576] if on_gpu else [1, 64, 4096])
    precisions = precisions or (["fp32", "tf32", "bf16"] if on_gpu else ["fp32"])
    precisions = sorted(precisions, key=lambda p: p != "fp32")  # fp32 first: it is the "vs eager" baseline
    reference = load_generator(model_path).to(torch_device)
    config = reference.config
    report = BenchReport(environment(torch_device), json.loads(config.to_json()), config.flops_per_sample)
    eager_fp32: dict[int, float] = {}  # the baseline of "vs eager": eager fp32 at the same batch size

    for precision in precisions:
        ceilings = measure_ceilings(torch_device, precision)
        report.ceilings[precision] = ceilings
        log(
            f"{precision}: ceilings {ceilings.flops_per_second / 1e9:,.0f} GFLOP/s ({ceilings.gemm}), "
            f"{ceilings.bytes_per_second / 1e9:,.1f} GB/s ({ceilings.copy})"
        )
        for batch in batch_sizes:
            inputs = [noise(100 + i, 0, batch, config.latent_dim, device=torch_device) for i in range(ROTATING_INPUTS)]
            with torch.inference_mode():
                expected = reference(inputs[0].to(torch_device)).float()
            for name in backends:
                result = _measure_one(
                    name, model_path, precision, torch_device, batch, output, compile_mode, inputs, expected, on_gpu
                )
                if result.samples_per_second is not None:
                    result.roofline_samples_per_second = roofline(config, ceilings, batch, precision, output)
                    result.fraction_of_roofline = result.samples_per_second / result.roofline_samples_per_second
                    if name == "eager" and (precision == "fp32" or batch not in eager_fp32):
                        eager_fp32[batch] = result.samples_per_second
                    if batch in eager_fp32:
                        result.speedup_vs_eager = result.samples_per_second / eager_fp32[batch]
                report.results.append(result)
                log(format_row(result))
    return report


def _measure_one(
    name: str,
    model_path: Path,
    precision: str,
    device: torch.device,
    batch: int,
    output: str,
    compile_mode: str,
    inputs: list[torch.Tensor],
    expected: torch.Tensor,
    on_gpu: bool,
) -> Measurement:
    result = Measurement(name, precision, batch, output, status="ok")
    try:
        cls = backend_class(name)
        if precision not in cls.precisions:
            result.status, result.note = "skipped", f"{name} has no {precision} path"
            return result
        backend = _build(name, model_path, precision, str(device), batch, compile_mode)
        images = backend.generate(inputs[0], output="float").float().to(device)
    except GankitError as exc:
        result.status, result.note = "unavailable", str(exc)
        return result
    except Exception as exc:  # a backend that crashes is reported, and the other measurements go on
        result.status, result.note = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return result
    error = (images.reshape(expected.shape) - expected).abs().max().item()
    result.max_abs_error = error
    if not error <= TOLERANCE[precision]:
        result.status, result.note = "wrong", f"max |diff| vs eager fp32 {error:.3g} > tolerance {TOLERANCE[precision]}"
        return result
    turn = {"i": 0}

    def call() -> object:
        turn["i"] = (turn["i"] + 1) % len(inputs)
        return backend.generate(inputs[turn["i"]], output=output)

    time.sleep(0.3)  # let the previous backend's spinning worker threads (onnxruntime) fall asleep
    times = time_gpu(call) if on_gpu else time_cpu(call)
    result.median_seconds, result.p90_seconds = _summarise(times, on_gpu)
    result.samples_per_second = batch / result.median_seconds
    return result


# ----------------------------------------------------------------------------- output


HEADER = (
    f"{'backend':<12} {'prec':<5} {'batch':>8} {'samples/s':>13} {'p50':>10} {'p90':>10} "
    f"{'vs eager':>8} {'roofline':>8} {'max|err|':>9}  status   (vs eager = vs eager fp32, same batch)"
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def format_row(m: Measurement) -> str:
    rate = f"{m.samples_per_second:,.0f}" if m.samples_per_second else "-"
    speed = f"{m.speedup_vs_eager:.2f}x" if m.speedup_vs_eager else "-"
    roof = f"{100 * m.fraction_of_roofline:.1f}%" if m.fraction_of_roofline else "-"
    err = f"{m.max_abs_error:.1e}" if m.max_abs_error is not None else "-"
    status = m.status + (f" ({m.note})" if m.note and m.status != "ok" else "")
    return (
        f"{m.backend:<12} {m.precision:<5} {m.batch:>8} {rate:>13} {_duration(m.median_seconds):>10} "
        f"{_duration(m.p90_seconds):>10} {speed:>8} {roof:>8} {err:>9}  {status}"
    )


def format_table(report: BenchReport) -> str:
    """One line a measurement; backends without the precision are left out (they stay in the JSON)."""
    shown = [m for m in report.results if m.status != "skipped"]
    skipped = sorted({f"{m.backend} {m.precision}" for m in report.results if m.status == "skipped"})
    footer = [f"(no such path, not timed: {', '.join(skipped)})"] if skipped else []
    return "\n".join([HEADER, *(format_row(m) for m in shown), *footer])


def markdown_table(report: BenchReport) -> str:
    rows = [
        "| backend | precision | batch | samples/s | p50 | vs eager fp32 | % of roofline | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report.results:
        if m.samples_per_second is None:
            continue
        rows.append(
            f"| {m.backend} | {m.precision} | {m.batch} | {m.samples_per_second:,.0f} | {_duration(m.median_seconds)} "
            f"| {m.speedup_vs_eager or 0:.2f}x | {100 * (m.fraction_of_roofline or 0):.1f}% | {m.max_abs_error:.1e} |"
        )
    return "\n".join(rows)


def write_report(report: BenchReport, stem: Path) -> tuple[Path, Path]:
    """``stem``.json (everything) and ``stem``.png (samples/s vs batch, one line a backend, roofline)."""
    json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(asdict(report), indent=2))
    plot_report(report, png_path)
    return json_path, png_path


def plot_report(report: BenchReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precisions = list(report.ceilings)
    fig, axes = plt.subplots(1, len(precisions), figsize=(6 * len(precisions), 4.5), dpi=100, squeeze=False)
    device = report.environment.get("gpu") or report.environment.get("cpu")
    for ax, precision in zip(axes[0], precisions):
        rows = [m for m in report.results if m.precision == precision and m.samples_per_second]
        for name in dict.fromkeys(m.backend for m in rows):
            points = sorted((m.batch, m.samples_per_second) for m in rows if m.backend == name)
            ax.plot(*zip(*points), marker="o", label=name, color=BACKEND_COLORS.get(name))
        roof = sorted({(m.batch, m.roofline_samples_per_second) for m in rows if m.roofline_samples_per_second})
        if roof:
            ax.plot(*zip(*roof), linestyle="--", color="black", label="roofline (measured ceilings)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples / s")
        ax.set_title(f"{precision} on {device}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def parse_list(text: str, kind: type = str) -> list:
    try:
        return [kind(item) for item in text.split(",") if item]
    except ValueError as exc:
        raise BackendError(f"cannot read {text!r} as a comma-separated list of {kind.__name__}") from exc
