"""The one small interface every sampling backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from gankit.config import GeneratorConfig, OnnxGeneratorConfig
from gankit.errors import BackendError
from gankit.noise import noise
from gankit.pixels import to_uint8

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")


def check_latent_batch(z: object, latent_dim: int, model_name: str) -> None:
    """BackendError unless ``z`` (a tensor or an array) is (batch, latent_dim) float32."""
    shape, dtype = tuple(z.shape), str(z.dtype).replace("torch.", "")
    if len(shape) != 2 or shape[1] != latent_dim or dtype != "float32":
        wanted = f"[batch, {latent_dim}] float32"
        raise BackendError(f"{model_name} takes z of shape {wanted}; got {list(shape)} {dtype}")


class Backend(ABC):
    """Maps latent vectors (or a seed and an index range) to images.

    Subclasses set ``name`` and ``precisions``, build their runtime in ``__init__`` and implement
    ``generate_float``. ``config`` describes the generator (an ONNX graph made elsewhere: what its graph
    says, ``OnnxGeneratorConfig``); ``device`` is where outputs land.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    config: GeneratorConfig | OnnxGeneratorConfig
    device: torch.device
    precision: str

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run here, else one line saying why not and what to do."""
        return None

    @abstractmethod
    def generate_float(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) float32 -> images (B, C, H, W) float32 in [-1, 1] on ``self.device``."""

    def generate(self, z: torch.Tensor, output: str = "float") -> torch.Tensor:
        """z: (B, latent_dim) float32 -> (B, C, H, W) float32 in [-1, 1], or uint8 when output='uint8'."""
        images = self.generate_float(z)
        return to_uint8(images) if output == "uint8" else images

    def generate_seeded(self, seed: int, start: int, count: int, output: str = "float") -> torch.Tensor:
        """Images of samples start .. start+count-1 of ``seed`` (noise from ``gankit.noise``)."""
        z = noise(seed, start, count, self.config.latent_dim, device=self.noise_device)
        return self.generate(z, output=output)

    def generate_range(
        self, seed: int, start: int, count: int, batch_size: int = 4096, output: str = "float"
    ) -> torch.Tensor:
        """Samples start .. start+count-1 of ``seed``, ``batch_size`` at a time, gathered on the CPU.

        Returns (count, C, H, W) float32 in [-1, 1], or uint8 when output='uint8'."""
        if batch_size <= 0:
            raise BackendError(f"batch size must be positive, got {batch_size}")
        chunks = [
            self.generate_seeded(seed, first, min(batch_size, start + count - first), output=output).cpu()
            for first in range(start, start + count, batch_size)
        ]
        if not chunks:
            dtype = torch.uint8 if output == "uint8" else torch.float32
            return torch.empty((0, *self.config.image_shape), dtype=dtype)
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    @property
    def noise_device(self) -> torch.device:
        return self.device

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.device})"
