"""A chain of Linear layers read from elsewhere -> a gankit Generator: the one place imports build one.

Both importers (``gankit.models.module`` walks an nn.Module, ``gankit.models.state_dict`` reads tensor
names) reduce a generator to ``Linear`` steps in float64, an eval-mode BatchNorm1d folded into the Linear
before it, and hand them here with the activations. ``build_generator`` checks that the steps chain and
are finite and makes the Generator; ``summary`` says what was found, for the "converted on the fly" line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gankit.config import GeneratorConfig, hidden_activation_name
from gankit.errors import ConversionError
from gankit.model import Generator


@dataclass
class Linear:
    """One Linear of a generator: weight (out, in) and bias (out,) float64; ``name`` says where it came from
    (a module path or a state-dict prefix); ``batchnorm`` names the BatchNorm1d folded into it, if any."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor
    batchnorm: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)


def fold_batchnorm(
    linear: Linear,
    name: str,
    mean: torch.Tensor,
    var: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float,
) -> Linear:
    """``linear`` followed by an eval-mode BatchNorm1d, as one Linear (float64, all tensors (out,)).

    BatchNorm in eval mode is y = (x - mean) / sqrt(var + eps) * gamma + beta (gamma 1, beta 0 without
    affine), an affine map per feature, so with x = W z + b it is W' z + b' with W' = s W (row-wise),
    b' = s (b - mean) + beta, s = gamma / sqrt(var + eps).
    """
    out = linear.weight.shape[0]
    for label, tensor in (("running_mean", mean), ("running_var", var), ("weight", gamma), ("bias", beta)):
        if tensor is not None and tuple(tensor.shape) != (out,):
            raise ConversionError(
                f"BatchNorm1d {name} {label} has shape {tuple(tensor.shape)}, but the Linear before it "
                f"({linear.name}, weight {linear.shape}) makes {out} features"
            )
    scale = (gamma if gamma is not None else 1.0) / torch.sqrt(var + eps)
    shift = beta if beta is not None else 0.0
    return Linear(linear.name, linear.weight * scale[:, None], (linear.bias - mean) * scale + shift, name)


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ConversionError(f"{name} holds NaN or inf values")


def build_generator(
    linears: list[Linear],
    slopes: tuple[float, ...],
    output_activation: str,
    image_shape: tuple[int, int, int],
    dtype: torch.dtype = torch.float32,
) -> Generator:
    """Generator (eval mode, ``dtype``) of the chain: Linear i takes Linear i-1's output; hidden layer i is
    followed by LeakyReLU(slopes[i]), the last by ``output_activation``; the output is ``image_shape``."""
    if not linears:
        raise ConversionError("found no Linear layer: gankit takes MLP generators (Linear layers)")
    for before, after in zip(linears, linears[1:]):
        if after.shape[1] != before.shape[0]:
            raise ConversionError(
                f"shapes do not chain: {after.name} (weight {after.shape}) takes {after.shape[1]} inputs, but "
                f"{before.name} before it (weight {before.shape}) makes {before.shape[0]}"
            )
    for linear in linears:
        where = linear.name + (f" with BatchNorm1d {linear.batchnorm} folded in" if linear.batchnorm else "")
        check_finite(f"{where}: weight", linear.weight)
        check_finite(f"{where}: bias", linear.bias)
    outputs = linears[-1].shape[0]
    if math.prod(image_shape) != outputs:
        raise ConversionError(
            f"the last Linear ({linears[-1].name}) makes {outputs} values a sample, but the image shape "
            f"{','.join(map(str, image_shape))} holds {math.prod(image_shape)}: give the image shape "
            "(e.g. --image-shape C,H,W)"
        )
    config = GeneratorConfig(
        latent_dim=linears[0].shape[1],
        hidden=tuple(linear.shape[0] for linear in linears[:-1]),
        image_shape=image_shape,
        slope=slopes,
        output_activation=output_activation,
    )
    generator = Generator(config).to(dtype)
    with torch.no_grad():
        for layer, linear in zip(generator.layers, linears):
            layer.weight.copy_(linear.weight)
            layer.bias.copy_(linear.bias)
    return generator.eval()


def summary(linears: list[Linear], config: GeneratorConfig) -> str:
    """E.g. ``3 Linear, leaky_relu(0.2), tanh`` or ``5 Linear, 3 BatchNorm1d folded, relu, sigmoid``."""
    hidden = sorted({hidden_activation_name(slope) for slope in config.hidden_slopes})
    folded = sum(linear.batchnorm is not None for linear in linears)
    parts = [f"{len(linears)} Linear", *([f"{folded} BatchNorm1d folded"] if folded else []), *hidden]
    return ", ".join([*parts, config.output_activation])
