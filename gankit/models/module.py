"""``from_module``: an MLP generator built from torch.nn layers -> an equal gankit Generator.

The walk visits the module's registered leaf submodules in registration order (through nn.Sequential,
nn.ModuleList and custom containers alike) and reads:

- nn.Linear: a layer (no bias: bias 0); nn.BatchNorm1d right after a Linear: folded into it with the
  module's own eps and running statistics (``gankit.models.chain.fold_batchnorm``);
- after a hidden Linear: nn.LeakyReLU (its slope), nn.ReLU (slope 0) or nothing (slope 1); after the last:
  nn.Tanh or nn.Sigmoid (mapped to 2y - 1, see ``gankit.config.GeneratorConfig``);
- nn.Identity and nn.Dropout: nothing in eval mode; nn.Unflatten / nn.Flatten after the last Linear: the
  reshape. The image shape is read from the module's own output on a probe batch.

Anything else (a convolution, an unknown layer, a container with parameters of its own) is refused with
its path. A forward written as custom code may do what the walk cannot see (skip or reuse a layer, add
something), so the Generator is checked against the module's own forward, both in float64, on a probe
batch: it must agree within ``gankit.tolerances.IMPORT_VERIFY`` or the conversion is refused.

The module is converted as in eval mode (BatchNorm from running statistics, Dropout off): the walk and the
probe use a float64 copy of it in eval mode; the module itself is not changed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch
from torch import nn

from gankit.errors import ConversionError
from gankit.model import Generator
from gankit.models.chain import Linear, build_generator, fold_batchnorm
from gankit.tolerances import IMPORT_VERIFY

PROBE_BATCH = 64
PROBE_SEED = 0
SUPPORTED = "Linear, BatchNorm1d, LeakyReLU, ReLU, Tanh, Sigmoid, Identity, Dropout, Unflatten"
CONVOLUTIONS = (nn.modules.conv._ConvNd,)
SKIPPED = (nn.Identity, nn.Dropout)
RESHAPES = (nn.Unflatten, nn.Flatten)
HIDDEN = {nn.LeakyReLU: lambda m: float(m.negative_slope), nn.ReLU: lambda m: 0.0}
OUTPUT = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def _leaves(module: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """(path, module) of every leaf submodule, in registration order; ConversionError for a container that
    holds parameters or buffers of its own (the walk could not place them)."""
    children = list(module.named_children())
    if not children:
        return [(path, module)]
    own = [name for name, _ in module.named_parameters(recurse=False)]
    own += [name for name, _ in module.named_buffers(recurse=False)]
    if own:
        raise ConversionError(
            f"{path} ({type(module).__name__}) holds {', '.join(own)} besides its submodules: the walk over "
            f"layers ({SUPPORTED}) cannot place them"
        )
    leaves = []
    for name, child in children:
        leaves.extend(_leaves(child, f"{path}.{name}" if path else name))
    return leaves


class _Walk:
    """The state of the walk: the Linears so far, each one's activation, and where each came from."""

    def __init__(self) -> None:
        self.linears: list[Linear] = []
        self.activations: list[tuple[str, float | str] | None] = []  # (path, slope or output name) per Linear
        self.reshaped: str | None = None

    def step(self, path: str, layer: nn.Module) -> None:
        kind = type(layer).__name__
        if isinstance(layer, nn.Linear):
            if self.reshaped:
                raise ConversionError(f"{path} (Linear) comes after the reshape {self.reshaped}: gankit reshapes last")
            bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
            self.linears.append(Linear(path, layer.weight.detach().double(), bias.detach().double()))
            self.activations.append(None)
        elif isinstance(layer, CONVOLUTIONS):
            raise ConversionError(f"{path} is a convolution layer ({kind}): gankit takes MLP generators ({SUPPORTED})")
        elif isinstance(layer, SKIPPED):
            pass
        elif isinstance(layer, RESHAPES):
            self.reshaped = path
        elif not self.linears:
            raise ConversionError(f"{path} ({kind}) comes before any Linear: gankit generators start with a Linear")
        elif isinstance(layer, nn.BatchNorm1d):
            self._batchnorm(path, layer)
        elif type(layer) in HIDDEN or type(layer) in OUTPUT:
            if self.activations[-1] is not None:
                before, linear = self.activations[-1][0], self.linears[-1].name
                raise ConversionError(f"{path} ({kind}) follows {before}, another activation of {linear}")
            value = HIDDEN[type(layer)](layer) if type(layer) in HIDDEN else OUTPUT[type(layer)]
            self.activations[-1] = (path, value)
        else:
            raise ConversionError(f"{path} is a {kind}: gankit imports MLP generators ({SUPPORTED})")

    def _batchnorm(self, path: str, layer: nn.BatchNorm1d) -> None:
        last = self.linears[-1]
        if self.activations[-1] is not None or last.batchnorm is not None:
            between = self.activations[-1][0] if self.activations[-1] else last.batchnorm
            raise ConversionError(
                f"{path} (BatchNorm1d) does not follow a Linear directly ({between} comes between): gankit folds "
                f"BatchNorm into the Linear before it ({last.name})"
            )
        if layer.running_mean is None or layer.running_var is None:
            raise ConversionError(
                f"{path} (BatchNorm1d) has no running statistics (track_running_stats=False): it normalises each "
                "batch by itself, which no fixed layer equals"
            )
        stats = [layer.running_mean, layer.running_var, layer.weight, layer.bias]
        mean, var, gamma, beta = (None if t is None else t.detach().double() for t in stats)
        self.linears[-1] = fold_batchnorm(last, path, mean, var, gamma, beta, layer.eps)

    def slopes_and_output(self) -> tuple[tuple[float, ...], str]:
        if not self.linears:
            raise ConversionError(f"found no Linear layer: gankit takes MLP generators ({SUPPORTED})")
        slopes = []
        for linear, activation in zip(self.linears[:-1], self.activations[:-1]):
            if activation is not None and isinstance(activation[1], str):
                raise ConversionError(
                    f"{activation[0]} ({activation[1]}) follows the hidden layer {linear.name}: gankit's hidden "
                    "layers take LeakyReLU, ReLU or no activation"
                )
            slopes.append(1.0 if activation is None else activation[1])
        last = self.activations[-1]
        if last is None or not isinstance(last[1], str):
            found = "nothing" if last is None else f"{last[0]} (an activation of hidden layers)"
            raise ConversionError(
                f"the last Linear ({self.linears[-1].name}) is followed by {found}: gankit generators end in Tanh "
                "or Sigmoid"
            )
        return tuple(slopes), last[1]


