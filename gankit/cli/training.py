"""gankit train."""

from __future__ import annotations

import argparse

from gankit.cli.common import FORCE_HELP, default, shown
from gankit.config import TrainConfig


def _default(path: str) -> str:
    """A ``TrainConfig`` field's default as --help shows it; ``generator.hidden`` reaches into the nested configs."""
    return shown(default(TrainConfig, path), sep=" ")


def add_train(sub: argparse._SubParsersAction) -> None:
    from gankit.config import AUGMENT_OPS
    from gankit.data import SOURCES_HELP
    from gankit.training.presets import DESCRIPTIONS, PRESETS, build_config

    p = sub.add_parser(
        "train",
        help="train a GAN; checkpoints every epoch, Ctrl-C saves and stops",
        description="Options left out take the --preset's value, else the seed's (shown in brackets). Every "
        "option is saved in the run and in the generator file's training metadata; --resume reuses them.",
    )
    p.add_argument("--out", default="runs/train", help="run folder (checkpoints, grids, losses) [%(default)s]")
    p.add_argument(
        "--preset",
        default=default(build_config, "preset"),
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
        help="total epochs [the preset's: "
        + ", ".join(f"{name} {build_config(name).epochs}" for name in PRESETS)
        + "; with --resume: the saved total]",
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
    p.add_argument("--quiet", action="store_true", help="no progress bar (it is drawn only on a terminal anyway)")
    c = p.add_argument_group("class-conditional generator")
    c.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="> 0: G and D take a digit label (needs labelled data: --data mnist-5k); 0 = unconditional "
        f"[{_default('generator.num_classes')}]",
    )
    c.add_argument(
        "--d-condition",
        default=None,
        choices=["projection", "concat"],
        help="how D sees the label: projection (a learned class vector dotted with D's last hidden layer, "
        "Miyato & Koyama 2018) or concat (one-hot beside the pixels) "
        f"[{_default('discriminator.condition')}]",
    )
    c.add_argument(
        "--latent-labels",
        type=int,
        default=None,
        metavar="K",
        help="K > 0: G stays unconditional, D is conditional, and a fake's label is argmax(z[:K]) (each digit 1/K "
        "of z-space): balanced digits from an unconditional generator; needs labelled data "
        f"[{_default('latent_labels')}]",
    )
    c.add_argument(
        "--aux-weight",
        type=float,
        default=None,
        help="AC-GAN: D gets a digit-classifier head trained on real labels, and G a loss for fakes that do not "
        "read as their label, both times this weight (needs --num-classes or --latent-labels) "
        f"[{_default('aux_weight')} = off]",
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
        help="append the std over groups of GROUP samples to D's first hidden layer (StyleGAN), 0 = off "
        f"[{_default('discriminator.minibatch_std')}]",
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
        "--lecam",
        type=float,
        default=None,
        help=f"LeCam regulariser weight (limited data; e.g. 0.3) [{_default('lecam')} = off]",
    )
    a = p.add_argument_group("differentiable augmentation (of real and fake, before D, in both steps)")
    a.add_argument(
        "--augment",
        default=None,
        metavar="OPS",
        help="comma-separated ops, each op or op=magnitude: "
        + "; ".join(f"{name} ({meaning}, default {default:g})" for name, (default, _, meaning) in AUGMENT_OPS.items())
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
        help="adaptive p: steer E[sign(D(real))] to this (StyleGAN2-ADA uses 0.6), 0 = fixed p "
        f"[{_default('ada_target')}]",
    )
    q = p.add_argument_group("quality during training")
    q.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="K",
        help="every K epochs: MNIST-FID, digit coverage, precision/recall of --eval-samples fixed samples, "
        "in losses.csv and losses.png (2,500 samples: 2.5 s of one CPU core, about a training epoch on the "
        f"bundled digits); 0 = off [{_default('eval_every')}]",
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
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from gankit.train import resume, train
    from gankit.training.augment import parse_augment
    from gankit.training.presets import build_config

    progress = not args.quiet
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
