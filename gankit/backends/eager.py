"""Plain PyTorch eager: the reference every other backend is compared against."""

from __future__ import annotations

import copy

import torch

from gankit.backends import REGISTRY
from gankit.backends.base import Backend
from gankit.device import TORCH_DTYPES, matmul_precision, resolve_device
from gankit.model import Generator


class EagerBackend(Backend):
    name = "eager"
    precisions = REGISTRY["eager"].precisions

    def __init__(self, generator: Generator, precision: str = "fp32", device: str = "auto") -> None:
        self.config = generator.config
        self.device = resolve_device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        self.model = copy.deepcopy(generator).to(self.device, self.dtype).eval()  # the caller's stays as it is

    @torch.inference_mode()
    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_labels(labels, z.shape[0])
        extra = () if labels is None else (labels.to(self.device),)
        with matmul_precision(self.precision):
            return self.model(z.to(self.device, self.dtype), *extra).float()
