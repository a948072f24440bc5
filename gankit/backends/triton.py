"""Triton: the whole generator in one launch (or one fused Linear+bias+activation launch per layer).

Needs a CUDA device, or ``TRITON_INTERPRET=1`` to run the same kernels on the CPU interpreter (slow:
for tests). Seeded calls make the noise inside the kernel (``tl.randn``), equal to ``gankit.noise``.
"""

from __future__ import annotations

import os

import torch

from gankit.backends.base import Backend
from gankit.backends.eager import TORCH_DTYPES
from gankit.data import to_uint8
from gankit.errors import BackendError
from gankit.model import Generator
from gankit.noise import check_seed


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


class TritonBackend(Backend):
    name = "triton"
    precisions = ("fp32", "tf32", "fp16", "bf16")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import triton  # noqa: F401
        except ImportError:
            return "Triton is not installed (pip install triton)"
        if torch.cuda.is_available() or _interpreted():
            return None
        return (
            "no CUDA device; use --backend eager/compile/onnxruntime, or set TRITON_INTERPRET=1 to run the "
            "kernels on the CPU interpreter (slow, for testing)"
        )

    def __init__(self, generator: Generator, precision: str = "fp32", device: str = "auto") -> None:
        from kernels.generator import fits_whole_generator, pack_generator

        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendError(f"backend 'triton' is not available here: {reason}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("device cuda asked for, but no CUDA device is available")
        if device == "cpu" and not _interpreted():
            raise BackendError("the triton backend runs on the CPU only under TRITON_INTERPRET=1")
        self.config = generator.config
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        weights = [layer.weight for layer in generator.layers]
        biases = [layer.bias for layer in generator.layers]
        self.whole = fits_whole_generator(self.config.layer_sizes)
        if self.whole:
            self.packed = pack_generator(weights, biases, self.config.slope, self.dtype, self.device)
        else:  # per-layer kernels: W as nn.Linear stores it (out, in), in the compute dtype
            self.layers = [
                (w.detach().to(self.device, self.dtype).contiguous(), b.detach().to(self.device, torch.float32))
                for w, b in zip(weights, biases)
            ]

    def _per_layer(self, z: torch.Tensor) -> torch.Tensor:
        from kernels.fused_linear import fused_linear

        x = z.to(self.device, self.dtype).contiguous()
        for i, (weight, bias) in enumerate(self.layers):
            act = "tanh" if i == len(self.layers) - 1 else "leaky_relu"
            x = fused_linear(x, weight, bias, act, self.config.slope, allow_tf32=self.precision == "tf32")
        return x.float()

    def _images(self, z: torch.Tensor | None, seed: int, start: int, count: int, output: str) -> torch.Tensor:
        from kernels.generator import generator_forward

        if self.whole:
            flat = generator_forward(
                self.packed,
                z=z,
                count=count,
                seed=seed,
                start=start,
                output=output,
                allow_tf32=self.precision == "tf32",
            )
        else:  # z is always given here: generate_seeded makes it with gankit.noise for per-layer kernels
            flat = self._per_layer(z)
            flat = to_uint8(flat) if output == "uint8" else flat
        return flat.view(-1, *self.config.image_shape)

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise BackendError(f"z must be (batch, {self.config.latent_dim}), got {tuple(z.shape)}")
        return z.to(self.device, torch.float32).contiguous()

    def generate_float(self, z: torch.Tensor) -> torch.Tensor:
        return self._images(self._check_z(z), 0, 0, z.shape[0], "float")

    def generate(self, z: torch.Tensor, output: str = "float") -> torch.Tensor:
        return self._images(self._check_z(z), 0, 0, z.shape[0], output)

    def generate_seeded(self, seed: int, start: int, count: int, output: str = "float") -> torch.Tensor:
        """In-kernel noise (no input read) with the whole-generator kernel; gankit.noise + kernels otherwise."""
        seed = check_seed(seed)
        if self.whole:
            return self._images(None, seed, start, count, output)
        return Backend.generate_seeded(self, seed, start, count, output)

    def describe(self) -> str:
        kind = "whole-generator kernel" if self.whole else "per-layer fused kernels"
        where = "interpreter" if self.device.type == "cpu" else str(self.device)
        return f"triton ({kind}, {self.precision}, {where})"
