"""Configuration dataclasses: they travel with the weights (safetensors metadata, ONNX metadata)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from gankit.errors import ConfigError


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
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if self.latent_dim <= 0 or not self.hidden or min(self.hidden) <= 0:
            raise ConfigError(f"sizes must be positive: latent_dim={self.latent_dim}, hidden={self.hidden}")
        if len(self.image_shape) != 3 or min(self.image_shape) <= 0:
            raise ConfigError(f"image_shape must be (channels, height, width), got {self.image_shape}")
        if not 0.0 <= self.slope < 1.0:
            raise ConfigError(f"slope must be in [0, 1), got {self.slope}")

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
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if not self.hidden or min(self.hidden) <= 0:
            raise ConfigError(f"hidden sizes must be positive, got {self.hidden}")

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
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ConfigError(
                f"epochs, batch size and lr must be positive (got {self.epochs}, {self.batch_size}, {self.lr})"
            )
        if not (0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1):
            raise ConfigError(f"Adam betas must be in [0, 1), got {self.betas}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema decay must be in [0, 1) (0 = off), got {self.ema}")
