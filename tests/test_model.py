"""Generator and Discriminator: the seed's layers by default, configurable sizes, shapes and ranges."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import DiscriminatorConfig, GeneratorConfig
from gankit.model import Discriminator, Generator


def _seed_generator_reference() -> nn.Sequential:
    """The seed's generator, written out layer by layer."""
    return nn.Sequential(
        nn.Linear(100, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 512),
        nn.LeakyReLU(0.2),
        nn.Linear(512, 784),
        nn.Tanh(),
    )


def _seed_discriminator_reference() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1)
    )


def _copy_linears(source: nn.Module, target: nn.Sequential) -> None:
    linears = [m for m in target if isinstance(m, nn.Linear)]
    assert len(linears) == len(source.layers)
    with torch.no_grad():
        for mine, theirs in zip(source.layers, linears):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)


def test_default_generator_is_the_seed(seed_generator: Generator) -> None:
    shapes = [(layer.in_features, layer.out_features) for layer in seed_generator.layers]
    assert shapes == [(100, 256), (256, 512), (512, 784)]
    assert all(isinstance(layer, nn.Linear) and layer.bias is not None for layer in seed_generator.layers)
    reference = _seed_generator_reference()
    _copy_linears(seed_generator, reference)
    z = torch.randn(16, 100)
    with torch.no_grad():
        out = seed_generator(z)
        assert out.shape == (16, 1, 28, 28) and out.dtype == torch.float32
        torch.testing.assert_close(out.flatten(1), reference(z), rtol=0, atol=1e-6)


def test_default_discriminator_is_the_seed() -> None:
    torch.manual_seed(0)
    discriminator = Discriminator()
    shapes = [(layer.in_features, layer.out_features) for layer in discriminator.layers]
    assert shapes == [(784, 512), (512, 256), (256, 1)]
    reference = _seed_discriminator_reference()
    _copy_linears(discriminator, reference)
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        logits = discriminator(images)
        assert logits.shape == (8, 1)
        torch.testing.assert_close(logits, reference(images.flatten(1)), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("config", "batch"),
    [
        (GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10)), 5),
        (GeneratorConfig(latent_dim=3, hidden=(7,), image_shape=(3, 4, 6), slope=0.0), 1),
        (GeneratorConfig(latent_dim=16, hidden=(32, 64, 128), image_shape=(2, 8, 8), slope=0.5), 33),
    ],
)
def test_configurable_sizes(config: GeneratorConfig, batch: int) -> None:
    torch.manual_seed(0)
    generator = Generator(config)
    assert [(m.in_features, m.out_features) for m in generator.layers] == config.layer_sizes
    assert sum(p.numel() for p in generator.parameters()) == config.parameter_count
    with torch.no_grad():
        images = generator(torch.randn(batch, config.latent_dim) * 10)
    assert images.shape == (batch, *config.image_shape)
    assert images.min() >= -1 and images.max() <= 1
    discriminator = Discriminator(DiscriminatorConfig(hidden=(9, 5), image_shape=config.image_shape))
    assert discriminator(images).shape == (batch, 1)


def test_generator_uses_the_configured_slope() -> None:
    config = GeneratorConfig(latent_dim=4, hidden=(6,), image_shape=(1, 2, 2), slope=0.3)
    torch.manual_seed(0)
    generator = Generator(config)
    z = torch.randn(5, 4)
    first, last = generator.layers
    expected = torch.tanh(last(F.leaky_relu(first(z), 0.3))).view(5, 1, 2, 2)
    torch.testing.assert_close(generator(z), expected, rtol=0, atol=0)


def test_generator_per_layer_slopes_and_sigmoid_output() -> None:
    """Hidden layer i uses its own slope (0 is ReLU, 1 no activation); sigmoid output is 2 * sigmoid - 1."""
    config = GeneratorConfig(4, (6, 5, 7), (3, 2, 2), slope=(0.1, 0.0, 1.0), output_activation="sigmoid")
    torch.manual_seed(0)
    generator = Generator(config)
    z = torch.randn(9, 4) * 5
    a, b, c, d = generator.layers
    expected = 2 * torch.sigmoid(d(c(F.relu(b(F.leaky_relu(a(z), 0.1)))))) - 1
    torch.testing.assert_close(generator(z), expected.view(9, 3, 2, 2), rtol=0, atol=0)
    assert generator(z * 100).min() >= -1 and generator(z * 100).max() <= 1
