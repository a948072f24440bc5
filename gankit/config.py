"""Configuration dataclasses: they travel with the weights (safetensors metadata, ONNX metadata)."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from gankit.errors import ConfigError


def _positive_int(name: str, value: Any) -> int:
    """``value`` as a positive int; ConfigError for anything else (2.5 is refused, not rounded to 2)."""
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if number <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return number


def _sizes(name: str, values: Iterable[Any], length: int | None = None) -> tuple[int, ...]:
    try:
        sizes = tuple(values)
    except TypeError:
        sizes = ()
    if not sizes or (length is not None and len(sizes) != length):
        raise ConfigError(f"{name} must be {length or 'one or more'} sizes, got {values!r}")
    return tuple(_positive_int(f"each of {name}", size) for size in sizes)


def _slope(value: Any) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"slope must be in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GeneratorConfig:
    """The MLP generator: z (B, latent_dim) -> image (B, *image_shape) in [-1, 1].

    Layers: Linear(latent_dim, hidden[0]) + LeakyReLU(slope) -> ... -> Linear(hidden[-1], prod(image_shape)) + Tanh.
    """

    latent_dim: int = 100
    hidden: tuple[int, ...] = (256, 512)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    slope: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_dim", _positive_int("latent_dim", self.latent_dim))
        object.__setattr__(self, "hidden", _sizes("hidden", self.hidden))
        object.__setattr__(self, "image_shape", _sizes("image_shape (channels, height, width)", self.image_shape, 3))
        object.__setattr__(self, "slope", _slope(self.slope))

    @property
    def image_size(self) -> int:
        return math.prod(self.image_shape)

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(in_features, out_features) of each Linear, input to output."""
        widths = [self.latent_dim, *self.hidden, self.image_size]
        return list(zip(widths[:-1], widths[1:]))

    @property
    def flops_per_sample(self) -> int:
        """Multiply-adds counted as 2 FLOPs; bias, activations and tanh are not counted."""
        return sum(2 * fan_in * fan_out for fan_in, fan_out in self.layer_sizes)

    @property
    def parameter_count(self) -> int:
        return sum(fan_in * fan_out + fan_out for fan_in, fan_out in self.layer_sizes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeneratorConfig:
        try:
            values = json.loads(text)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"not a generator config: {text!r} ({exc})") from exc


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The MLP discriminator: image (B, *image_shape) -> logit (B, 1)."""

    hidden: tuple[int, ...] = (512, 256)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    slope: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _sizes("hidden", self.hidden))
        object.__setattr__(self, "image_shape", _sizes("image_shape (channels, height, width)", self.image_shape, 3))
        object.__setattr__(self, "slope", _slope(self.slope))

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        widths = [math.prod(self.image_shape), *self.hidden, 1]
        return list(zip(widths[:-1], widths[1:]))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DiscriminatorConfig:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"not a discriminator config: {text!r} ({exc})") from exc


@dataclass
class TrainConfig:
    """The training recipe. The defaults are the seed's: BCEWithLogits, Adam 2e-4, batch 64."""

    data: str = "mnist-5k"
    data_dir: str | None = None
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    ema: float = 0.0
    seed: int = 0
    device: str = "auto"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        self.epochs = _positive_int("epochs", self.epochs)
        self.batch_size = _positive_int("batch size", self.batch_size)
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"lr must be positive and finite, got {self.lr}")
        if not (0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1):
            raise ConfigError(f"Adam betas must be in [0, 1), got {self.betas}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema decay must be in [0, 1) (0 = off), got {self.ema}")
