"""What the device can do, measured in the same run as the model, and the roofline it puts over every row.

A ceiling must be an upper bound, or "% of roofline" lies. So:
- Compute: the best of the large GEMMs measured in this run, in the row's precision: torch's matmul, and
  on a CPU onnxruntime's and OpenVINO's own GEMMs too (as a user gets each: default session / default
  ``compile_model`` but for the precision hint). A runtime whose GEMM beats torch's (an AMD EPYC's fp32)
  then cannot read above 100 %. Beside it, the peak of the CPU's vector units at its clock (an upper bound
  on paper, ``peak_flops``), so the measured ceiling can be judged too.
- Memory: the larger of a DRAM-sized copy and a copy of a cache-sized buffer (the weights stay in cache
  at small batches, so DRAM bandwidth alone would not bound those rows).
The roofline of a row is min(compute ceiling / FLOPs a sample, memory ceiling / bytes a sample).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gankit.config import GeneratorConfig
from gankit.cpu import CpuInfo, cpu_info
from gankit.device import TORCH_DTYPES
from gankit.timing import settle, summarise, time_cpu, time_gpu

CPU_GEMM_SIZE = 2048  # 17 GFLOP a call: within a few % of the peak GEMM rate, and a second or two per library
GPU_GEMM_SIZE = 8192
CACHE_COPY_BYTES = 1 << 21  # 2 MiB: the size of the generator's fp32 weights, which stay in L2/L3
DRAM_COPY_BYTES = {"cpu": 1 << 25, "cuda": 1 << 28}  # 32 MiB / 256 MiB: past the caches


@dataclass
class Ceilings:
    """Ceilings of one precision: the best measured GEMM FLOP/s and copy bytes/s, with what each came from."""

    flops_per_second: float
    bytes_per_second: float
    gemm: str
    copy: str
    gemms: dict[str, float] = field(default_factory=dict)  # every GEMM measured: label -> FLOP/s
    copies: dict[str, float] = field(default_factory=dict)  # every copy measured: label -> bytes/s
    peak_flops_per_second: float | None = None  # vector units x clock x cores (CPU), on paper
    peak: str = ""

    def describe(self, precision: str) -> str:
        """One line: the ceilings that bound ``precision``'s rows, every GEMM measured, and the paper peak."""
        gemms = ", ".join(f"{label} {rate / 1e9:,.0f}" for label, rate in self.gemms.items())
        peak = ""
        if self.peak_flops_per_second:
            peak = f"; peak on paper {self.peak_flops_per_second / 1e9:,.0f} GFLOP/s ({self.peak})"
            if self.flops_per_second > self.peak_flops_per_second:
                # /proc/cpuinfo gives the nominal clock (a VM hides turbo): a GEMM above the paper peak says the
                # cores ran faster than that clock; the measured GEMM stays the ceiling
                peak += ": below the measured GEMM, so the cores ran above the reported clock"
        return (
            f"{precision}: {self.flops_per_second / 1e9:,.0f} GFLOP/s ({self.gemm}; GFLOP/s measured: {gemms}){peak}; "
            f"{self.bytes_per_second / 1e9:,.1f} GB/s ({self.copy})"
        )


def _flops_per_cycle(info: CpuInfo, precision: str) -> tuple[float, str]:
    """Per-core FLOPs (int8: ops) a cycle of the widest unit the flags show, assuming two pipes a core."""
    flags = info.flags
    fma_lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fp32 = 2 * 2 * fma_lanes  # two FMA pipes, 2 FLOPs a lane
    if precision == "bf16":
        if "amx_bf16" in flags:
            return 1024.0, "AMX bf16 (1,024 FLOPs/cycle/core)"
        if "avx512_bf16" in flags:
            return 2.0 * fp32, "AVX-512 BF16 dot products (2x fp32's FMA rate)"
    if precision == "int8":
        if "amx_int8" in flags:
            return 2048.0, "AMX int8 (2,048 ops/cycle/core)"
        if {"avx512_vnni", "avx_vnni"} & flags:
            width = 64 if "avx512_vnni" in flags else 32
            return 2.0 * 2 * width, f"VNNI ({width} int8 MACs an instruction, two pipes)"
    return float(fp32), f"{'AVX-512' if fma_lanes == 16 else 'AVX2' if fma_lanes == 8 else 'SSE'} fp32 FMA, two pipes"


def _clock_hz(cpuinfo: Path = Path("/proc/cpuinfo")) -> float | None:
    """The highest 'cpu MHz' /proc/cpuinfo reports (a VM reports its nominal clock), in Hz."""
    try:
        values = [float(line.split(":")[1]) for line in cpuinfo.read_text().splitlines() if line.startswith("cpu MHz")]
    except (OSError, ValueError, IndexError):
        return None
    return max(values) * 1e6 if values else None


