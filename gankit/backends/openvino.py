"""openvino: runs a gankit fp32 ONNX export with OpenVINO's CPU plugin, in fp32 or bf16.

Accepts a path to a gankit ONNX export (its config comes from the ONNX metadata), an ``OnnxGraph``
(``gankit.onnx.graph``: an export, or a generator graph made elsewhere, whose output is reshaped to
(B, C, H, W) and mapped from [0, 1] to [-1, 1] as 2y - 1 when that is its range), a loaded model
(``gankit.models.LoadedModel``) or a Generator, which are exported as an fp32 graph once per machine
(``gankit.onnx.cache``). It builds and runs without torch (``run_numpy``). ``generate_float`` takes z of shape
(B, latent_dim) float32 (any B: the export's batch dimension is dynamic) and returns images (B, C, H, W)
float32 in [-1, 1] on the CPU; a class-conditional export also takes labels (B,) int64 (its ``label`` input).

Only exports of an fp32 graph with float output are accepted as paths: bf16 is not a graph of its own here,
OpenVINO applies it when it compiles the fp32 graph (``INFERENCE_PRECISION_HINT``). fp16/int8 exports are
refused (pass an fp32 export), and so are ``--output uint8`` exports (their in-graph rounding would run in
bf16 too; convert to uint8 with ``generate(z, output="uint8")`` instead).

Pitfall: OpenVINO's CPU plugin *defaults* to bf16 inference on CPUs with native bf16 (AVX-512 BF16, AMX), so
an fp32 model silently runs in bf16 there (max error ~2e-3 instead of ~5e-7). This backend always sets the
inference precision hint explicitly (f32 for fp32) and checks that the compiled model reports what was asked.
bf16 is refused on CPUs without native bf16 (``gankit.cpu.require_bf16``), where it would be emulated.

One infer request is reused for every call: a backend object is not safe to call from several threads at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gankit.backends import REGISTRY
from gankit.backends.base import Backend, check_latent_batch
from gankit.cpu import compute_threads
from gankit.errors import BackendError
from gankit.onnx.cache import runtime_graph
from gankit.runtime import compile_openvino, feeds

if TYPE_CHECKING:
    import torch

    from gankit.model import Generator
    from gankit.models import LoadedModel
    from gankit.onnx.graph import OnnxGraph

DEVICES = ("auto", "cpu")
# latency: one stream using every thread (best at batch 1: ~75-140 us vs ~200 us, and for bf16 at every batch);
# throughput: one stream per core, which was a little faster for fp32 at batch 4096 on a 2-core shared CPU.
PERFORMANCE_HINTS = ("latency", "throughput")


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = REGISTRY["openvino"].precisions
    takes_loaded = True
    device_type = "cpu"

    def __init__(
        self,
        model: str | Path | OnnxGraph | LoadedModel | Generator,
        precision: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
        performance: str = "latency",
    ) -> None:
        if precision not in self.precisions:
            raise BackendError(
                f"backend 'openvino' supports precisions {', '.join(self.precisions)}, not {precision!r}"
            )
        if device not in DEVICES:
            raise BackendError(f"backend 'openvino' runs on the CPU only (--device auto or cpu), not {device!r}")
        if performance not in PERFORMANCE_HINTS:
            raise BackendError(f"unknown OpenVINO performance hint {performance!r}; choose from {PERFORMANCE_HINTS}")
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, not {threads}")
        if precision == "bf16":
            from gankit import cpu

            cpu.require_bf16()
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendError(reason)

        import openvino.properties as props
        import openvino.properties.hint as hints

        self._folder, graph = runtime_graph(model, "fp32")
        path = graph.path
        if graph.precision != "fp32":
            raise BackendError(
                f"{path.name} is a {graph.precision} export: OpenVINO takes an fp32 export "
                "(gankit export --precision fp32) and applies bf16 itself with --precision bf16"
            )
        if graph.output != "float":
            raise BackendError(
                f"{path.name} is a --output {graph.output} export: OpenVINO takes a float-output export "
                "(gankit export --output float); uint8 conversion happens after it"
            )
        self.graph = graph
        self.path = path
        self.config = graph.config
        self.precision = precision
        self.threads = threads or compute_threads()
        self.performance = performance

        self.compiled = compile_openvino(
            path,
            precision,
            {
                props.inference_num_threads: self.threads,
                hints.performance_mode: {
                    "latency": hints.PerformanceMode.LATENCY,
                    "throughput": hints.PerformanceMode.THROUGHPUT,
                }[performance],
            },
        )
        self.request = self.compiled.create_infer_request()

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device("cpu")

    def _check(self, z: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None) -> None:
        check_latent_batch(z, self.config.latent_dim, self.path.name)
        self.check_labels(labels, z.shape[0])

    def run_numpy(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """z: (B, latent_dim) float32 array [, labels (B,) int64 array for a class-conditional export] -> images
        (B, C, H, W) float32 in [-1, 1], a fresh array."""
        self._check(z, labels)
        if z.shape[0] == 0:
            return np.empty((0, *self.config.image_shape), dtype=np.float32)
        # share_outputs=False: the result is a copy, not a view of the request's output tensor, so the next
        # call cannot overwrite it. share_inputs=True: no copy of z (the call is synchronous).
        result = self.request.infer(feeds(self.graph, z, labels), share_inputs=True, share_outputs=False)
        images = result[0].reshape(z.shape[0], *self.config.image_shape)  # a foreign graph's output may be flat
        return 2 * images - 1 if self.graph.output_range == (0.0, 1.0) else images

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        self._check(z, labels)
        host_labels = None if labels is None else labels.detach().cpu().numpy()
        return torch.from_numpy(self.run_numpy(z.detach().cpu().numpy(), host_labels))

    @property
    def noise_device(self) -> torch.device:
        return self.device

    def describe(self) -> str:
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        hint = "" if self.performance == "latency" else ", throughput"
        return f"openvino ({self.precision}, CPU, {threads}{hint})"
