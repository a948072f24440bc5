"""The MLP GAN: plain nn.Modules, the seed's architecture by default."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import DiscriminatorConfig, GeneratorConfig


class Generator(nn.Module):
    """z: (B, latent_dim) float -> image: (B, C, H, W) in [-1, 1], same dtype as the weights.

    ``layers[i]`` is the i-th Linear; every layer but the last is followed by LeakyReLU(slope),
    the last by tanh.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in self.config.layer_sizes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for layer in self.layers[:-1]:
            x = F.leaky_relu(layer(x), self.config.slope)
        x = torch.tanh(self.layers[-1](x))
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
