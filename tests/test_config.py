"""Config dataclasses: the seed's defaults, derived sizes, JSON round trip, invalid values -> ConfigError."""

from __future__ import annotations

import json

import pytest

from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from gankit.errors import ConfigError


def test_defaults_are_the_seed() -> None:
    config = GeneratorConfig()
    assert config.layer_sizes == [(100, 256), (256, 512), (512, 784)]
    assert config.image_shape == (1, 28, 28) and config.image_size == 784 and config.slope == 0.2
    assert config.parameter_count == 100 * 256 + 256 + 256 * 512 + 512 + 512 * 784 + 784
    assert config.flops_per_sample == 2 * (100 * 256 + 256 * 512 + 512 * 784)
    assert DiscriminatorConfig().layer_sizes == [(784, 512), (512, 256), (256, 1)]
    train = TrainConfig()
    assert (train.batch_size, train.lr, train.betas, train.ema) == (64, 2e-4, (0.9, 0.999), 0.0)


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(),
        GeneratorConfig(latent_dim=7, hidden=(5,), image_shape=(3, 4, 6), slope=0.0),
        GeneratorConfig(latent_dim=20, hidden=[48, 80, 33], image_shape=[1, 10, 10], slope=0.5),
        GeneratorConfig(hidden=(8, 9, 10), image_shape=(3, 32, 32), slope=(0.2, 0.0, 1.0), output_activation="sigmoid"),
    ],
)
def test_generator_config_json_round_trip(config: GeneratorConfig) -> None:
    text = config.to_json()
    assert json.loads(text)["hidden"] == list(config.hidden)
    again = GeneratorConfig.from_json(text)
    assert again == config
    assert isinstance(again.hidden, tuple) and isinstance(again.image_shape, tuple)


def test_discriminator_config_json_round_trip() -> None:
    config = DiscriminatorConfig(hidden=[9, 3], image_shape=(3, 8, 8), slope=0.1)
    assert config.hidden == (9, 3)
    assert DiscriminatorConfig.from_json(config.to_json()) == config
    assert config.layer_sizes == [(192, 9), (9, 3), (3, 1)]


@pytest.mark.parametrize(
    "values",
    [
        {"latent_dim": 0},
        {"latent_dim": -3},
        {"latent_dim": 2.5},
        {"latent_dim": "100"},
        {"hidden": ()},
        {"hidden": (256, 0)},
        {"hidden": (256.7,)},
        {"hidden": 256},
        {"image_shape": (28, 28)},
        {"image_shape": (1, 0, 28)},
        {"image_shape": (1, 28, 28.5)},
        {"slope": float("nan")},
        {"slope": float("inf")},
        {"slope": "0.2"},
        {"slope": True},
        {"slope": ()},
        {"slope": (0.2, 0.1, 0.3)},  # three slopes for two hidden layers
        {"output_activation": "relu"},
        {"output_activation": None},
    ],
)
def test_invalid_generator_config_raises_config_error(values: dict) -> None:
    with pytest.raises(ConfigError):
        GeneratorConfig(**values)


@pytest.mark.parametrize(
    "values",
    [{"hidden": ()}, {"hidden": (-1,)}, {"image_shape": (1, 28)}, {"image_shape": (0, 28, 28)}, {"slope": 2.0}],
)
def test_invalid_discriminator_config_raises_config_error(values: dict) -> None:
    with pytest.raises(ConfigError):
        DiscriminatorConfig(**values)


@pytest.mark.parametrize(
    "values",
    [
        {"epochs": 0},
        {"epochs": 1.5},
        {"batch_size": -64},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"lr": float("inf")},
        {"betas": (1.0, 0.999)},
        {"betas": (0.5, -0.1)},
        {"ema": 1.0},
        {"ema": -0.5},
    ],
)
def test_invalid_train_config_raises_config_error(values: dict) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(**values)


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
@pytest.mark.parametrize(
    "text", ["not json", "[100, 256]", "null", '{"colour": "blue"}', '{"hidden": "abc"}', '{"hidden": [64, -1]}']
)
def test_from_json_rejects_bad_text_with_config_error(cls: type, text: str) -> None:
    with pytest.raises(ConfigError):
        cls.from_json(text)


