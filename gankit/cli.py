"""Command-line interface: parses arguments and calls the library; errors print as one line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from gankit.config import OUTPUT_ACTIVATIONS
from gankit.errors import ConfigError, ExportError, GankitError
from gankit.io import dumps_json

FORCE_HELP = "replace what --out already holds (without it an existing result is refused; docs/sampling-safety.md)"
FOREIGN_FILES = (
    "a gankit .safetensors, a state dict from elsewhere (torch.save .pt/.pth or .safetensors, converted on the "
    "fly: gankit import saves the conversion), or 'conditional' (the bundled class-conditional generator)"
)


def _add_import_flags(p: argparse.ArgumentParser, onnx: bool = True) -> None:
    """The flags that say what a foreign file cannot (defaults: the seed's); see gankit.imports.options."""
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
    from gankit.imports import ImportOptions

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


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _default(path: str) -> str:
    """A ``TrainConfig`` field's default as --help shows it; ``generator.hidden`` reaches into the nested configs."""
    from gankit.config import TrainConfig

    value: object = TrainConfig()
    for part in path.split("."):
        value = getattr(value, part)
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from gankit.data import SOURCES_HELP
    from gankit.training.augment import OPS
    from gankit.training.presets import DESCRIPTIONS, PRESETS

    p = sub.add_parser(
        "train",
        help="train a GAN; checkpoints every epoch, Ctrl-C saves and stops",
        description="Options left out take the --preset's value, else the seed's (shown in brackets). Every "
        "option is saved in the run and in the generator file's training metadata; --resume reuses them.",
    )
    p.add_argument("--out", default="runs/train", help="run folder (checkpoints, grids, losses) [%(default)s]")
    p.add_argument(
        "--preset",
        default="seed",
        choices=list(PRESETS),
        help="a named recipe (gankit/pretrained/TRAINING.md): "
        + "; ".join(f"{name} = {text}" for name, text in DESCRIPTIONS.items())
        + " [%(default)s]",
    )
    p.add_argument("--data", default=None, help=f"training images: {SOURCES_HELP} [{_default('data')}]")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding (or to download) torchvision sets [$GANKIT_CACHE_DIR/data, else ~/.cache/gankit/data]",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="total epochs [the preset's: seed 20, mnist 900, mnist-conditional 600; with --resume: the saved total]",
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"[{_default('batch_size')}]")
    p.add_argument(
        "--lr", type=float, default=None, help=f"Adam learning rate (G, and D unless --d-lr) [{_default('lr')}]"
    )
    p.add_argument(
        "--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"), help=f"Adam betas [{_default('betas')}]"
    )
    p.add_argument(
        "--ema", type=float, default=None, help=f"EMA decay of the generator weights, 0 = off [{_default('ema')}]"
    )
    p.add_argument("--seed", type=int, default=None, help=f"[{_default('seed')}]")
    p.add_argument("--device", default=None, help=f"auto, cpu or cuda [{_default('device')}]")
    p.add_argument("--latent-dim", type=int, default=None, help=f"[{_default('generator.latent_dim')}]")
    p.add_argument(
        "--g-hidden", type=int, nargs="+", default=None, help=f"generator hidden sizes [{_default('generator.hidden')}]"
    )
    p.add_argument(
        "--d-hidden",
        type=int,
        nargs="+",
        default=None,
        help=f"discriminator hidden sizes [{_default('discriminator.hidden')}]",
    )
    p.add_argument("--slope", type=float, default=None, help=f"LeakyReLU slope [{_default('generator.slope')}]")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out with its saved recipe; only --epochs (a new total) may change",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar (also off when stdout is not a terminal)")
    c = p.add_argument_group("class-conditional generator")
    c.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="> 0: G and D take a digit label (needs labelled data: --data mnist-5k); 0 = unconditional [0]",
    )
    c.add_argument(
        "--d-condition",
        default=None,
        choices=["projection", "concat"],
        help="how D sees the label: projection (a learned class vector dotted with D's last hidden layer, "
        "Miyato & Koyama 2018) or concat (one-hot beside the pixels) [projection]",
    )
    c.add_argument(
        "--latent-labels",
        type=int,
        default=None,
        metavar="K",
        help="K > 0: G stays unconditional, D is conditional, and a fake's label is argmax(z[:K]) (each digit 1/K "
        "of z-space): balanced digits from an unconditional generator; needs labelled data [0]",
    )
    c.add_argument(
        "--aux-weight",
        type=float,
        default=None,
        help="AC-GAN: D gets a digit-classifier head trained on real labels, and G a loss for fakes that do not "
        "read as their label, both times this weight (needs --num-classes or --latent-labels) [0 = off]",
    )
    d = p.add_argument_group("discriminator options")
    d.add_argument("--d-lr", type=float, default=None, help="D's learning rate (TTUR, D faster than G) [--lr]")
    d.add_argument(
        "--pack",
        type=int,
        default=None,
        help=f"PacGAN: D judges this many samples at once [{_default('discriminator.pack')}]",
    )
    d.add_argument(
        "--minibatch-std",
        type=int,
        default=None,
        metavar="GROUP",
        help="append the std over groups of GROUP samples to D's first hidden layer (StyleGAN), 0 = off [0]",
    )
    d.add_argument(
        "--d-dropout",
        type=float,
        default=None,
        help=f"dropout after each D hidden layer [{_default('discriminator.dropout')}]",
    )
    d.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help=f"one-sided: D's target for real images is 1 - this [{_default('label_smoothing')}]",
    )
    d.add_argument(
        "--r1", type=float, default=None, metavar="GAMMA", help=f"R1 penalty (gamma/2)E|grad D(x)|^2 [{_default('r1')}]"
    )
    d.add_argument(
        "--r1-every",
        type=int,
        default=None,
        help=f"apply R1 every N D steps (lazy, scaled by N) [{_default('r1_every')}]",
    )
    d.add_argument(
        "--lecam", type=float, default=None, help="LeCam regulariser weight (limited data; e.g. 0.3) [0 = off]"
    )
    a = p.add_argument_group("differentiable augmentation (of real and fake, before D, in both steps)")
    a.add_argument(
        "--augment",
        default=None,
        metavar="OPS",
        help="comma-separated ops, each op or op=magnitude: "
        + "; ".join(f"{name} ({meaning}, default {default:g})" for name, (_, default, _, meaning) in OPS.items())
        + " [none]",
    )
    a.add_argument(
        "--augment-p",
        type=float,
        default=None,
        help=f"probability of each op per sample (start p) [{_default('augment_p')}]",
    )
    a.add_argument(
        "--ada-target",
        type=float,
        default=None,
        help="adaptive p: steer E[sign(D(real))] to this (StyleGAN2-ADA uses 0.6), 0 = fixed p [0]",
    )
    q = p.add_argument_group("quality during training")
    q.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="K",
        help="every K epochs: MNIST-FID, digit coverage, precision/recall of --eval-samples fixed samples, "
        "in losses.csv and losses.png (2,500 samples: 2.5 s of one CPU core, about a training epoch on the "
        "bundled digits); 0 = off [0]",
    )
    q.add_argument(
        "--eval-samples", type=int, default=None, help=f"[{_default('eval_samples')}: the samples gankit eval scores]"
    )
    q.add_argument(
        "--keep-best",
        action="store_true",
        default=None,
        help="keep the generator of the lowest MNIST-FID so far as generator_best.safetensors (needs --eval-every)",
    )
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from gankit.train import resume, train
    from gankit.training.augment import parse_augment
    from gankit.training.presets import build_config

    progress = not args.quiet and sys.stdout.isatty()
    if args.resume:
        result = resume(args.out, epochs=args.epochs, progress=progress)
    else:
        options = {
            name: getattr(args, name)
            for name in (
                "data", "data_dir", "epochs", "batch_size", "lr", "ema", "seed", "device", "latent_dim", "slope",
                "num_classes", "latent_labels", "aux_weight", "d_condition", "d_lr", "pack", "minibatch_std",
                "d_dropout", "label_smoothing", "r1", "r1_every", "lecam", "augment_p", "ada_target", "eval_every",
                "eval_samples", "keep_best",
            )
        }  # fmt: skip
        options["betas"] = tuple(args.betas) if args.betas else None
        options["g_hidden"] = tuple(args.g_hidden) if args.g_hidden else None
        options["d_hidden"] = tuple(args.d_hidden) if args.d_hidden else None
        options["augment"] = parse_augment(args.augment) if args.augment is not None else None
        result = train(build_config(args.preset, **options), args.out, progress=progress, force=args.force)
    state = "interrupted, saved" if result.interrupted else "done"
    print(f"{state}: {result.describe()}; generator {result.generator_path}, state {result.state_path}")
    if result.best is not None:
        print(f"best MNIST-FID {result.best.fid:.2f} at epoch {result.best.epoch}")
    if result.interrupted:
        print(f"continue with: gankit train --out {args.out} --resume")
    return 130 if result.interrupted else 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    from gankit.backends import PRECISIONS, backend_names
    from gankit.backends.compile import COMPILE_MODES
    from gankit.sampling.job import DTYPES, ENGINES, FORMATS

    p = sub.add_parser(
        "sample",
        help="generate samples to disk (.npy, WebDataset or Parquet shards, PNG files or a grid); resumable; "
        "torchrun- and Ray-aware",
        description="Sample i of seed s has the same noise everywhere, bit for bit (gankit.noise), so its image "
        "is the same whatever the batch size or number of processes: bit for bit with the same backend, batch size "
        "and machine (shards, resumes, torchrun ranks and lanes are), and within 1 uint8 level across batch sizes and "
        "machines (a matmul's summation order depends on its shape and the CPU). --format npy/png/webdataset/parquet "
        "write a "
        "folder with manifest.json; Ctrl-C or a kill "
        "loses nothing: rerun with --resume. Several processes: torchrun --nproc-per-node K -m gankit sample "
        "--num-samples N ... (under torchrun spell --n and --start as --num-samples and --first-index); or "
        "--engine ray [--address HOST:PORT].",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator, or a .pt2/.pte export (default: the bundled generator)",
    )
    # torchrun's own parser takes --n and --start as abbreviations of its options: hence the long aliases.
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=64, help="number of samples [%(default)s]")
    p.add_argument("--seed", type=int, default=0, help="noise seed [%(default)s]")
    p.add_argument(
        "--start", "--first-index", dest="start", type=int, default=0, help="first sample index [%(default)s]"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", *backend_names()],
        help="auto picks the fastest available and says which and why; on a CPU it is measured (the best of "
        "interleaved rounds) and cached with the load it was measured under in $GANKIT_CACHE_DIR/auto-backend.json, "
        "measured again when that was a busy moment; delete the auto-backend*.json files to measure anew "
        "[%(default)s]",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=[*PRECISIONS, "auto"],
        help="auto (CPU): the fastest backend and precision whose quality cost is within tolerance, measured once "
        "on this machine and cached; it says what it picked and why [%(default)s]",
    )
    p.add_argument("--batch-size", type=int, default=4096, help="samples per forward pass [%(default)s]")
    p.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="npy: uint8/float16 .npy shards; png: one PNG a sample; webdataset: tar shards shard-NNNNN.tar "
        "(NNNNNNNNN.png or .npy, .cls, .json a sample); parquet: shard-NNNNN.parquet (index, label, image as "
        "Hugging Face's Image feature); grid: one PNG grid [grid if --out ends in .png, else npy]",
    )
    p.add_argument("--dtype", default="uint8", choices=DTYPES, help="npy and webdataset image dtype [%(default)s]")
    p.add_argument("--shard-size", type=int, default=65536, help="samples per shard [%(default)s]")
    p.add_argument(
        "--out", default="samples.png", help="folder (npy, png, webdataset, parquet) or .png file (grid) [%(default)s]"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--force", action="store_true", help="--format grid: " + FORCE_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [%(default)s]")
    p.add_argument(
        "--compile-mode", default="default", choices=COMPILE_MODES, help="for --backend compile [%(default)s]"
    )
    labels = p.add_mutually_exclusive_group()
    labels.add_argument(
        "--digit",
        type=int,
        default=None,
        metavar="D",
        help="class-conditional generators: every sample gets label D (an error for an unconditional one)",
    )
    labels.add_argument(
        "--labels",
        default=None,
        choices=["balanced"],
        help="class-conditional generators: sample i gets label (i + seed) mod K, each label equally often; "
        "the default for them (an error for an unconditional generator). Each shard's labels are written "
        "beside it as shard_NNNNN.labels.npy (npy, png), or inside it (webdataset .cls, parquet label)",
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local: this process (or torchrun's); ray: each shard a Ray task, retried if its worker dies, the "
        "same files (pip install 'gankit[ray]') [%(default)s]",
    )
    p.add_argument(
        "--address",
        default=None,
        help="--engine ray: the cluster's HOST:PORT (from `ray start --head`) or auto [a local Ray for the run]",
    )
    p.add_argument("--workers", type=int, default=None, help="--engine ray: shards made at once [one a CPU]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_import_flags(p)
    p.set_defaults(run=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from gankit.labels import from_options
    from gankit.sampling.engine import sample
    from gankit.sampling.job import SampleJob

    fmt = args.format or ("grid" if str(args.out).endswith(".png") else "npy")
    job = SampleJob(
        out=Path(args.out),
        n=args.n,
        model=Path(args.model) if args.model else None,
        seed=args.seed,
        start=args.start,
        backend=args.backend,
        precision=args.precision,
        batch_size=args.batch_size,
        format=fmt,
        dtype=args.dtype,
        shard_size=args.shard_size,
        device=args.device,
        compile_mode=args.compile_mode,
        resume=args.resume,
        force=args.force,
        import_options=import_options_from(args),
        labels=from_options(args.digit, args.labels),
        engine=args.engine,
        address=args.address,
        workers=args.workers,
    )
    result = sample(job, progress=not args.quiet)
    rate = f"{result.samples_per_second:,.0f} samples/s" if result.samples_written else "nothing left to do"
    state = "interrupted" if result.interrupted else "wrote"
    print(f"{state} {result.samples_written} samples to {result.out} with {result.backend}: {rate}")
    if result.interrupted:
        print("continue with the same command plus --resume")
        return 130
    return 0


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check a sampling run folder against its manifest (sizes and checksums), without the model",
        description="Reads every shard the manifest lists and compares its size and checksum with the record; "
        "exit 0 when every sample of the job is there as written, 1 naming each bad or missing shard (rerun the "
        "sampling command with --resume to make them again), 2 when the folder is not a run.",
    )
    p.add_argument("folder", metavar="RUN", help="a folder written by gankit sample --format npy or png")
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from gankit.sampling.manifest import verify_run

    problems = verify_run(Path(args.folder))
    for problem in problems:
        print(f"{args.folder}: {problem}")
    if not problems:
        print(f"{args.folder}: every shard holds its recorded bytes")
    return 1 if problems else 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a generator's config, parameter count and metadata")
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator (default: the bundled generator)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_import_flags(p)
    p.set_defaults(run=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from gankit.checkpoint import model_path
    from gankit.imports import model_info

    info = model_info(model_path(args.path), import_options_from(args), log=_stderr)
    if args.json:
        print(dumps_json(info))
        return 0
    for key, value in info.items():
        print(f"{key:>17}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    from gankit.export import FORMATS
    from gankit.onnx.build import DEFAULT_OPSET, OUTPUTS, PRECISIONS
    from gankit.onnx.quantize import CALIBRATIONS, INT8_TYPES, MODES

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
        "is written beside it as NAME.parity.json. See docs/export-targets.md.",
    )
    p.add_argument("checkpoint", nargs="?", default=None, help=f"{FOREIGN_FILES} (default: the bundled generator)")
    p.add_argument("--format", default=None, choices=FORMATS, help="[from --out's suffix; onnx without --out]")
    p.add_argument(
        "--out", default=None, help="[generator.onnx, .pt2, .pte, or the folder generator-web, in the working folder]"
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--opset", type=int, default=None, help=f"onnx [{DEFAULT_OPSET}]")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="[%(default)s]")
    p.add_argument("--output", default="float", choices=OUTPUTS, help="image output type [%(default)s]")
    q = p.add_argument_group("int8 options (with --precision int8)")
    q.add_argument(
        "--int8-mode", choices=MODES, default=None, help="quantize activations at run time or calibrate [dynamic]"
    )
    q.add_argument(
        "--int8-per-tensor", action="store_true", default=None, help="one weight scale a tensor [per channel]"
    )
    q.add_argument("--int8-weights", choices=INT8_TYPES, default=None, help="weight type [qint8: VNNI's fast kernel]")
    q.add_argument("--int8-activations", choices=INT8_TYPES, default=None, help="static: activation type [quint8]")
    q.add_argument("--int8-keep-fp32", default=None, metavar="LAYERS", help="Linear layers left in fp32, e.g. 3 or 1,3")
    q.add_argument("--calibration", choices=CALIBRATIONS, default=None, help="static: range method [minmax]")
    q.add_argument("--calibration-samples", type=int, default=None, help="static: noise vectors to calibrate on [2048]")
    _add_import_flags(p, onnx=False)
    p.set_defaults(run=_run_export)


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


def _run_export(args: argparse.Namespace) -> int:
    from gankit.export import export, export_format

    format, out = export_format(args.out, args.format)
    if format == "web":
        from gankit.imports import ImportOptions

        onnx_options = (args.precision, args.output, args.opset, int8_options_from(args))
        if onnx_options != ("fp32", "float", None, None) or import_options_from(args) != ImportOptions():
            raise ExportError(
                "--format web exports fp32 with float output of a gankit checkpoint (or a state dict that needs "
                "no import options); --precision, --output, --opset, --int8-* and the import options are not for it"
            )
        from gankit.web import export_web

        report_path = export_web(args.checkpoint, out, force=args.force)
        print(f"wrote {out} and {report_path}")
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


def _add_validate(sub: argparse._SubParsersAction) -> None:
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
    _add_import_flags(p, onnx=False)
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from gankit.export import validate

    validate(args.model, checkpoint=args.checkpoint, seed=args.seed, import_options=import_options_from(args))
    return 0


def parse_list(text: str, kind: type = str) -> list:
    """'a,b' -> ['a', 'b'] (``kind`` applied to each); ConfigError naming the text when an item does not parse."""
    try:
        items = [kind(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a comma-separated list of {kind.__name__}") from None
    if not items:
        raise ConfigError(f"{text!r} is an empty list")
    return items


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from gankit.backends import PRECISIONS
    from gankit.backends.compile import COMPILE_MODES
    from gankit.device import DEVICE_HELP

    p = sub.add_parser(
        "bench",
        help="time backends x batch sizes x precisions; table, JSON with the environment, and a plot",
        description="Each backend is checked against eager fp32 before it is timed. GPU: do_bench medians; "
        "CPU: repeated runs, median. Roofline from the generator's FLOPs/bytes and ceilings measured in the run "
        "(the best GEMM of torch, onnxruntime and OpenVINO, and the best copy), with the CPU's paper peak beside it.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator: ONNX backends only (default: the bundled generator)",
    )
    p.add_argument(
        "--backends",
        default=None,
        help="comma-separated [GPU: eager,compile,triton; CPU: eager,compile,onnxruntime,openvino; .onnx: "
        "onnxruntime,openvino]",
    )
    p.add_argument("--batch-sizes", default=None, help="comma-separated [GPU: 1,256,65536,1048576; CPU: 1,64,4096]")
    p.add_argument(
        "--precisions",
        default=None,
        help=f"comma-separated, of {', '.join(PRECISIONS)} [GPU: fp32,tf32,bf16; CPU: fp32]",
    )
    p.add_argument("--output", default="float", choices=["float", "uint8"], help="image output type [%(default)s]")
    p.add_argument("--device", default="auto", help=f"{DEVICE_HELP} [%(default)s]")
    p.add_argument(
        "--compile-mode", default="default", choices=COMPILE_MODES, help="for the compile backend [%(default)s]"
    )
    p.add_argument("--out", default=None, help="write OUT.json and OUT.png (e.g. benchmarks/results/cpu-NAME)")
    _add_import_flags(p)
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from gankit.perf.bench import run_bench
    from gankit.perf.report import describe_ceilings, format_row, format_table, write_report

    report = run_bench(
        args.model,
        backends=parse_list(args.backends) if args.backends else None,
        batch_sizes=parse_list(args.batch_sizes, int) if args.batch_sizes else None,
        precisions=parse_list(args.precisions) if args.precisions else None,
        output=args.output,
        device=args.device,
        compile_mode=args.compile_mode,
        log=lambda line: print(line, flush=True),
        on_row=lambda row: print(format_row(row), flush=True),
        import_options=import_options_from(args),
    )
    print("\nceilings measured in this run:\n" + "\n".join(f"  {line}" for line in describe_ceilings(report)))
    print("\n" + format_table(report))
    if args.out:
        json_path, png_path = write_report(report, Path(args.out))
        print(f"\nwrote {json_path} and {png_path}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from gankit.backends import PRECISIONS, backend_names

    p = sub.add_parser(
        "eval",
        help="sample quality: MNIST-FID (digit-classifier features), digit coverage, precision/recall, copying, "
        "label fidelity",
        description="MNIST-FID is a Fréchet distance in the feature space of gankit's own digit classifier "
        "(not Inception's). The floor is the same distance between two disjoint halves of the real digits. The "
        "class-mix FID is what real digits in the generated digit shares score; the copying check is the share of "
        "samples nearer a bundled training digit than 5%% of real digits are (about 5%% = no copying). A "
        "class-conditional generator is sampled with balanced labels and its label fidelity (the share of each "
        "asked digit the classifier reads as that digit) is reported.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator; 1x28x28 images only (default: the bundled generator)",
    )
    p.add_argument("--backend", default="auto", choices=["auto", *backend_names()], help="[%(default)s]")
    p.add_argument("--precision", default="fp32", choices=[*PRECISIONS, "auto"], help="[%(default)s]")
    p.add_argument("--seed", type=int, default=0, help="[%(default)s]")
    p.add_argument("--n", type=int, default=2500, help="generated samples; 2500 matches the floor [%(default)s]")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    _add_import_flags(p)
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from gankit.errors import SamplingError
    from gankit.evaluate import evaluate, format_report, report_json, write_report
    from gankit.io import check_writable

    if args.n < 20:
        raise SamplingError(f"--n must be at least 20 for a covariance estimate, got {args.n}")
    if args.out:
        check_writable(args.out)  # before the work, not after it
    report = evaluate(
        args.model,
        backend=args.backend,
        precision=args.precision,
        seed=args.seed,
        n=args.n,
        import_options=import_options_from(args),
        log=_stderr,
    )
    print(dumps_json(report_json(report)) if args.json else format_report(report))
    if args.out:
        written = write_report(report, Path(args.out))
        if not args.json:
            print(f"wrote {written}")
    return 0


def _add_import(sub: argparse._SubParsersAction) -> None:
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
    _add_import_flags(p, onnx=False)
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from gankit.imports import import_file
    from gankit.io import check_writable

    check_writable(args.out)
    result = import_file(args.src, args.out, import_options_from(args))
    config = result.generator.config
    print(f"imported {args.src} ({result.description}) -> {result.out}")
    print(f"  {config.describe()}; {config.parameter_count:,} parameters")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the bundled data, in a few minutes on a CPU")
    p.add_argument("--out", default="runs/demo", help="where everything is written [%(default)s]")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the demo run [%(default)s]")
    p.add_argument("--quick", action="store_true", help="fewer samples and batch sizes (for tests)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from gankit.demo import run_demo

    run_demo(Path(args.out), epochs=args.epochs, quick=args.quick)
    return 0


COMMANDS = (
    _add_train,
    _add_import,
    _add_sample,
    _add_verify,
    _add_info,
    _add_export,
    _add_validate,
    _add_bench,
    _add_eval,
    _add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit", description="Train, export, sample and benchmark an MLP GAN generator."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _os_error(exc: OSError) -> str:
    """One line for a failure of the outside world: what failed, on which file."""
    where = " ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return f"{exc.strerror or exc}{f': {where}' if where else ''}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at exit: a reader gone early (| head) is a broken pipe this handler sees
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError):  # stdout is gone: the interpreter's last flush must not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"gankit {args.command}: error: the output was closed before it was all written", file=sys.stderr)
        return 2
    except (GankitError, OSError, MemoryError) as exc:
        if args.debug:
            raise
        if isinstance(exc, MemoryError):
            message = "out of memory; lower --n, --batch-size or --shard-size"
        else:
            message = _os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"gankit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gankit {args.command}: interrupted", file=sys.stderr)
        return 130