def _check_output(output: object, outputs: int) -> torch.Tensor:
    """The probe's output as (PROBE_BATCH, outputs); ConversionError when it is not images of that size."""
    if not isinstance(output, torch.Tensor) or output.shape[0] != PROBE_BATCH or output[0].numel() != outputs:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConversionError(
            f"the module's forward made {shape} from z ({PROBE_BATCH}, latent), not {PROBE_BATCH} images of the "
            f"last Linear's {outputs} values: it does something the walk over its layers cannot see"
        )
    return output.reshape(PROBE_BATCH, outputs)


def _image_shape(output: torch.Tensor, outputs: int, image_shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
    shape = tuple(output.shape[1:])
    found = shape if len(shape) == 3 else (1, *shape) if len(shape) == 2 else None
    if image_shape is not None:
        if math.prod(image_shape) != outputs or (found is not None and tuple(image_shape) != found):
            raise ConversionError(f"image_shape {tuple(image_shape)} does not fit the module's output {shape}")
        return tuple(image_shape)
    if found is None:
        raise ConversionError(f"the module's output is flat ({outputs} values a sample): pass image_shape=(C, H, W)")
    return found


def from_module(module: nn.Module, image_shape: tuple[int, int, int] | None = None) -> Generator:
    """An MLP generator module -> a gankit Generator computing the same images (see the module docstring).

    module: any nn.Module whose registered leaves are the supported layers, taking z (B, latent) float;
    image_shape: (C, H, W), needed only when the module's output is flat (B, C*H*W).
    Returns a Generator in eval mode, float64 when the module is float64 and float32 otherwise: its output
    equals the module's (in eval mode) on the same z, within float32 rounding when BatchNorm was folded and
    bit for bit otherwise; a sigmoid module's y is 2y - 1 here (gankit's images are in [-1, 1]).
    Raises ConversionError naming the layer (and its path) it cannot take, or when the module's forward
    does something its layers do not show.
    """
    if not isinstance(module, nn.Module):
        raise ConversionError(f"from_module takes a torch.nn.Module, got {type(module).__name__}")
    reference = copy.deepcopy(module).to("cpu", torch.float64).eval()
    walk = _Walk()
    for path, layer in _leaves(reference, ""):
        walk.step(path or type(reference).__name__, layer)
    slopes, output_activation = walk.slopes_and_output()
    latent, outputs = walk.linears[0].shape[1], walk.linears[-1].shape[0]
    z = torch.randn(PROBE_BATCH, latent, generator=torch.Generator().manual_seed(PROBE_SEED), dtype=torch.float64)
    try:
        with torch.no_grad():
            output = reference(z)
    except Exception as exc:  # a forward is arbitrary user code: any failure means "cannot check it"
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConversionError(
            f"the module's forward failed on a probe batch z ({PROBE_BATCH}, {latent}) float64: "
            f"{type(exc).__name__}: {first}"
        ) from exc
    expected = _check_output(output, outputs)
    if output_activation == "sigmoid":
        expected = 2 * expected - 1  # gankit's convention: the module's y in [0, 1] is 2y - 1 here
    flat = build_generator(walk.linears, slopes, output_activation, (1, 1, outputs), torch.float64)
    with torch.no_grad():
        difference = (flat(z).reshape(PROBE_BATCH, outputs) - expected).abs().max().item()
    if not difference <= IMPORT_VERIFY:
        raise ConversionError(
            f"the module's own forward differs from its layers in order ({difference:.3g} max on a probe batch, "
            f"in float64; tolerance {IMPORT_VERIFY:g}): it does something the walk over "
            f"{', '.join(linear.name for linear in walk.linears)} cannot see"
        )
    config = replace(flat.config, image_shape=_image_shape(output, outputs, image_shape))
    generator = Generator(config).to(torch.float64 if _dtype(module) == torch.float64 else torch.float32)
    generator.load_state_dict(flat.state_dict())  # one rounding of the float64 (folded) weights, if to fp32
    return generator.eval()


def _dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters()), torch.float32)
