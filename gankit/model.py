"""The MLP GAN: plain nn.Modules, the seed's architecture by default."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import DiscriminatorConfig, GeneratorConfig


def output_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """The last layer's activation, into [-1, 1]: "tanh", or "sigmoid" as 2 * sigmoid(x) - 1 (see GeneratorConfig)."""
    return torch.tanh(x) if name == "tanh" else 2 * torch.sigmoid(x) - 1


class Generator(nn.Module):
    """z: (B, latent_dim) float [, labels: (B,) int64] -> image: (B, C, H, W) in [-1, 1], the weights' dtype.

    ``layers[i]`` is the i-th Linear; hidden layer i is followed by LeakyReLU(``config.hidden_slopes[i]``),
    the last by ``config.output_activation`` (tanh, or sigmoid mapped to 2y - 1). Unconditional
    (``config.num_classes == 0``): ``forward(z)``; passing labels is an error.

    Class-conditional (``num_classes = K > 0``, Mirza & Osindero 2014): ``forward(z, labels)``, labels
    required, each in [0, K). The label enters layer 1 only, as a learned per-class bias:

        h1 = leaky_relu(z @ layers[0].weight.T + layers[0].bias + class_bias[labels], hidden_slopes[0])

    with ``class_bias`` a (K, hidden[0]) float tensor (state-dict key ``class_bias``); layers 2.. are
    unchanged. This equals Linear(latent_dim + K, hidden[0]) applied to concat(z, one_hot(labels)) with
    weight [layers[0].weight | class_bias.T], and is initialised as that Linear would be. An inference
    kernel gathers row ``labels[b]`` of ``class_bias`` and adds it to sample b's layer-1 accumulator
    (before the bias-add's activation); nothing else differs from the unconditional generator.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in self.config.layer_sizes)
        if self.config.num_classes:
            # Initialise as one Linear over concat(z, one_hot), then split it: the two formulations agree.
            joint = nn.Linear(self.config.latent_dim + self.config.num_classes, self.config.hidden[0])
            with torch.no_grad():
                self.layers[0].weight.copy_(joint.weight[:, : self.config.latent_dim])
                self.layers[0].bias.copy_(joint.bias)
            self.class_bias = nn.Parameter(joint.weight[:, self.config.latent_dim :].T.contiguous().detach())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layers[0](z)
        if self.config.num_classes:
            if labels is None or labels.shape != (z.shape[0],):
                raise ValueError(
                    f"this generator is conditional on {self.config.num_classes} classes: pass labels of shape "
                    f"({z.shape[0]},), got {None if labels is None else tuple(labels.shape)}"
                )
            x = x + self.class_bias[labels]
        elif labels is not None:
            raise ValueError("this generator is unconditional (num_classes = 0): call it without labels")
        for slope, layer in zip(self.config.hidden_slopes, self.layers[1:]):
            x = layer(F.leaky_relu(x, slope))
        x = output_activation(x, self.config.output_activation)
        return x.view(z.shape[0], *self.config.image_shape)


def minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """h: (N, F) -> (N, 1): for each row, the mean over features of the standard deviation over its group.

    Groups are strided as in StyleGAN: with g = gcd(group, N), row i belongs to group i mod (N / g), i.e.
    rows i, i + N/g, i + 2N/g, ... (biased variance, + 1e-8 under the root).
    """
    n, features = h.shape
    g = math.gcd(group, n)
    y = h.reshape(g, n // g, features)
    std = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(1)  # (N / g,)
    return std.repeat(g)[:, None]


def pack(x: torch.Tensor, size: int) -> torch.Tensor:
    """x: (B, F) -> (B / size, size * F): rows j*size .. j*size + size - 1 become row j, in order (PacGAN)."""
    if x.shape[0] % size:
        raise ValueError(f"a batch of {x.shape[0]} cannot be split into packs of {size}")
    return x.reshape(x.shape[0] // size, size * x.shape[1])


class Discriminator(nn.Module):
    """image: (B, C, H, W) float [, labels: (B,) int64] -> logits: (B / pack, 1) float (real > 0).

    The options (packing, minibatch std, dropout, label conditioning, the auxiliary classifier) are
    described in ``DiscriminatorConfig``; labels are required exactly when ``config.num_classes`` > 0 and
    ``condition`` is not "classifier" (``classify`` gives that head's class logits). Dropout is
    active in train mode; its masks come from ``rng`` (a generator on the input's device; None = torch's
    global RNG), so a training loop can own, save and restore that stream.
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in self.config.layer_sizes)
        if self.config.num_classes and self.config.condition == "projection":
            self.projection = nn.Linear(self.config.pack * self.config.num_classes, self.config.hidden[-1], bias=False)
        if self.config.num_classes and self.config.classifier:
            self.classifier = nn.Linear(self.config.hidden[-1], self.config.pack * self.config.num_classes)

    def forward(
        self, image: torch.Tensor, labels: torch.Tensor | None = None, rng: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.classify(image, labels, rng)[0]

    def classify(
        self, image: torch.Tensor, labels: torch.Tensor | None = None, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (B / pack, 1), class logits (B, num_classes) of the auxiliary classifier, or None without one)."""
        config = self.config
        if (labels is None) != (config.num_classes == 0):
            raise ValueError(f"this discriminator has num_classes = {config.num_classes}: labels must be given iff > 0")
        x = image.flatten(1)
        one_hot = F.one_hot(labels, config.num_classes).to(x.dtype) if labels is not None else None
        if one_hot is not None and config.condition == "concat":
            x = torch.cat([x, one_hot], 1)
        x = pack(x, config.pack)
        for index, layer in enumerate(self.layers[:-1]):
            x = F.leaky_relu(layer(x), config.slope)
            if config.dropout and self.training:
                keep = torch.rand(x.shape, generator=rng, device=x.device) >= config.dropout
                x = x * keep / (1 - config.dropout)
            if index == 0 and config.minibatch_std:
                x = torch.cat([x, minibatch_std(x, config.minibatch_std)], 1)
        logits = self.layers[-1](x)
        if one_hot is not None and config.condition == "projection":
            logits = logits + (self.projection(pack(one_hot, config.pack)) * x).sum(1, keepdim=True)
        classes = self.classifier(x).reshape(image.shape[0], config.num_classes) if config.classifier else None
        return logits, classes
