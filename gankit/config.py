"""Configuration dataclasses: they travel with the weights (safetensors metadata, ONNX metadata)."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gankit.errors import ConfigError
from gankit.quality import HALF

# Differentiable augmentations (``gankit.training.augment``): name -> (default magnitude, check of a
# magnitude, what the magnitude means).
AUGMENT_OPS: dict[str, tuple[float, Callable[[float], bool], str]] = {
    "translate": (1, lambda m: m == int(m) and 1 <= m <= 8, "pixels, a whole number 1..8"),
    "cutout": (8, lambda m: m == int(m) and 1 <= m <= 28, "square side in pixels, a whole number 1..28"),
    "ink": (0.5, lambda m: 0 < m <= 1, "largest fade, in (0, 1]"),
}


def check_augment(spec: Mapping[str, Any]) -> dict[str, float]:
    """Validate ``{op: magnitude}`` (None = the op's default); ConfigError names the bad entry."""
    checked = {}
    for name, magnitude in dict(spec).items():
        if name not in AUGMENT_OPS:
            raise ConfigError(f"unknown augmentation {name!r}: choose from {', '.join(AUGMENT_OPS)}")
        default, valid, meaning = AUGMENT_OPS[name]
        value = default if magnitude is None else magnitude
        if not isinstance(value, (int, float)) or not valid(float(value)):
            raise ConfigError(f"augmentation {name}={magnitude!r}: the magnitude is the {meaning}")
        checked[name] = float(value)
    return checked


def parse_augment(text: str) -> dict[str, float]:
    """'translate=1,cutout' -> {'translate': 1.0, 'cutout': 8.0} (defaults filled in); ConfigError if bad."""
    spec: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            spec[name.strip()] = float(value) if value else None
        except ValueError:
            raise ConfigError(f"augmentation {item!r}: the magnitude after '=' must be a number") from None
    return check_augment(spec)


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


def _count(name: str, value: Any) -> int:
    """``value`` as a whole number >= 0; ConfigError otherwise."""
    try:
        number = operator.index(value)
    except TypeError:
        number = -1
    if number < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
    return number


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
    - ``num_classes`` > 0 makes it class-conditional: a (num_classes, hidden[0]) table adds one learned row
      per label to layer 1's pre-activation (a per-sample bias; see ``gankit.model.Generator``); 0 (the
      default) is unconditional.

    JSON: the fields by name. Files written before ``output_activation`` and ``num_classes`` existed (config
    ``latent_dim``, ``hidden``, ``image_shape``, ``slope`` only) read as tanh and unconditional.
    """

    latent_dim: int = 100
    hidden: tuple[int, ...] = (256, 512)
    image_shape: tuple[int, int, int] = SEED_IMAGE_SHAPE
    slope: float | tuple[float, ...] = 0.2
    output_activation: str = "tanh"
    num_classes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_dim", _positive_int("latent_dim", self.latent_dim))
        object.__setattr__(self, "hidden", _sizes("hidden", self.hidden))
        object.__setattr__(self, "image_shape", _sizes("image_shape (channels, height, width)", self.image_shape, 3))
        object.__setattr__(self, "slope", _generator_slope(self.slope, self.hidden))
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {self.output_activation!r}"
            )
        object.__setattr__(self, "num_classes", _count("num_classes", self.num_classes))

    @property
    def hidden_slopes(self) -> tuple[float, ...]:
        """The LeakyReLU slope after each hidden layer, input to output (0 = ReLU, 1 = none)."""
        return self.slope if isinstance(self.slope, tuple) else (self.slope,) * len(self.hidden)

    def describe(self) -> str:
        """One line, e.g. ``100 -> 256 leaky_relu(0.2) -> 512 relu -> 784 tanh -> (1, 28, 28)``; a conditional
        generator's starts ``100 + label of 10 -> ...``."""
        steps = [f"{self.latent_dim} + label of {self.num_classes}" if self.num_classes else str(self.latent_dim)]
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
        linears = sum(fan_in * fan_out + fan_out for fan_in, fan_out in self.layer_sizes)
        return linears + self.num_classes * self.hidden[0]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeneratorConfig:
        try:
            values = json.loads(text)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"not a generator config: {text!r} ({exc})") from exc


