"""onnxruntime: runs an ONNX generator (CPU EP by default; CUDA EP with IOBinding when installed).

Accepts a path to a gankit export (its config and precision come from the ONNX metadata), an ``OnnxGraph``
(``gankit.onnx.graph``: an export, or a generator graph made elsewhere, with what its file cannot say), a loaded
model (``gankit.models.LoadedModel``) or a Generator, which are exported in the asked precision once per machine
(``gankit.onnx.cache``). A class-conditional export's ``label`` input is fed the labels given beside z (int64
(B,); see ``Backend``). A foreign graph's output is mapped to gankit's images: reshaped to (B, C, H, W), and
2y - 1 when its range is [0, 1].

On the CPU it builds and runs without torch (``run_numpy``); the torch interface (``generate``) imports it.
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
from gankit.pixels import check_finite, to_uint8
from gankit.runtime import OPTIMIZATION_LEVELS, cuda_provider_available, feeds, onnxruntime_session

if TYPE_CHECKING:
    import torch

    from gankit.model import Generator
    from gankit.models import LoadedModel
    from gankit.onnx.graph import OnnxGraph


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = REGISTRY["onnxruntime"].precisions
    takes_loaded = True

    def __init__(
        self,
        model: str | Path | OnnxGraph | LoadedModel | Generator,
        precision: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
        optimization: str = "all",
        spin: bool = True,
        int8=None,
    ) -> None:
        """``int8``: ``gankit.onnx.quantize.Int8Options`` for a Generator exported at precision int8."""
        if optimization not in OPTIMIZATION_LEVELS:
            raise BackendError(f"unknown graph optimization {optimization!r}; choose from {OPTIMIZATION_LEVELS}")
        self._folder, graph = runtime_graph(model, precision, int8 if precision == "int8" else None)
        self.graph = graph
        self.path = graph.path
        self.config = graph.config
        self.precision = graph.precision
        self.output = graph.output
        self.variant = self.precision if not graph.foreign else "fp32 I/O, graph made elsewhere"
        if "gankit_int8" in graph.metadata:
            from gankit.onnx.quantize import Int8Options

            self.variant = f"int8 {Int8Options.from_json(graph.metadata['gankit_int8']).label}"

        cuda = device != "cpu" and cuda_provider_available() and _torch_sees_cuda()
        if device.startswith("cuda") and not cuda:
            raise BackendError(
                "the installed onnxruntime has no CUDA execution provider: install onnxruntime-gpu, or use --device cpu"
            )
        self.session = onnxruntime_session(
            self.path, threads or compute_threads(), spin=spin, optimization=optimization, cuda=cuda
        )
        self._device_type = "cuda" if cuda else "cpu"

    @property
    def device_type(self) -> str:
        return self._device_type

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(self._device_type)

    def _check(self, z: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None) -> None:
        check_latent_batch(z, self.config.latent_dim, self.path.name)
        self.check_labels(labels, z.shape[0])

    def run_numpy(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """z: (B, latent_dim) float32 array [, labels (B,) int64 array] -> images (B, C, H, W): float32 in [-1, 1],
        or uint8 from a uint8 export."""
        self._check(z, labels)
        return self._images(z, labels)

    def _images(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        images = self.session.run([self.graph.output_name], feeds(self.graph, z, labels))[0]
        images = images.reshape(z.shape[0], *self.config.image_shape)  # a foreign graph's output may be flat
        return 2 * images - 1 if self.graph.output_range == (0.0, 1.0) else images

    def _run(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        import torch

        self._check(z, labels)
        if self._device_type == "cuda" and not self.graph.foreign:
            return self._run_bound(z, labels)
        host_labels = None if labels is None else labels.detach().cpu().numpy()
        return torch.from_numpy(self._images(z.detach().cpu().numpy(), host_labels)).to(self.device)

    def _run_bound(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """CUDA EP, gankit exports: bind torch's device buffers (no host round trip)."""
        import torch

        z = z.to(self.device).contiguous()
        dtype = torch.uint8 if self.output == "uint8" else torch.float32
        images = torch.empty((z.shape[0], *self.config.image_shape), dtype=dtype, device=self.device)
        binding = self.session.io_binding()
        binding.bind_input(self.graph.input_name, "cuda", 0, np.float32, tuple(z.shape), z.data_ptr())
        if labels is not None:
            labels = labels.to(self.device, torch.int64).contiguous()
            binding.bind_input(self.graph.label_name, "cuda", 0, np.int64, tuple(labels.shape), labels.data_ptr())
        np_dtype = np.uint8 if self.output == "uint8" else np.float32
        binding.bind_output(self.graph.output_name, "cuda", 0, np_dtype, tuple(images.shape), images.data_ptr())
        self.session.run_with_iobinding(binding)
        return images

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        images = self._run(z, labels)
        check_finite(images)
        return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images

    def generate(self, z: torch.Tensor, output: str = "float", labels: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        images = self._run(z, labels)
        check_finite(images)
        if output == "uint8":
            return images if images.dtype == torch.uint8 else to_uint8(images)
        return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images

    @property
    def noise_device(self) -> torch.device:
        import torch

        return torch.device("cpu")

    def describe(self) -> str:
        provider = self.session.get_providers()[0].replace("ExecutionProvider", "")
        return f"onnxruntime ({self.variant}, {provider}, {self.path.name})"
