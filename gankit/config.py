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


def _generator_slope(value: Any, hidden: tuple[int, ...]) -> float | tuple[float, ...]:
    """One finite slope, or one per hidden layer; a tuple of equal slopes becomes that one number."""
    slopes = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(slopes) not in (1, len(hidden)) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in slopes
    ):
        raise ConfigError(f"slope must be one finite number or one per hidden layer ({len(hidden)}), got {value!r}")
    return float(slopes[0]) if len(set(slopes)) == 1 else tuple(float(s) for s in slopes)


OUTPUT_ACTIVATIONS = ("tanh", "sigmoid")
SEED_IMAGE_SHAPE = (1, 28, 28)


def hidden_activation_name(slope: float) -> str:
    """How a hidden layer's LeakyReLU slope reads: ``relu`` (0), ``none`` (1), else ``leaky_relu(s)``."""
    return {0.0: "relu", 1.0: "none"}.get(slope, f"leaky_relu({slope:g})")


@dataclass(frozen=True)
class GeneratorConfig:
    """The MLP generator: z (B, latent_dim) -> image (B, *image_shape) in [-1, 1].

    Layers: Linear(latent_dim, hidden[0]) + LeakyReLU(slope_0) -> ... -> Linear(hidden[-1], prod(image_shape))
    + the output activation. Any depth (one or more hidden layers) and any image shape (C, H, W).

    - ``slope``: the LeakyReLU negative slope after each hidden layer: one number for all of them (the
      seed's 0.2), or a tuple with one per hidden layer. 0 is ReLU and 1 is no activation, exactly
      (``leaky_relu(x, 0)`` equals ``relu(x)``, ``leaky_relu(x, 1)`` is ``x``), which is how imported
      ReLU and Identity layers are stored. A tuple of equal slopes is stored as the one number, so equal
      generators have equal configs; ``hidden_slopes`` always gives one a layer.
    - ``output_activation``: ``"tanh"`` (the seed's) or ``"sigmoid"``. gankit's images are in [-1, 1] end
      to end (pixels, uint8 conversion, metrics), so a sigmoid generator's y = sigmoid(x) in [0, 1] is
      mapped to 2y - 1 inside the model itself: ``Generator.forward``, every backend and the exported
      ONNX graph output 2 * sigmoid(x) - 1. To get the original [0, 1] image back: (image + 1) / 2.

    JSON: the fields by name. Files written before ``output_activation`` existed (config ``latent_dim``,
    ``hidden``, ``image_shape``, ``slope`` only; the shipped checkpoint and ONNX export) read as tanh.
    """

    latent_dim: int = 100
    hidden: tuple[int, ...] = (256, 512)
    image_shape: tuple[int, int, int] = SEED_IMAGE_SHAPE
    slope: float | tuple[float, ...] = 0.2
    output_activation: str = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_dim", _positive_int("latent_dim", self.latent_dim))
        object.__setattr__(self, "hidden", _sizes("hidden", self.hidden))
        object.__setattr__(self, "image_shape", _sizes("image_shape (channels, height, width)", self.image_shape, 3))
        object.__setattr__(self, "slope", _generator_slope(self.slope, self.hidden))
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {self.output_activation!r}"
            )

    @property
    def hidden_slopes(self) -> tuple[float, ...]:
        """The LeakyReLU slope after each hidden layer, input to output (0 = ReLU, 1 = none)."""
        return self.slope if isinstance(self.slope, tuple) else (self.slope,) * len(self.hidden)

    def describe(self) -> str:
        """One line, e.g. ``100 -> 256 leaky_relu(0.2) -> 512 relu -> 784 tanh -> (1, 28, 28)``."""
        steps = [str(self.latent_dim)]
        for width, slope in zip(self.hidden, self.hidden_slopes):
            steps.append(f"{width} {hidden_activation_name(slope)}")
        steps.append(f"{self.image_size} {self.output_activation}")
        return " -> ".join(steps) + f" -> {self.image_shape}"

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
        """Multiply-adds counted as 2 FLOPs; bias and activations are not counted."""
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
class OnnxGeneratorConfig:
    """A generator known only as an ONNX graph made elsewhere (``gankit.onnx.graph``): what gankit runs it by.

    latent_dim and image_shape (C, H, W) come from the graph's input and output (or the user's image shape
    when its output is flat); output_range is the graph's own, (-1, 1) or (0, 1): backends map (0, 1) to
    [-1, 1] as 2y - 1, gankit's convention. flops_per_sample (2 * in * out for each MatMul/Gemm with a 2-D
    weight initializer) and parameter_count (the elements of its initializers) are counted from the graph.
    """

    latent_dim: int
    image_shape: tuple[int, int, int]
    output_range: tuple[float, float]
    flops_per_sample: int
    parameter_count: int

    @property
    def image_size(self) -> int:
        return math.prod(self.image_shape)

    def describe(self) -> str:
        low, high = self.output_range
        return f"ONNX graph: {self.latent_dim} -> {self.image_shape}, output in [{low:g}, {high:g}]"

    def to_json(self) -> str:
        return json.dumps({"onnx_graph": asdict(self)}, sort_keys=True)


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
