"""Plain-torch references for the kernels: what they compute, in any dtype (float64 for tests)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

ACTIVATIONS = ("leaky_relu", "relu", "tanh", "sigmoid", "none")


def activation(x: torch.Tensor, name: str, slope: float = 0.2) -> torch.Tensor:
    """Elementwise: "leaky_relu" (negative side times ``slope``), "relu", "tanh", "sigmoid" mapped to
    [-1, 1] (2 * sigmoid(x) - 1, gankit's convention) or "none"."""
    if name == "leaky_relu":
        return F.leaky_relu(x, slope)
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return 2 * torch.sigmoid(x) - 1
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
    z: torch.Tensor,
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    slope: float | Sequence[float] = 0.2,
    output_act: str = "tanh",
) -> torch.Tensor:
    """z: (B, latent) -> (B, out_features) flat images: LeakyReLU between layers, ``output_act`` at the end.

    weights: [(out, in)] as nn.Linear stores them, input to output; biases: [(out,)]; any float dtype.
    slope: one LeakyReLU slope for every hidden layer, or one per hidden layer; output_act: "tanh" or "sigmoid".
    """
    slopes = list(slope) if isinstance(slope, Sequence) else [slope] * (len(weights) - 1)
    if len(slopes) != len(weights) - 1:
        raise ValueError(f"{len(slopes)} slopes for {len(weights) - 1} hidden layers")
    x = z
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        last = i == len(weights) - 1
        x = fused_linear_reference(x, weight, bias, output_act if last else "leaky_relu", 0.0 if last else slopes[i])
    return x