def test_config_error_names_the_bad_value() -> None:
    with pytest.raises(ConfigError, match="latent_dim.*2.5"):
        GeneratorConfig(latent_dim=2.5)
    with pytest.raises(ConfigError, match="slope.*one per hidden layer.*0.1, 0.2"):
        GeneratorConfig(slope=[0.1, 0.2], hidden=(5,))
    with pytest.raises(ConfigError, match="output_activation.*tanh, sigmoid.*'softmax'"):
        GeneratorConfig(output_activation="softmax")


# The config text of the shipped checkpoint and ONNX export, written before activations were configurable.
SHIPPED_CONFIG_TEXT = '{"hidden": [256, 512], "image_shape": [1, 28, 28], "latent_dim": 100, "slope": 0.2}'


def test_old_config_text_reads_as_the_seed() -> None:
    assert GeneratorConfig.from_json(SHIPPED_CONFIG_TEXT) == GeneratorConfig()
    assert GeneratorConfig.from_json(SHIPPED_CONFIG_TEXT).output_activation == "tanh"


def test_slopes_per_layer() -> None:
    """Equal slopes collapse to one number (equal generators, equal configs); mixed ones stay per layer."""
    assert GeneratorConfig(slope=(0.1, 0.1)) == GeneratorConfig(slope=0.1)
    assert GeneratorConfig(slope=[0.1, 0.1]).slope == 0.1
    assert GeneratorConfig(slope=(0.3,), hidden=(4, 5, 6)).hidden_slopes == (0.3, 0.3, 0.3)
    mixed = GeneratorConfig(hidden=(4, 5, 6), slope=(0.2, 0, 1))
    assert mixed.slope == (0.2, 0.0, 1.0) and mixed.hidden_slopes == (0.2, 0.0, 1.0)
    assert json.loads(mixed.to_json())["slope"] == [0.2, 0.0, 1.0]
    assert GeneratorConfig(slope=-0.5).hidden_slopes == (-0.5, -0.5)  # LeakyReLU takes any finite slope


def test_describe_names_each_layer() -> None:
    seed = "100 -> 256 leaky_relu(0.2) -> 512 leaky_relu(0.2) -> 784 tanh -> (1, 28, 28)"
    assert GeneratorConfig().describe() == seed
    config = GeneratorConfig(latent_dim=8, hidden=(4, 5, 6), image_shape=(3, 2, 2), slope=(0.01, 0, 1))
    assert config.describe() == "8 -> 4 leaky_relu(0.01) -> 5 relu -> 6 none -> 12 tanh -> (3, 2, 2)"


def test_num_classes_round_trips_and_old_configs_without_it_load() -> None:
    config = GeneratorConfig(num_classes=10)
    assert json.loads(config.to_json())["num_classes"] == 10
    assert GeneratorConfig.from_json(config.to_json()) == config
    assert config.parameter_count == GeneratorConfig().parameter_count + 10 * 256  # the class table
    assert config.flops_per_sample == GeneratorConfig().flops_per_sample  # a gathered bias: no multiply-adds
    old = json.dumps({"latent_dim": 100, "hidden": [256, 512], "image_shape": [1, 28, 28], "slope": 0.2})
    assert GeneratorConfig.from_json(old).num_classes == 0
    with pytest.raises(ConfigError, match="num_classes must be a whole number >= 0"):
        GeneratorConfig(num_classes=2.5)


def test_discriminator_options_change_its_layer_sizes() -> None:
    assert DiscriminatorConfig(pack=2).layer_sizes == [(1568, 512), (512, 256), (256, 1)]
    assert DiscriminatorConfig(minibatch_std=4).layer_sizes == [(784, 512), (513, 256), (256, 1)]
    concat = DiscriminatorConfig(num_classes=10, condition="concat", pack=2)
    assert concat.layer_sizes[0] == (2 * 794, 512)
    assert DiscriminatorConfig(num_classes=10).layer_sizes[0] == (784, 512)  # projection: the label enters at the end
    with pytest.raises(ConfigError, match="two or more hidden layers"):
        DiscriminatorConfig(hidden=(64,), minibatch_std=4)
