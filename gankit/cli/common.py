"""Flags and helpers every command shares: what a model argument may be, the flag groups several commands take
(runtime, import, int8), --force, lists, and ``default``: each default comes from the library's dataclass or
function that owns it, so --help shows what the library does."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from typing import Any

from gankit.errors import ConfigError

FORCE_HELP = "replace what --out already holds (without it an existing result is refused; docs/sampling-safety.md)"

FOREIGN_FILES = (
    "a gankit .safetensors, a state dict from elsewhere (torch.save .pt/.pth or .safetensors, converted on the "
    "fly: gankit import saves the conversion), or 'conditional' (the bundled class-conditional generator)"
)


def default(owner: Any, name: str) -> Any:
    """The default of ``owner``'s dataclass field or function parameter ``name``; ``a.b`` reaches into the field
    of a nested dataclass (``generator.hidden`` of ``TrainConfig``). Parsers read owners from modules that do not
    import torch (gankit --help must not)."""
    first, *rest = name.split(".")
    if dataclasses.is_dataclass(owner):
        found = {f.name: f for f in dataclasses.fields(owner)}[first]
        value = found.default if found.default_factory is dataclasses.MISSING else found.default_factory()
    else:
        value = inspect.signature(owner).parameters[first].default
    if value in (dataclasses.MISSING, inspect.Parameter.empty):
        raise TypeError(f"{owner.__name__}.{first} has no default")
    for part in rest:
        value = getattr(value, part)
    return value


def shown(value: Any, sep: str = ",") -> str:
    """A value as --help writes it: floats short (0.0002, 1e-5), a sequence joined by ``sep``."""
    if isinstance(value, (tuple, list)):
        return sep.join(shown(item, sep) for item in value)
    if isinstance(value, float):
        return re.sub(r"e([+-])0(?=\d)", r"e\1", f"{value:g}")
    return str(value)


def add_runtime_flags(p: argparse.ArgumentParser, owner: Any, **sentences: str) -> None:
    """The flags that say what runs a generator: --backend, --precision, --batch-size, --device, --compile-mode,
    those named in ``sentences`` (in that order; each with its command's sentence before the bracketed default),
    choices from the backend registry, defaults from ``owner`` (``SampleJob``, or ``open_backend`` for commands
    whose library function hands them to it)."""
    from gankit.backends import PRECISIONS, backend_names
    from gankit.backends.base import COMPILE_MODES

    kinds: dict[str, dict[str, Any]] = {
        "backend": {"choices": ["auto", *backend_names()]},
        "precision": {"choices": [*PRECISIONS, "auto"]},
        "batch_size": {"type": int},
        "device": {},
        "compile_mode": {"choices": COMPILE_MODES},
    }
    for name, kind in kinds.items():
        if name in sentences:
            help = f"{sentences[name]} [%(default)s]".lstrip()
            p.add_argument("--" + name.replace("_", "-"), default=default(owner, name), help=help, **kind)


def add_import_flags(p: argparse.ArgumentParser, onnx: bool = True) -> None:
    """The flags that say what a foreign file cannot (defaults: the seed's); see gankit.models.options."""
    from gankit.config import OUTPUT_ACTIVATIONS, SEED_IMAGE_SHAPE
    from gankit.models.options import HIDDEN_ACTIVATIONS, OUTPUT_RANGES, SEED_SLOPE, ImportOptions

    seed = ImportOptions()  # nothing given: each accessor's default is the seed generator's
    # hidden_act and output_range have no accessor: left out, they are the first of their choices (hidden_slopes'
    # leaky_relu, read_graph's -1,1); tests/test_cli.py holds both to what ImportOptions and read_graph do.
    q = p.add_argument_group(
        "generators from elsewhere",
        "what a state dict" + (" or a foreign ONNX graph" if onnx else "") + " cannot say; defaults are the seed's",
    )
    q.add_argument(
        "--hidden-act",
        default=None,
        metavar="ACT",
        help="activation after each hidden Linear: leaky_relu or relu, or one per layer (relu,leaky_relu) "
        f"[{HIDDEN_ACTIVATIONS[0]}]",
    )
    q.add_argument(
        "--slope", default=None, help=f"LeakyReLU slope, or one per hidden layer (0.2,0.1) [{shown(SEED_SLOPE)}]"
    )
    q.add_argument("--output-act", default=None, choices=OUTPUT_ACTIVATIONS, help=f"[{seed.resolved_output_act}]")
    q.add_argument(
        "--image-shape",
        default=None,
        metavar="C,H,W",
        help=f"image shape of the last layer's output [{shown(SEED_IMAGE_SHAPE)}]",
    )
    q.add_argument(
        "--bn-eps",
        type=float,
        default=None,
        help="BatchNorm1d eps (a state dict does not store it; PyTorch-GAN's gan.py uses 0.8) "
        f"[{shown(seed.resolved_bn_eps)}]",
    )
    if onnx:
        q.add_argument(
            "--output-range",
            default=None,
            choices=[shown(pair) for pair in OUTPUT_RANGES],
            help="a foreign ONNX graph's output range; 0,1 is mapped to [-1, 1] (write --output-range=-1,1) "
            f"[{shown(OUTPUT_RANGES[0])}]",
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


def add_int8_flags(p: argparse.ArgumentParser) -> None:
    """The --int8-* flags (``gankit.onnx.quantize.Int8Options``, whose defaults they show); read by
    ``int8_options_from``."""
    from gankit.onnx.quantize import CALIBRATIONS, INT8_TYPES, MODES, Int8Options

    def bracket(name: str) -> str:
        return f"[{shown(default(Int8Options, name))}]"

    per_channel = "per channel" if default(Int8Options, "per_channel") else "per tensor"
    q = p.add_argument_group("int8 options (with --precision int8)")
    q.add_argument(
        "--int8-mode",
        choices=MODES,
        default=None,
        help=f"quantize activations at run time or calibrate {bracket('mode')}",
    )
    q.add_argument(
        "--int8-per-tensor", action="store_true", default=None, help=f"one weight scale a tensor [{per_channel}]"
    )
    weights = shown(default(Int8Options, "weights"))
    q.add_argument(
        "--int8-weights", choices=INT8_TYPES, default=None, help=f"weight type [{weights}: VNNI's fast kernel]"
    )
    q.add_argument(
        "--int8-activations", choices=INT8_TYPES, default=None, help=f"static: activation type {bracket('activations')}"
    )
    q.add_argument("--int8-keep-fp32", default=None, metavar="LAYERS", help="Linear layers left in fp32, e.g. 3 or 1,3")
    q.add_argument(
        "--calibration", choices=CALIBRATIONS, default=None, help=f"static: range method {bracket('calibration')}"
    )
    q.add_argument(
        "--calibration-samples",
        type=int,
        default=None,
        help=f"static: noise vectors to calibrate on {bracket('calibration_samples')}",
    )


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
