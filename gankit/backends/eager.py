"""Plain PyTorch eager: the reference every other backend is compared against."""

from __future__ import annotations

import contextlib
import copy

import torch

from gankit.backends.base import Backend
from gankit.model import Generator
from gankit.train import resolve_device

TORCH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def matmul_precision(precision: str):
    """fp32 means IEEE fp32 matmuls (TF32 off); tf32 allows TF32 tensor cores on GPUs that have them."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class EagerBackend(Backend):
    name = "eager"
    precisions = ("fp32", "tf32", "fp16", "bf16")

    def __init__(self, generator: Generator, precision: str = "fp32", device: str = "auto") -> None:
        self.config = generator.config
        self.device = resolve_device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        self.model = copy.deepcopy(generator).to(self.device, self.dtype).eval()  # the caller's stays as it is

    @torch.inference_mode()
    def generate_float(self, z: torch.Tensor) -> torch.Tensor:
        with matmul_precision(self.precision):
            return self.model(z.to(self.device, self.dtype)).float()
