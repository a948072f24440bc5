"""Flags and helpers every command shares: what a model argument may be, the import options, --force, lists."""

from __future__ import annotations

import argparse
import sys

from gankit.config import OUTPUT_ACTIVATIONS
from gankit.errors import ConfigError

FORCE_HELP = "replace what --out already holds (without it an existing result is refused; docs/sampling-safety.md)"

FOREIGN_FILES = (
    "a gankit .safetensors, a state dict from elsewhere (torch.save .pt/.pth or .safetensors, converted on the "
    "fly: gankit import saves the conversion), or 'conditional' (the bundled class-conditional generator)"
)


def add_import_flags(p: argparse.ArgumentParser, onnx: bool = True) -> None:
    """The flags that say what a foreign file cannot (defaults: the seed's); see gankit.models.options."""
    q = p.add_argument_group(
        "generators from elsewhere",
        "what a state dict" + (" or a foreign ONNX graph" if onnx else "") + " cannot say; defaults are the seed's",
    )
    q.add_argument(
        "--hidden-act",
        default=None,
        metavar="ACT",
        help="activation after each hidden Linear: leaky_relu or relu, or one per layer (relu,leaky_relu) [leaky_relu]",
    )
    q.add_argument("--slope", default=None, help="LeakyReLU slope, or one per hidden layer (0.2,0.1) [0.2]")
    q.add_argument("--output-act", default=None, choices=OUTPUT_ACTIVATIONS, help="[tanh]")
    q.add_argument(
        "--image-shape", default=None, metavar="C,H,W", help="image shape of the last layer's output [1,28,28]"
    )
    q.add_argument(
        "--bn-eps",
        type=float,
        default=None,
        help="BatchNorm1d eps (a state dict does not store it; PyTorch-GAN's gan.py uses 0.8) [1e-5]",
    )
    if onnx:
        q.add_argument(
            "--output-range",
            default=None,
            choices=["-1,1", "0,1"],
            help="a foreign ONNX graph's output range; 0,1 is mapped to [-1, 1] (write --output-range=-1,1) [-1,1]",
        )


def import_options_from(args: argparse.Namespace):
    """ImportOptions from the shared flags (None where a flag was not given)."""
    from gankit.models import ImportOptions

    shape = parse_list(args.image_shape, int) if args.image_shape else None
    if shape is not None and len(shape) != 3:
        raise ConfigError(f"--image-shape takes C,H,W (three sizes), got {args.image_shape!r}")
    output_range = getattr(args, "output_range", None)
    return ImportOptions(
        hidden_act=parse_list(args.hidden_act) if args.hidden_act else None,
        slope=parse_list(args.slope, float) if args.slope else None,
        output_act=args.output_act,
        image_shape=tuple(shape) if shape else None,
        bn_eps=args.bn_eps,
        output_range=tuple(parse_list(output_range, float)) if output_range else None,
    )


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_list(text: str, kind: type = str) -> list:
    """'a,b' -> ['a', 'b'] (``kind`` applied to each); ConfigError naming the text when an item does not parse."""
    try:
        items = [kind(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a comma-separated list of {kind.__name__}") from None
    if not items:
        raise ConfigError(f"{text!r} is an empty list")
    return items


def int8_options_from(args: argparse.Namespace):
    """Int8Options from the --int8-* flags; None when none was given (the export's default then)."""
    from gankit.onnx.quantize import Int8Options, parse_layers

    given = {
        "mode": args.int8_mode,
        "per_channel": None if args.int8_per_tensor is None else not args.int8_per_tensor,
        "weights": args.int8_weights,
        "activations": args.int8_activations,
        "keep_fp32": parse_layers(args.int8_keep_fp32) if args.int8_keep_fp32 is not None else None,
        "calibration": args.calibration,
        "calibration_samples": args.calibration_samples,
    }
    given = {key: value for key, value in given.items() if value is not None}
    return Int8Options(**given) if given else None
