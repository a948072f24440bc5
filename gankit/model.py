"""The MLP GAN: plain nn.Modules, the seed's architecture by default."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import DiscriminatorConfig, GeneratorConfig


def output_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """The last layer's activation, into [-1, 1]: "tanh", or "sigmoid" as 2 * sigmoid(x) - 1 (see GeneratorConfig)."""
    return torch.tanh(x) if name == "tanh" else 2 * torch.sigmoid(x) - 1


class Generator(nn.Module):
    """z: (B, latent_dim) float -> image: (B, C, H, W) in [-1, 1], same dtype as the weights.

    ``layers[i]`` is the i-th Linear; hidden layer i is followed by LeakyReLU(``config.hidden_slopes[i]``),
    the last by ``config.output_activation`` (tanh, or sigmoid mapped to 2y - 1).
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in self.config.layer_sizes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](z)
        for slope, layer in zip(self.config.hidden_slopes, self.layers[1:]):
            x = layer(F.leaky_relu(x, slope))
        x = output_activation(x, self.config.output_activation)
        return x.view(z.shape[0], *self.config.image_shape)


class Discriminator(nn.Module):
    """image: (B, C, H, W) float -> logit: (B, 1) (real > 0)."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in self.config.layer_sizes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.flatten(1)
        for layer in self.layers[:-1]:
            x = F.leaky_relu(layer(x), self.config.slope)
        return self.layers[-1](x)
