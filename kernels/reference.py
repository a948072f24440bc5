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
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    act: str = "leaky_relu",
    slope: float = 0.2,
    class_bias: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """x: (M, K), weight: (N, K), bias: (N,) [, class_bias: (classes, N), labels: (M,) int64]
    -> act(x @ weight.T + bias [+ class_bias[labels]]): (M, N), in x's dtype."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    if class_bias is not None:
        y = y + class_bias.to(y.dtype)[labels]
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
    class_bias: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """z: (B, latent) -> (B, out_features) flat images: LeakyReLU between layers, ``output_act`` at the end.

    weights: [(out, in)] as nn.Linear stores them, input to output; biases: [(out,)]; any float dtype.
    slope: one LeakyReLU slope for every hidden layer, or one per hidden layer; output_act: "tanh" or "sigmoid".
    class_bias: (classes, out of layer 1) and labels: (B,) int64, a class-conditional generator's: row labels[b]
    is added to sample b's layer-1 pre-activation.
    """
    slopes = list(slope) if isinstance(slope, Sequence) else [slope] * (len(weights) - 1)
    if len(slopes) != len(weights) - 1:
        raise ValueError(f"{len(slopes)} slopes for {len(weights) - 1} hidden layers")
    x = z
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        last = i == len(weights) - 1
        table, rows = (class_bias, labels) if i == 0 else (None, None)
        act, layer_slope = (output_act, 0.0) if last else ("leaky_relu", slopes[i])
        x = fused_linear_reference(x, weight, bias, act, layer_slope, table, rows)
    return x
