"""The commands about model files: gankit export, validate, info and import."""

from __future__ import annotations

import argparse
import json

from gankit.cli.common import (
    FORCE_HELP,
    FOREIGN_FILES,
    add_import_flags,
    add_int8_flags,
    default,
    import_options_from,
    int8_options_from,
    stderr,
)
from gankit.io import dumps_json


def add_export(sub: argparse._SubParsersAction) -> None:
    from gankit.export import FORMATS, export
    from gankit.onnx.graph import DEFAULT_OPSET, OUTPUTS, PRECISIONS

    p = sub.add_parser(
        "export",
        help="export a generator to ONNX, AOTInductor (.pt2), ExecuTorch (.pte) or a web folder, parity-checked",
        description="Formats (--format, or from --out's suffix): onnx (.onnx), aoti (.pt2: an AOTInductor package "
        "for the CPU, or CUDA when present, that runs from C++ without Python), executorch (.pte: XNNPACK "
        "delegate), web (a folder: a static page running the model with onnxruntime-web). aoti and executorch "
        "are fp32 with float output; the options below (precision, output, opset, int8) are for onnx. "
        "Input z [batch, latent] float32. Output image [batch, C, H, W]: float32 in [-1, 1], or "
        "uint8 0..255 with --output uint8 ((x+1)*127.5, rounded, clipped, in the graph). fp16 keeps float32 "
        "I/O and computes in fp16; int8 is onnxruntime quantization (default: dynamic, per-channel QInt8 "
        "weights, every layer; the --int8-* options pick others; each one's speed and quality cost: "
        "docs/backends.md). Every format lands only if its parity against a float64 reference passes; the report "
        "is written beside it as NAME.parity.json (NAME.pt2.parity.json, NAME.pte.parity.json for the compiled "
        "targets). See docs/export-targets.md.",
    )
    p.add_argument("checkpoint", nargs="?", default=None, help=f"{FOREIGN_FILES} (default: the bundled generator)")
    p.add_argument("--format", default=None, choices=FORMATS, help="[from --out's suffix; onnx without --out]")
    p.add_argument(
        "--out", default=None, help="[generator.onnx, .pt2, .pte, or the folder generator-web, in the working folder]"
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--opset", type=int, default=None, help=f"onnx [{DEFAULT_OPSET}]")
    p.add_argument("--precision", default=default(export, "precision"), choices=PRECISIONS, help="[%(default)s]")
    p.add_argument(
        "--output", default=default(export, "output"), choices=OUTPUTS, help="image output type [%(default)s]"
    )
    add_int8_flags(p)
    add_import_flags(p, onnx=False)
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from gankit.export import export, export_format

    format, out = export_format(args.out, args.format)
    if format == "web":
        from gankit.export import refuse_options_for_web

        refuse_options_for_web(
            args.precision, args.output, args.opset, int8_options_from(args), import_options_from(args)
        )
        from gankit.web import export_web

        export_web(args.checkpoint, out, force=args.force)  # it says what it wrote and how to serve it
        return 0
    result = export(
        args.checkpoint,
        out,
        precision=args.precision,
        output=args.output,
        opset=args.opset,
        int8=int8_options_from(args),
        import_options=import_options_from(args),
        format=format,
        force=args.force,
    )
    print(f"wrote {result.path} and {result.report_path}")
    return 0


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="re-run the parity check of an exported ONNX model")
    p.add_argument("model", help="an ONNX file written by gankit export")
    p.add_argument(
        "--checkpoint",
        default=None,
        help=f"its source generator: {FOREIGN_FILES} (default: the bundled one, if it is)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="base seed of the parity inputs, to reproduce a report (each report records its own) [fresh]",
    )
    add_import_flags(p, onnx=False)
    p.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from gankit.export import validate

    validate(args.model, checkpoint=args.checkpoint, seed=args.seed, import_options=import_options_from(args))
    return 0


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a generator's config, parameter count and metadata")
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator (default: the bundled generator)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_import_flags(p)
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from gankit.checkpoint import model_path
    from gankit.models import model_info

    info = model_info(model_path(args.path), import_options_from(args), log=stderr)
    if args.json:
        print(dumps_json(info))
        return 0
    for key, value in info.items():
        print(f"{key:>17}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert a generator trained elsewhere (a state dict) into a gankit checkpoint",
        description="Reads a state dict saved with torch.save (.pt/.pth; read with weights_only=True, so nothing in "
        "it runs: a whole pickled module or a file holding code is refused) or a .safetensors state dict, or "
        "another gankit file. Layer sizes come from the tensors: Linear weights (out, in) chained in order, "
        "BatchNorm1d (weight, bias, running_mean, running_var, num_batches_tracked) folded into the Linear before "
        "it. What a state dict cannot say comes from the flags, whose defaults are the seed's: LeakyReLU(0.2) "
        "after each hidden Linear, tanh at the end, 1x28x28 images. Every command also takes such a file directly "
        "and converts it on the fly; importing once skips that. Python: gankit.from_module(module).",
    )
    p.add_argument("src", help="the file to convert (.pt, .pth, .safetensors)")
    p.add_argument("--out", required=True, help="the gankit checkpoint to write (.safetensors)")
    add_import_flags(p, onnx=False)
    p.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from gankit.io import check_writable
    from gankit.models import import_file

    check_writable(args.out)
    result = import_file(args.src, args.out, import_options_from(args))
    config = result.generator.config
    print(f"imported {args.src} ({result.description}) -> {result.out}")
    print(f"  {config.describe()}; {config.parameter_count:,} parameters")
    return 0
