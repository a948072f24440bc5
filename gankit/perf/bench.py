"""``gankit bench``: backends x batch sizes x precisions, timed properly, checked first, held to a roofline.

- Timing (``gankit.timing``): on a GPU ``triton.testing.do_bench`` (median of CUDA-event timings
  after warm-up); on a CPU repeated wall-clock runs after warm-up, median and p90. Inputs rotate over
  several noise batches so that no cache holds the one input being timed.
- Correctness first: each backend's output is compared with eager fp32 on the same z before it is
  timed; a backend over its precision's tolerance is reported as failed and not timed. The model is any
  file ``gankit.models.load_model`` reads; an ONNX file runs on the ONNX backends only, checked against
  onnxruntime running the file as it is (its own precision), which is then the "eager" baseline.
- Roofline (``gankit.perf.ceilings``): FLOPs and bytes per sample from the generator config against the
  best GEMM and copy measured in the same run, so "% of roofline" is honest on any machine; a row
  above 100 % would mean a ceiling is not one, and is reported as a warning.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.backends import PRECISIONS, Backend, backend_class, create_backend
from gankit.backends.base import COMPILE_MODES
from gankit.backends.resolve import ONNX_BACKENDS
from gankit.checkpoint import model_path
from gankit.device import resolve_device
from gankit.errors import BackendError, GankitError
from gankit.model import Generator
from gankit.models import ImportOptions, load_model
from gankit.noise import noise
from gankit.perf import BACKENDS, BATCH_SIZES, BENCH_PRECISIONS
from gankit.perf.ceilings import Ceilings, measure_ceilings, roofline
from gankit.perf.environment import environment
from gankit.timing import settle, summarise, time_cpu, time_gpu
from gankit.tolerances import BENCH_MAX, BENCH_QUANTILE_RULE, PARITY_QUANTILE


def gate(diff: torch.Tensor, precision: str) -> str | None:
    """Why images that differ from eager fp32's by ``diff`` (|Δ|, any shape, in [-1, 1] units) are wrong for
    ``precision``, or None when they are within its tolerance."""
    if precision in BENCH_QUANTILE_RULE:
        flat = diff.detach().flatten().double().cpu().numpy()
        p999, mean = float(np.quantile(flat, PARITY_QUANTILE)), float(flat.mean())
        top, average = BENCH_QUANTILE_RULE[precision]
        if p999 <= top and mean <= average:
            return None
        return (
            f"|diff| vs eager fp32: 99.9th percentile {p999:.3g} (tolerance {top:g}), "
            f"mean {mean:.3g} (tolerance {average:g})"
        )
    error = diff.max().item()
    return (
        None
        if error <= BENCH_MAX[precision]
        else f"max |diff| vs eager fp32 {error:.3g} > tolerance {BENCH_MAX[precision]}"
    )


ROTATING_INPUTS = 4


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
    warnings: list[str] = field(default_factory=list)


def _build(name: str, model: Any, precision: str, device: str, batch: int, compile_mode: str) -> Backend:
    """Backend ``name`` for ``model`` (a Generator, which each backend copies, or an OnnxGraph)."""
    options: dict[str, Any] = {"device": device}
    if name == "compile":
        options.update(mode=compile_mode, batch_size=batch)
    return create_backend(name, model, precision=precision, **options)


def run_bench(
    model: str | Path | None = None,
    backends: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    precisions: list[str] | None = None,
    output: str = "float",
    device: str = "auto",
    compile_mode: str = "default",
    log: Callable[[str], None] = print,
    on_row: Callable[[Measurement], None] = lambda row: None,
    import_options: ImportOptions | None = None,
) -> BenchReport:
    """Measure every (backend, precision, batch); see the module docstring for how.

    ``log`` gets the ceilings and warnings as lines (and the line saying a foreign file was converted);
    ``on_row`` every measurement as it is made; ``import_options``: what a foreign file cannot say."""
    torch_device = resolve_device(device)
    on_gpu = torch_device.type == "cuda"
    where = "GPU" if on_gpu else "CPU"
    batch_sizes = batch_sizes or list(BATCH_SIZES[where])
    precisions = precisions or list(BENCH_PRECISIONS[where])
    _check_choices(backends or [], batch_sizes, precisions, output, compile_mode)
    model = load_model(model_path(model), import_options, log)
    onnx_file = not isinstance(model, Generator)
    backends = backends or default_backends(on_gpu, onnx_file)
    precisions = sorted(precisions, key=lambda p: p != "fp32")  # fp32 first: it is the "vs eager" baseline
    if onnx_file:  # the file as it is, through onnxruntime on the CPU, is the reference
        reference = create_backend("onnxruntime", model, precision=model.precision, device="cpu").generate_float
    else:
        reference = copy.deepcopy(model).to(torch_device)
    config = model.config
    report = BenchReport(environment(torch_device), json.loads(config.to_json()), config.flops_per_sample)
    eager_fp32: dict[int, float] = {}  # the baseline of "vs eager": eager fp32 at the same batch size

    for precision in precisions:
        ceilings = measure_ceilings(torch_device, precision)
        report.ceilings[precision] = ceilings
        log(f"ceilings {ceilings.describe(precision)}")
        for batch in batch_sizes:
            inputs = [noise(100 + i, 0, batch, config.latent_dim, device=torch_device) for i in range(ROTATING_INPUTS)]
            with torch.inference_mode():
                expected = reference(inputs[0].to(torch_device)).float().to(torch_device)
            for name in backends:
                result = _measure_one(
                    name, model, precision, torch_device, batch, output, compile_mode, inputs, expected, on_gpu
                )
                if result.samples_per_second is not None and config.flops_per_sample:
                    result.roofline_samples_per_second = roofline(config, ceilings, batch, precision, output)
                    result.fraction_of_roofline = result.samples_per_second / result.roofline_samples_per_second
                    if name == "eager" and (precision == "fp32" or batch not in eager_fp32):
                        eager_fp32[batch] = result.samples_per_second
                    if batch in eager_fp32:
                        result.speedup_vs_eager = result.samples_per_second / eager_fp32[batch]
                report.results.append(result)
                on_row(result)
    report.warnings.extend(above_ceiling(report.results))
    for warning in report.warnings:
        log(f"warning: {warning}")
    return report


def default_backends(on_gpu: bool, onnx_file: bool = False) -> list[str]:
    """``gankit.perf.BACKENDS`` of an ONNX file, else of the device, openvino only where it is installed."""
    names = BACKENDS[".onnx" if onnx_file else "GPU" if on_gpu else "CPU"]
    usable = backend_class("openvino").unavailable_reason() is None
    return [name for name in names if name != "openvino" or usable]


def _check_choices(
    backends: list[str], batch_sizes: list[int], precisions: list[str], output: str, compile_mode: str
) -> None:
    """BackendError (one line, naming the choices) for anything the benchmark cannot run."""
    for name in backends:
        backend_class(name)  # raises with the registered names
    bad = [b for b in batch_sizes if not isinstance(b, int) or b <= 0]
    if bad:
        raise BackendError(f"batch sizes must be positive whole numbers, got {', '.join(map(str, bad))}")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise BackendError(f"unknown precision {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    if output not in ("float", "uint8"):
        raise BackendError(f"unknown output {output!r}; choose float or uint8")
    if compile_mode not in COMPILE_MODES:
        raise BackendError(f"unknown torch.compile mode {compile_mode!r}; choose from {', '.join(COMPILE_MODES)}")


def above_ceiling(results: list[Measurement]) -> list[str]:
    """A line for every row faster than its roofline: a ceiling that does not bound a row is not a ceiling."""
    return [
        f"{m.backend} {m.precision} at batch {m.batch} runs at {100 * m.fraction_of_roofline:.0f}% of the roofline "
        "measured in this run: that ceiling is not an upper bound here"
        for m in results
        if m.fraction_of_roofline is not None and m.fraction_of_roofline > 1.0
    ]


def _measure_one(
    name: str,
    model: Any,
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
        if not isinstance(model, Generator) and name not in ONNX_BACKENDS:
            result.status, result.note = "skipped", f"{name} runs checkpoints; an ONNX file runs on {ONNX_BACKENDS}"
            return result
        if not isinstance(model, Generator) and name == "onnxruntime" and precision != model.precision:
            result.status, result.note = "skipped", f"the ONNX file is {model.precision}; onnxruntime runs it as it is"
            return result
        backend = _build(name, model, precision, str(device), batch, compile_mode)
        images = backend.generate(inputs[0], output="float").float().to(device)
    except GankitError as exc:
        result.status, result.note = "unavailable", str(exc)
        return result
    except Exception as exc:  # a backend that crashes is reported, and the other measurements go on
        result.status, result.note = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return result
    diff = (images.reshape(expected.shape) - expected).abs()
    result.max_abs_error = diff.max().item()
    why = gate(diff, precision)
    if why is not None:
        result.status, result.note = "wrong", why
        return result
    turn = {"i": 0}

    def call() -> object:
        turn["i"] = (turn["i"] + 1) % len(inputs)
        return backend.generate(inputs[turn["i"]], output=output)

    settle()  # the previous backend's spinning worker threads (onnxruntime) must not share the cores
    times = time_gpu(call) if on_gpu else time_cpu(call)
    result.median_seconds, result.p90_seconds = summarise(times, on_gpu)
    result.samples_per_second = batch / result.median_seconds
    return result