def peak_flops(
    precision: str, threads: int, info: CpuInfo | None = None, clock_hz: float | None = None
) -> tuple[float | None, str]:
    """(FLOP/s, how) on paper for ``threads`` cores: vector-unit FLOPs a cycle x clock x cores; (None, why)."""
    info = info or cpu_info()
    clock_hz = clock_hz if clock_hz is not None else _clock_hz()
    if clock_hz is None:
        return None, "clock unknown"
    per_cycle, how = _flops_per_cycle(info, precision)
    return per_cycle * clock_hz * threads, f"{how} x {clock_hz / 1e9:.2f} GHz (reported) x {threads} cores"


def _torch_gemm(device: torch.device, precision: str, size: int) -> tuple[Callable[[], object], str]:
    """torch's matmul that bounds ``precision`` on ``device`` (on a CPU fp16 runs as fp32, int8 via _int_mm)."""
    if precision == "int8":
        a = torch.randint(-127, 128, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-127, 128, (size, size), dtype=torch.int8, device=device)
        return (lambda: torch._int_mm(a, b)), "int8"
    dtype = TORCH_DTYPES[precision]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # no fp16 arithmetic on CPUs: fp16 models run through casts at the fp32 rate
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return (lambda: a @ b), str(dtype).replace("torch.", "")


def _matmul_model(path: Path, size: int, precision: str) -> None:
    """An ONNX graph of one (size x size) @ (size x size) matmul: MatMul in fp32, MatMulInteger (u8 x s8) in int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "int8":
        weights = numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "b")
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weights = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "b")
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(model, str(path))


def _runtime_gemms(precision: str, size: int, folder: Path) -> dict[str, Callable[[], object]]:
    """onnxruntime's and OpenVINO's own GEMMs for ``precision`` on the CPU, each as a user gets it."""
    calls: dict[str, Callable[[], object]] = {}
    graph_precision = "int8" if precision == "int8" else "fp32"
    path = folder / f"gemm-{graph_precision}.onnx"
    _matmul_model(path, size, graph_precision)
    a = (
        np.random.default_rng(1).integers(0, 256, (size, size), dtype=np.uint8)
        if graph_precision == "int8"
        else np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    )
    if precision in ("fp32", "fp16", "int8"):
        from gankit.runtime import onnxruntime_session

        session = onnxruntime_session(path)
        calls[f"onnxruntime {graph_precision}"] = lambda: session.run(None, {"a": a})
    if precision in ("fp32", "bf16"):
        from gankit.backends.openvino import OpenVinoBackend
        from gankit.runtime import compile_openvino

        if OpenVinoBackend.unavailable_reason() is not None or precision == "bf16" and not cpu_info().has_bf16:
            return calls
        request = compile_openvino(Path(path), precision, {}).create_infer_request()
        calls[f"openvino {precision}"] = lambda: request.infer({0: a}, share_inputs=True)
    return calls


def _copy_rate(device: torch.device, count: int) -> float:
    src = torch.empty(count, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    on_gpu = device.type == "cuda"
    seconds = summarise(time_gpu(lambda: dst.copy_(src)) if on_gpu else time_cpu(lambda: dst.copy_(src)), on_gpu)[0]
    return 2 * count / seconds  # read + write


def measure_ceilings(device: torch.device, precision: str) -> Ceilings:
    """The precision's GEMM ceilings (torch, and on a CPU onnxruntime and OpenVINO) and copy ceilings."""
    on_gpu = device.type == "cuda"
    size = GPU_GEMM_SIZE if on_gpu else CPU_GEMM_SIZE
    gemms: dict[str, float] = {}
    call, dtype_name = _torch_gemm(device, precision, size)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        seconds = summarise(time_gpu(call) if on_gpu else time_cpu(call, min_repeats=3), on_gpu)[0]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    gemms[f"torch {dtype_name}" + (" (tf32)" if precision == "tf32" else "")] = 2 * size**3 / seconds
    if not on_gpu:
        with tempfile.TemporaryDirectory(prefix="gankit-gemm-") as folder:
            for label, call in _runtime_gemms(precision, size, Path(folder)).items():
                settle()
                gemms[label] = 2 * size**3 / summarise(time_cpu(call, min_repeats=3), False)[0]
            settle()
    copies = {f"{DRAM_COPY_BYTES[device.type] >> 20} MiB copy": _copy_rate(device, DRAM_COPY_BYTES[device.type])}
    if not on_gpu:
        copies[f"{CACHE_COPY_BYTES >> 20} MiB copy (cache-resident)"] = _copy_rate(device, CACHE_COPY_BYTES)
    best_gemm = max(gemms, key=gemms.get)
    best_copy = max(copies, key=copies.get)
    ceilings = Ceilings(
        flops_per_second=gemms[best_gemm],
        bytes_per_second=copies[best_copy],
        gemm=f"{size}x{size}x{size} {best_gemm} (best of {len(gemms)})",
        copy=f"{best_copy} (read + write, best of {len(copies)})",
        gemms=gemms,
        copies=copies,
    )
    if not on_gpu:
        ceilings.peak_flops_per_second, ceilings.peak = peak_flops(precision, torch.get_num_threads())
    return ceilings


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
