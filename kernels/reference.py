"""Plain-torch references for the kernels: what they compute, in any dtype (float64 for tests)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

ACTIVATIONS = ("leaky_relu", "tanh", "none")


def activation(x: torch.Tensor, name: str, slope: float = 0.2) -> torch.Tensor:
    """Elementwise: "leaky_relu" (negative side times ``slope``), "tanh" or "none"."""
    if name == "leaky_relu":
        return F.leaky_relu(x, slope)
    if name == "tanh":
        return torch.tanh(x)
    if name == "none":
        return x
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


def fused_linear_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "leaky_relu", slope: float = 0.2
) -> torch.Tensor:
    """x: (M, K), weight: (N, K), bias: (N,) -> act(x @ weight.T + bias): (M, N), in x's dtype."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return activation(y, act, slope)


def to_uint8_reference(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8: (x + 1) * 127.5, rounded to nearest, clipped to 0..255."""
    return torch.clamp(torch.round((images + 1.0) * 127.5), 0, 255).to(torch.uint8)


def generator_reference(
    z: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor], slope: float = 0.2
) -> torch.Tensor:
    """z: (B, latent) -> (B, out_features) flat images: LeakyReLU between layers, tanh at the end.

    weights: [(out, in)] as nn.Linear stores them, input to output; biases: [(out,)]; any float dtype.
    """
    x = z
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        last = i == len(weights) - 1
        x = fused_linear_reference(x, weight, bias, "tanh" if last else "leaky_relu", slope)
    return x
