"""onnxruntime: runs an ONNX generator (CPU EP by default; CUDA EP with IOBinding when installed).

Accepts a path to a gankit export (its config and precision come from the ONNX metadata), an ``OnnxGraph``
(``gankit.onnx.graph``: an export, or a generator graph made elsewhere, with what its file cannot say), or a
Generator, which is exported in the asked precision once per machine (``gankit.onnx.cache``). A class-conditional
export's ``label`` input is fed the labels given beside z (int64 (B,); see ``Backend``). A foreign
graph's output is mapped to gankit's images: reshaped to (B, C, H, W), and 2y - 1 when its range is [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.backends.base import Backend, check_latent_batch
from gankit.errors import BackendError
from gankit.model import Generator
from gankit.onnx.graph import OnnxGraph, read_graph
from gankit.pixels import check_finite, to_uint8
from gankit.runtime import OPTIMIZATION_LEVELS, cuda_provider_available, feeds, onnxruntime_session


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")

    def __init__(
        self,
        model: str | Path | OnnxGraph | Generator,
        precision: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
        optimization: str = "all",
        spin: bool = True,
        int8=None,
    ) -> None:
        """``int8``: ``gankit.onnx.quantize.Int8Options`` for a Generator exported at precision int8."""
        from gankit.onnx.cache import cached_export

        if optimization not in OPTIMIZATION_LEVELS:
            raise BackendError(f"unknown graph optimization {optimization!r}; choose from {OPTIMIZATION_LEVELS}")
        self._folder = None
        if isinstance(model, Generator):
            self._folder, path = cached_export(model, precision, int8=int8 if precision == "int8" else None)
            graph = read_graph(path)
        else:
            graph = model if isinstance(model, OnnxGraph) else read_graph(model)
        self.graph = graph
        self.path = graph.path
        self.config = graph.config
        self.precision = graph.precision
        self.output = graph.output
        self.variant = self.precision if not graph.foreign else "fp32 I/O, graph made elsewhere"
        if "gankit_int8" in graph.metadata:
            from gankit.onnx.quantize import Int8Options

            self.variant = f"int8 {Int8Options.from_json(graph.metadata['gankit_int8']).label}"

        cuda = cuda_provider_available() and device != "cpu" and torch.cuda.is_available()
        if device.startswith("cuda") and not cuda:
            raise BackendError(
                "the installed onnxruntime has no CUDA execution provider: install onnxruntime-gpu, or use --device cpu"
            )
        self.session = onnxruntime_session(
            self.path, threads or torch.get_num_threads(), spin=spin, optimization=optimization, cuda=cuda
        )
        self.device = torch.device("cuda" if cuda else "cpu")

    def _check(self, z: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None) -> None:
        check_latent_batch(z, self.config.latent_dim, self.path.name)
        self.check_labels(None if labels is None else torch.as_tensor(labels), z.shape[0])

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
        self._check(z, labels)
        if self.device.type == "cuda" and not self.graph.foreign:
            return self._run_bound(z, labels)
        host_labels = None if labels is None else labels.detach().cpu().numpy()
        return torch.from_numpy(self._images(z.detach().cpu().numpy(), host_labels)).to(self.device)

    def _run_bound(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """CUDA EP, gankit exports: bind torch's device buffers (no host round trip)."""
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
        images = self._run(z, labels)
        check_finite(images)
        return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images

    def generate(self, z: torch.Tensor, output: str = "float", labels: torch.Tensor | None = None) -> torch.Tensor:
        images = self._run(z, labels)
        check_finite(images)
        if output == "uint8":
            return images if images.dtype == torch.uint8 else to_uint8(images)
        return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images

    @property
    def noise_device(self) -> torch.device:
        return torch.device("cpu")

    def describe(self) -> str:
        provider = self.session.get_providers()[0].replace("ExecutionProvider", "")
        return f"onnxruntime ({self.variant}, {provider}, {self.path.name})"