CONDITIONINGS = ("concat", "projection")


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
    """The MLP discriminator: image (B, *image_shape) [+ labels (B,)] -> logit (B // pack, 1).

    Layers: Linear(pack * in, hidden[0]) + LeakyReLU(slope) [+ dropout] -> ... -> Linear(hidden[-1], 1), where
    ``in`` is prod(image_shape), plus num_classes with ``condition="concat"`` (the label's one-hot beside the
    pixels). ``pack`` (PacGAN) feeds ``pack`` consecutive samples to D as one input. ``minibatch_std`` (a group
    size; 0 = off) appends one feature to the first hidden layer's output: the mean over features of the
    standard deviation over each group of packs. ``condition="projection"`` adds <P onehot, h> to the logit
    (Miyato & Koyama 2018), h the last hidden activation and P a (pack * num_classes -> hidden[-1]) map.
    ``classifier`` adds an auxiliary head Linear(hidden[-1], pack * num_classes) on h that predicts each
    sample's label (AC-GAN, Odena et al. 2017), beside the conditioning.
    """

    hidden: tuple[int, ...] = (512, 256)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    slope: float = 0.2
    num_classes: int = 0
    condition: str = "projection"
    pack: int = 1
    minibatch_std: int = 0
    dropout: float = 0.0
    classifier: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _sizes("hidden", self.hidden))
        object.__setattr__(self, "image_shape", _sizes("image_shape (channels, height, width)", self.image_shape, 3))
        object.__setattr__(self, "slope", _slope(self.slope))
        object.__setattr__(self, "num_classes", _count("num_classes", self.num_classes))
        if self.condition not in CONDITIONINGS:
            raise ConfigError(f"condition must be one of {', '.join(CONDITIONINGS)}, got {self.condition!r}")
        object.__setattr__(self, "pack", _positive_int("pack", self.pack))
        object.__setattr__(self, "minibatch_std", _count("minibatch_std (group size, 0 = off)", self.minibatch_std))
        if self.minibatch_std == 1:
            raise ConfigError("minibatch_std must be a group size >= 2 (0 = off): a group of 1 has no spread")
        if self.minibatch_std and len(self.hidden) < 2:
            raise ConfigError("minibatch_std needs two or more hidden layers: its feature enters the second one")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))
        if self.classifier and not self.num_classes:
            raise ConfigError("an auxiliary classifier needs classes: num_classes > 0")

    @property
    def input_size(self) -> int:
        """Features of one sample at D's input: pixels, plus the one-hot label with ``condition="concat"``."""
        extra = self.num_classes if self.condition == "concat" else 0
        return math.prod(self.image_shape) + extra

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        widths = [self.pack * self.input_size, *self.hidden, 1]
        sizes = list(zip(widths[:-1], widths[1:]))
        if self.minibatch_std:
            sizes[1] = (sizes[1][0] + 1, sizes[1][1])
        return sizes

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
    """The training recipe. The defaults are the seed's: BCEWithLogits, Adam 2e-4, batch 64, nothing else.

    Each option below is off at its default; ``gankit.training.presets`` names tested combinations.

    - ``d_lr``: D's Adam learning rate (TTUR, Heusel et al. 2017); None = ``lr``.
    - ``label_smoothing``: one-sided: D's target for real images is 1 - label_smoothing.
    - ``augment``: differentiable augmentations applied to every image D sees, real and fake, in the D and
      the G step ({op: magnitude}, ops in ``gankit.training.augment.OPS``), each op with probability p.
      ``augment_p`` is p (the start value with ``ada_target``); ``ada_target`` > 0 steers p so that
      E[sign(D(real))] approaches the target (StyleGAN2-ADA).
    - ``aux_weight``: AC-GAN's auxiliary classification loss (needs classes): D learns to tell the digits of
      real images apart, G to make its fakes read as their labels; both losses times aux_weight.
    - ``latent_labels``: K > 0 trains an unconditional G against a D conditional on K classes, a fake's
      label being argmax(z[:K]): balanced digits from an unconditional generator (see ``gankit.train``).
    - ``r1``: R1 gamma, (gamma / 2) E||grad_x D(x_real)||^2, applied every ``r1_every`` D steps, times r1_every.
    - ``lecam``: LeCam regulariser weight (Tseng et al. 2021).
    - ``eval_every``: every K epochs, MNIST-FID and digit coverage of ``eval_samples`` samples (fixed noise),
      logged in losses.csv; ``keep_best`` keeps the generator of the best such FID as generator_best.safetensors.
    """

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
    d_lr: float | None = None
    label_smoothing: float = 0.0
    augment: dict[str, float] = field(default_factory=dict)
    augment_p: float = 0.0
    ada_target: float = 0.0
    latent_labels: int = 0
    aux_weight: float = 0.0
    r1: float = 0.0
    r1_every: int = 16
    lecam: float = 0.0
    eval_every: int = 0
    eval_samples: int = HALF  # the size the quality metrics score at
    keep_best: bool = False

    def __post_init__(self) -> None:
        self.epochs = _positive_int("epochs", self.epochs)
        self.batch_size = _positive_int("batch size", self.batch_size)
        for name in ("lr", "d_lr"):
            value = getattr(self, name)
            if not (value is None and name == "d_lr") and not 0 < value < math.inf:
                raise ConfigError(f"{name} must be positive and finite, got {value}")
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not (0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1):
            raise ConfigError(f"Adam betas must be in [0, 1), got {self.betas}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema decay must be in [0, 1) (0 = off), got {self.ema}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label smoothing must be in [0, 0.5), got {self.label_smoothing}")
        self.augment = check_augment(self.augment)
        if not 0 <= self.augment_p <= 1:
            raise ConfigError(f"augment p must be in [0, 1], got {self.augment_p}")
        if not 0 <= self.ada_target < 1:
            raise ConfigError(f"ada target must be in [0, 1) (0 = fixed p), got {self.ada_target}")
        if self.augment and self.augment_p == 0 and self.ada_target == 0:
            raise ConfigError("augmentation with p = 0 and no ada target never augments: set augment p or ada target")
        if (self.augment_p or self.ada_target) and not self.augment:
            raise ConfigError("augment p / ada target given without augmentations: name them (e.g. translate=1)")
        if not all(0 <= w < math.inf for w in (self.r1, self.lecam, self.aux_weight)):
            raise ConfigError(
                f"r1, lecam and aux weights must be >= 0 and finite, got {self.r1}, {self.lecam}, {self.aux_weight}"
            )
        self.r1_every = _positive_int("r1 every", self.r1_every)
        self.latent_labels = _count("latent labels (classes, 0 = off)", self.latent_labels)
        if self.latent_labels and self.generator.num_classes:
            raise ConfigError("latent labels are for an unconditional generator; a conditional one takes labels itself")
        if self.aux_weight and not self.label_classes:
            raise ConfigError("the auxiliary classifier needs labels: set num classes or latent labels too")
        if self.latent_labels > self.generator.latent_dim:
            raise ConfigError(
                f"latent labels {self.latent_labels} need that many latent entries; latent_dim is "
                f"{self.generator.latent_dim}"
            )
        self.eval_every = _count("eval every (epochs, 0 = off)", self.eval_every)
        self.eval_samples = _positive_int("eval samples", self.eval_samples)
        if self.eval_samples < 10:
            raise ConfigError(f"eval samples must be at least 10 (a covariance needs several), got {self.eval_samples}")
        if self.keep_best and not self.eval_every:
            raise ConfigError("keep best needs a quality measurement: set eval every (epochs) too")

    @property
    def label_classes(self) -> int:
        """Classes D is conditioned on (0 = none): the generator's, or ``latent_labels``."""
        return self.generator.num_classes or self.latent_labels

    @property
    def discriminator_lr(self) -> float:
        return self.lr if self.d_lr is None else self.d_lr
