"""Triton: the whole generator in one launch, or one fused Linear+bias+activation launch a layer.

The whole-generator kernel (``kernels.generator``) takes 3-Linear generators whose h1 and output fit
it (``fits_whole_generator``), with their per-layer slopes and output activation; any other generator
runs layer by layer (``kernels.fused_linear``: leaky_relu, relu, none, tanh or sigmoid as 2y - 1).
Seeded calls make the noise inside the whole-generator kernel (``tl.randn``, equal to
``gankit.noise``), and uint8 output is rounded in the kernel. A class-conditional generator's labels reach
layer 1 of either path as a per-sample bias (row ``labels[b]`` of ``class_bias``, gathered in the kernel).
Needs a CUDA device, or ``TRITON_INTERPRET=1`` (set before Triton is imported) to run the same kernels on the
CPU interpreter: slow, for tests.
"""

from __future__ import annotations

import os

import torch

from gankit.backends import REGISTRY
from gankit.backends.base import Backend
from gankit.device import TORCH_DTYPES
from gankit.errors import BackendError
from gankit.labels import LabelSpec
from gankit.model import Generator
from gankit.noise import check_seed
from gankit.pixels import to_uint8

OUTPUTS = ("float", "uint8")


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _hidden_activation(slope: float) -> tuple[str, float]:
    """The fused kernel's activation for a hidden layer's LeakyReLU slope: 0 is relu, 1 is none."""
    return {0.0: ("relu", 0.0), 1.0: ("none", 0.0)}.get(slope, ("leaky_relu", slope))


class TritonBackend(Backend):
    name = "triton"
    precisions = REGISTRY["triton"].precisions

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = REGISTRY["triton"].missing()
        if missing is not None:
            return missing
        if torch.cuda.is_available() or _interpreted():
            return None
        return "no CUDA device; set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter (slow, for testing)"

    def __init__(self, generator: Generator, precision: str = "fp32", device: str = "auto") -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendError(f"backend 'triton' is not available here: {reason}")
        if precision not in self.precisions:
            raise BackendError(f"backend 'triton' supports precisions {', '.join(self.precisions)}, not {precision!r}")
        device = str(device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {device} asked for, but no CUDA device is available")
        if device == "cpu" and not _interpreted():
            raise BackendError("the triton backend runs on the CPU only under TRITON_INTERPRET=1 (slow, for testing)")
        if not (device == "cpu" or device.startswith("cuda")):
            raise BackendError(f"the triton backend runs on cuda (or cpu under TRITON_INTERPRET=1), not {device!r}")

        from kernels.generator import fits_whole_generator, pack_generator

        self.config = generator.config
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        self.allow_tf32 = precision == "tf32"
        weights = [layer.weight for layer in generator.layers]
        biases = [layer.bias for layer in generator.layers]
        class_bias = generator.class_bias if self.config.num_classes else None
        self.whole = fits_whole_generator(self.config.layer_sizes)
        # Weights are cast and laid out once, here; the caller's generator is left as it is.
        if class_bias is not None:
            class_bias = class_bias.detach().to(self.device, torch.float32).contiguous()
        self.class_bias = class_bias
        if self.whole:
            self.packed = pack_generator(
                weights,
                biases,
                self.config.hidden_slopes,
                self.dtype,
                self.device,
                self.config.output_activation,
                self.class_bias,
            )
        else:  # W as the (out, in) view of a contiguous W.T: tiles contiguous along out, the faster layout
            self.layers = [
                (w.detach().to(self.device, self.dtype).t().contiguous().t(), b.detach().to(self.device, torch.float32))
                for w, b in zip(weights, biases)
            ]

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, output="float", labels=labels)

    def generate(self, z: torch.Tensor, output: str = "float", labels: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, latent_dim) float [, labels (B,) int64] -> (B, C, H, W) float32 in [-1, 1], or uint8 when
        output='uint8'."""
        self._check_output(output)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise BackendError(f"z must be (batch, {self.config.latent_dim}), got {tuple(z.shape)}")
        self.check_labels(labels, z.shape[0])
        z = z.to(self.device, torch.float32).contiguous()
        labels = None if labels is None else labels.to(self.device)
        if self.whole:
            from kernels.generator import generator_forward

            flat = generator_forward(self.packed, z=z, output=output, allow_tf32=self.allow_tf32, labels=labels)
        else:
            flat = self._per_layer(z, labels)
            flat = to_uint8(flat) if output == "uint8" else flat
        return flat.view(z.shape[0], *self.config.image_shape)

    def generate_resolved(
        self, seed: int, start: int, count: int, output: str, labels: LabelSpec | None
    ) -> torch.Tensor:
        """Images of samples start .. start+count-1 of ``seed``: the whole-generator kernel makes the
        noise itself and reads no input but the labels; the per-layer path takes it from ``gankit.noise``."""
        self._check_output(output)
        if not self.whole:
            return super().generate_resolved(seed, start, count, output, labels)
        from kernels.generator import generator_forward

        seed = check_seed(seed)
        if start < 0 or count < 0:
            raise BackendError(f"need start >= 0 and count >= 0, got {start} and {count}")
        flat = generator_forward(
            self.packed,
            count=count,
            seed=seed,
            start=start,
            output=output,
            allow_tf32=self.allow_tf32,
            labels=self.seeded_labels(labels, seed, start, count),
        )
        return flat.view(count, *self.config.image_shape)

    def _per_layer(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        from kernels.fused_linear import fused_linear

        x = z.to(self.dtype)
        activations = [_hidden_activation(slope) for slope in self.config.hidden_slopes]
        activations.append((self.config.output_activation, 0.0))
        for index, ((weight, bias), (act, slope)) in enumerate(zip(self.layers, activations)):
            table, rows = (self.class_bias, labels) if index == 0 and labels is not None else (None, None)
            x = fused_linear(x, weight, bias, act, slope, allow_tf32=self.allow_tf32, class_bias=table, labels=rows)
        return x.float()

    @staticmethod
    def _check_output(output: str) -> None:
        if output not in OUTPUTS:
            raise BackendError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")

    def describe(self) -> str:
        kind = "whole-generator kernel" if self.whole else "per-layer fused kernels"
        where = "CPU interpreter" if self.device.type == "cpu" else str(self.device)
        return f"triton ({kind}, {self.precision}, {where})"
