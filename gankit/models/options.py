"""What a generator file cannot say about itself, given by the user (``gankit import`` and every command's flags).

A state dict holds the weights, not the activations between them or the image shape; a foreign ONNX graph may
not say its output range or, when its output is flat, its image shape. Each field is None when not given; the
``resolved_*`` accessors give the seed's defaults then (LeakyReLU 0.2, tanh, 1x28x28, BatchNorm eps 1e-5,
output in [-1, 1]). ``given()`` names the fields that were set, so a file that states them itself (a gankit
checkpoint or export) can refuse flags it would otherwise silently ignore.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from gankit.config import OUTPUT_ACTIVATIONS
from gankit.errors import ConfigError

HIDDEN_ACTIVATIONS = ("leaky_relu", "relu")
OUTPUT_RANGES = ((-1.0, 1.0), (0.0, 1.0))
SEED_SLOPE = 0.2
TORCH_BN_EPS = 1e-5  # nn.BatchNorm1d's default

# Which options each kind of file takes: a state dict cannot say any of the first four; a foreign ONNX
# graph has its layers inside, but may not say its range or (flat output) its image shape.
STATE_DICT_OPTIONS = ("hidden_act", "slope", "output_act", "image_shape", "bn_eps")
ONNX_OPTIONS = ("image_shape", "output_range")


@dataclass(frozen=True)
class ImportOptions:
    """hidden_act: one activation for every hidden layer or one per layer ("leaky_relu" or "relu");
    slope: the LeakyReLU slope, one for every leaky_relu layer or one per hidden layer; output_act: "tanh"
    or "sigmoid"; image_shape: (C, H, W); bn_eps: BatchNorm1d's eps (a state dict does not store it;
    PyTorch-GAN's gan.py passes 0.8); output_range: a foreign ONNX graph's output range, (-1, 1) or (0, 1)."""

    hidden_act: tuple[str, ...] | None = None
    slope: tuple[float, ...] | None = None
    output_act: str | None = None
    image_shape: tuple[int, int, int] | None = None
    bn_eps: float | None = None
    output_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.hidden_act is not None:
            object.__setattr__(self, "hidden_act", tuple(self.hidden_act))
            bad = [name for name in self.hidden_act if name not in HIDDEN_ACTIVATIONS]
            if bad or not self.hidden_act:
                choices = ", ".join(HIDDEN_ACTIVATIONS)
                raise ConfigError(f"hidden activation must be one of {choices}, got {bad or '()'}")
        if self.slope is not None:
            object.__setattr__(self, "slope", tuple(float(s) for s in self.slope))
            if not self.slope or not all(math.isfinite(s) for s in self.slope):
                raise ConfigError(f"slope must be one or more finite numbers, got {self.slope}")
        if self.output_act is not None and self.output_act not in OUTPUT_ACTIVATIONS:
            choices = ", ".join(OUTPUT_ACTIVATIONS)
            raise ConfigError(f"output activation must be one of {choices}, got {self.output_act!r}")
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
                raise ConfigError(f"image shape must be three positive sizes C,H,W, got {self.image_shape}")
            object.__setattr__(self, "image_shape", shape)
        if self.bn_eps is not None and not (math.isfinite(self.bn_eps) and self.bn_eps > 0):
            raise ConfigError(f"BatchNorm eps must be positive and finite, got {self.bn_eps}")
        if self.output_range is not None:
            object.__setattr__(self, "output_range", tuple(float(v) for v in self.output_range))
            if self.output_range not in OUTPUT_RANGES:
                raise ConfigError(f"output range must be -1,1 or 0,1, got {self.output_range}")

    def given(self) -> list[str]:
        """The names of the options that were set."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def hidden_slopes(self, hidden_layers: int) -> tuple[float, ...]:
        """The LeakyReLU slope of each hidden layer: relu is 0; leaky_relu takes ``slope`` (default 0.2)."""
        acts = self._per_layer("hidden activation", self.hidden_act or ("leaky_relu",), hidden_layers)
        slopes = self._per_layer("slope", self.slope or (SEED_SLOPE,), hidden_layers)
        if self.slope is not None and "leaky_relu" not in acts:
            raise ConfigError("a slope was given, but no hidden layer is leaky_relu (relu has no slope)")
        return tuple(0.0 if act == "relu" else slope for act, slope in zip(acts, slopes))

    @property
    def resolved_output_act(self) -> str:
        return self.output_act or "tanh"

    @property
    def resolved_bn_eps(self) -> float:
        return TORCH_BN_EPS if self.bn_eps is None else self.bn_eps

    @staticmethod
    def _per_layer(name: str, values: tuple, layers: int) -> tuple:
        if len(values) == 1:
            return values * layers
        if len(values) != layers:
            raise ConfigError(f"{len(values)} values of {name} for {layers} hidden layers: give one, or one a layer")
        return values
