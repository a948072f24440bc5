"""Generator and Discriminator: the seed's layers by default, configurable sizes, shapes and ranges."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import DiscriminatorConfig, GeneratorConfig
from gankit.model import Discriminator, Generator, minibatch_std, pack


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


COND = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10), num_classes=10)


def test_conditional_generator_equals_the_concatenated_one_hot_formulation() -> None:
    torch.manual_seed(5)
    generator = Generator(COND).eval()
    torch.manual_seed(5)
    _ = [nn.Linear(i, o) for i, o in COND.layer_sizes]  # the layers come first, then the joint Linear
    joint = nn.Linear(20 + 10, 48)  # what layer 1 and the class table were split from
    torch.testing.assert_close(generator.layers[0].weight, joint.weight[:, :20], rtol=0, atol=0)
    torch.testing.assert_close(generator.class_bias, joint.weight[:, 20:].T, rtol=0, atol=0)
    assert generator.class_bias.shape == (10, 48)
    linears = {f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert set(generator.state_dict()) == {"class_bias", *linears}
    assert sum(p.numel() for p in generator.parameters()) == COND.parameter_count

    reference = nn.Sequential(
        nn.Linear(30, 48), nn.LeakyReLU(0.2), nn.Linear(48, 80), nn.LeakyReLU(0.2), nn.Linear(80, 100), nn.Tanh()
    )
    with torch.no_grad():
        reference[0].weight.copy_(torch.cat([generator.layers[0].weight, generator.class_bias.T], 1))
        reference[0].bias.copy_(generator.layers[0].bias)
        for mine, theirs in zip(generator.layers[1:], (reference[2], reference[4])):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        z, labels = torch.randn(13, 20), torch.randint(0, 10, (13,))
        expected = reference(torch.cat([z, F.one_hot(labels, 10).float()], 1)).view(13, 1, 10, 10)
        # the two sum the same terms in a different order: fp32 rounding of a 30-term dot product
        torch.testing.assert_close(generator(z, labels), expected, rtol=0, atol=1e-6)


def test_the_label_changes_the_image_and_nothing_else_does() -> None:
    torch.manual_seed(6)
    generator = Generator(COND).eval()
    z = torch.randn(1, 20).expand(10, 20)
    with torch.no_grad():
        images = generator(z, torch.arange(10)).flatten(1)
        again = generator(z, torch.arange(10)).flatten(1)
    assert torch.equal(images, again)
    distances = torch.cdist(images, images)
    assert (distances + torch.eye(10)).min() > 1e-3  # ten labels, ten different images of one z


def test_conditional_and_unconditional_generators_check_their_labels() -> None:
    conditional, unconditional = Generator(COND), Generator(SMALL)
    with pytest.raises(ValueError, match="conditional on 10 classes: pass labels of shape \\(4,\\)"):
        conditional(torch.randn(4, 20))
    with pytest.raises(ValueError, match="got \\(3,\\)"):
        conditional(torch.randn(4, 20), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(torch.randn(4, 20), torch.zeros(4, dtype=torch.long))


SMALL = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10))


def test_pack_groups_consecutive_samples() -> None:
    x = torch.arange(24.0).view(6, 4)
    packed = pack(x, 3)
    assert packed.shape == (2, 12)
    assert torch.equal(packed[0], torch.cat([x[0], x[1], x[2]]))
    assert torch.equal(packed[1], torch.cat([x[3], x[4], x[5]]))
    with pytest.raises(ValueError, match="batch of 6 cannot be split into packs of 4"):
        pack(x, 4)


def test_packed_discriminator_judges_each_pack_as_one_input() -> None:
    torch.manual_seed(7)
    d = Discriminator(DiscriminatorConfig(hidden=(16, 8), image_shape=(1, 4, 4), pack=2)).eval()
    assert d.layers[0].in_features == 32
    images = torch.rand(6, 1, 4, 4)
    logits = d(images)
    assert logits.shape == (3, 1)
    with torch.no_grad():
        alone = d(images[2:4])  # pack 1 on its own: same logit
        swapped = d(images[[0, 1, 4, 5, 2, 3]])  # packs reordered: logits reordered
        inside = d(images[[1, 0, 2, 3, 4, 5]])  # two samples of pack 0 swapped: pack 0 is another input
    torch.testing.assert_close(alone[0], logits[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(swapped, logits[[0, 2, 1]], rtol=0, atol=1e-6)
    assert not torch.allclose(inside[0], logits[0]) and torch.allclose(inside[1:], logits[1:], atol=1e-6)


def test_minibatch_std_by_hand() -> None:
    h = torch.tensor([[0.0, 2.0], [1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    out = minibatch_std(h, 2)  # groups strided: rows {0, 2} and {1, 3}
    # group {0, 2}: std of (0, 2) = 1, of (2, 2) = 0 -> 0.5; group {1, 3}: std (1, 3) = 1, (0, 4) = 2 -> 1.5
    expected = torch.tensor([[0.5], [1.5], [0.5], [1.5]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)  # the 1e-8 under the root
    assert minibatch_std(h[:3], 2).shape == (3, 1)  # gcd(2, 3) = 1: one group each, no spread
    torch.testing.assert_close(minibatch_std(h[:3], 2), torch.full((3, 1), 1e-4), rtol=0, atol=1e-6)


def test_minibatch_std_discriminator_sees_the_other_samples_of_its_group() -> None:
    torch.manual_seed(8)
    d = Discriminator(DiscriminatorConfig(hidden=(16, 8), image_shape=(1, 4, 4), minibatch_std=2)).eval()
    assert [(m.in_features, m.out_features) for m in d.layers] == [(16, 16), (17, 8), (8, 1)]
    images = torch.rand(4, 1, 4, 4)
    logits = d(images)
    changed = images.clone()
    changed[2] = torch.rand(1, 4, 4)  # same group as sample 0 (strided groups {0, 2}, {1, 3})
    again = d(changed)
    assert not torch.allclose(again[0], logits[0]) and torch.allclose(again[[1, 3]], logits[[1, 3]], atol=1e-6)


@pytest.mark.parametrize("condition", ["projection", "concat"])
def test_conditional_discriminator_takes_labels(condition: str) -> None:
    torch.manual_seed(9)
    config = DiscriminatorConfig(hidden=(16, 8), image_shape=(1, 4, 4), num_classes=3, condition=condition, pack=2)
    d = Discriminator(config).eval()
    images = torch.rand(4, 1, 4, 4)
    a, b = d(images, torch.tensor([0, 1, 2, 0])), d(images, torch.tensor([0, 1, 1, 0]))
    assert a.shape == (2, 1) and not torch.allclose(a[1], b[1]) and torch.allclose(a[0], b[0])
    assert d.layers[0].in_features == 2 * (16 + (3 if condition == "concat" else 0))
    with pytest.raises(ValueError, match="labels must be given"):
        d(images)


def test_conditional_generator_file_round_trip(tmp_path) -> None:
    from gankit.checkpoint import load_generator, save_generator

    torch.manual_seed(10)
    generator = Generator(COND).eval()
    save_generator(tmp_path / "g.safetensors", generator)
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.config == COND
    z, labels = torch.randn(4, 20), torch.tensor([0, 3, 9, 3])
    with torch.no_grad():
        assert torch.equal(loaded(z, labels), generator(z, labels))


def test_auxiliary_classifier_gives_class_logits_per_sample() -> None:
    torch.manual_seed(11)
    config = DiscriminatorConfig(hidden=(16, 8), image_shape=(1, 4, 4), num_classes=3, pack=2, classifier=True)
    d = Discriminator(config).eval()
    images, labels = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    logits, classes = d.classify(images, labels)
    assert logits.shape == (2, 1) and classes.shape == (4, 3)
    torch.testing.assert_close(d(images, labels), logits, rtol=0, atol=0)
    # row j*pack + i of the class logits is pack member i's slice of the head applied to pack j
    hidden = d.classify(images[:2], labels[:2])[1]
    torch.testing.assert_close(hidden, classes[:2], rtol=0, atol=1e-6)
    assert Discriminator(DiscriminatorConfig(num_classes=3)).classify(torch.rand(2, 1, 28, 28), labels[:2])[1] is None
