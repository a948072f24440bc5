"""The runtimes that run ONNX graphs: every onnxruntime session and every OpenVINO compiled model gankit makes.

``onnxruntime_session`` and ``compile_openvino`` are the only places in gankit that create them; the backends,
the sampling lanes, the export's parity check and the GEMM ceilings all ask here, so threads, spinning,
optimization level, the inference precision and the error a person sees are decided once. Graphs are fed by
the names their ``gankit.onnx.graph.OnnxGraph`` states (``feeds``), never by position or by assumed names.

No torch here: a graph runs without it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from gankit.errors import BackendError

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
PRECISIONS_OPENVINO = ("fp32", "bf16")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def onnxruntime_session(
    path: str | Path,
    threads: int | None = None,
    spin: bool = True,
    optimization: str = "all",
    cuda: bool = False,
):
    """An onnxruntime ``InferenceSession`` of ``path``: ``threads`` intra-op threads (onnxruntime's default when
    None), one inter-op thread, spinning workers when ``spin`` (lower batch-1 latency, but the cores stay busy a
    moment after each run: pass False when other work shares them), graph optimization ``optimization``, the CUDA
    provider first when ``cuda``. BackendError (one line) when onnxruntime cannot load the graph."""
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise BackendError(f"unknown graph optimization {optimization!r}; choose from {OPTIMIZATION_LEVELS}")
    path = Path(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime's own exception types (Fail, InvalidGraph, ...) share no base but Exception
        raise BackendError(f"onnxruntime cannot load {path}: {_first_line(exc)}") from exc


def cuda_provider_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@functools.lru_cache(maxsize=1)
def openvino_core():
    """One OpenVINO Core for the process's lifetime, shared by every OpenVINO user in gankit. Each Core's CPU
    plugin replaces the calling thread's signal stack at its first compilation and puts back the one it found
    when the Core is destroyed; Cores destroyed out of order leave a freed stack in place, and the next signal
    handled on it (Ctrl-C, SIGCHLD) kills the process. A Core that is never destroyed never puts back a stale one."""
    import openvino as ov

    return ov.Core()


def compile_openvino(path: str | Path, precision: str, config: dict):
    """``path`` (an fp32 ONNX graph) compiled for OpenVINO's CPU plugin at ``precision`` ("fp32" or "bf16"), with
    ``config`` (threads, streams, hints) beside the inference precision, which is always set: the plugin would
    otherwise run an fp32 graph in bf16 on CPUs that have it. BackendError when it does not compile, or compiles
    for another precision than asked."""
    import openvino as ov
    import openvino.properties.hint as hints

    if precision not in PRECISIONS_OPENVINO:
        raise BackendError(f"OpenVINO runs {', '.join(PRECISIONS_OPENVINO)}, not {precision!r}")
    path = Path(path)
    wanted = ov.Type.bf16 if precision == "bf16" else ov.Type.f32
    try:
        core = openvino_core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {hints.inference_precision: wanted, **config})
    except RuntimeError as exc:
        raise BackendError(f"OpenVINO could not compile {path.name}: {_first_line(exc)}") from exc
    got = compiled.get_property(hints.inference_precision)
    if got != wanted:
        raise BackendError(f"OpenVINO compiled {path.name} for {got.get_type_name()}, not {precision} as asked")
    return compiled


def feeds(graph, z: np.ndarray, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The inputs of ``graph`` (an ``OnnxGraph``) by its names: z (B, latent) float32 [, labels (B,) int64 for a
    class-conditional graph], contiguous, as both runtimes take them."""
    given = {graph.input_name: np.ascontiguousarray(z, dtype=np.float32)}
    if graph.label_name is not None:
        if labels is None:
            raise BackendError(f"{graph.path.name} is class-conditional: it needs labels beside z")
        given[graph.label_name] = np.ascontiguousarray(labels, dtype=np.int64)
    return given
