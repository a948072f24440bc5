"""gankit sample and gankit verify."""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.cli.common import (
    FORCE_HELP,
    FOREIGN_FILES,
    add_import_flags,
    add_runtime_flags,
    default,
    import_options_from,
)


def add_sample(sub: argparse._SubParsersAction) -> None:
    from gankit.device import DEVICE_HELP
    from gankit.sampling.job import DTYPES, ENGINES, FORMATS, N, SampleJob

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
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=N, help="number of samples [%(default)s]")
    p.add_argument("--seed", type=int, default=default(SampleJob, "seed"), help="noise seed [%(default)s]")
    p.add_argument(
        "--start",
        "--first-index",
        dest="start",
        type=int,
        default=default(SampleJob, "start"),
        help="first sample index [%(default)s]",
    )
    add_runtime_flags(
        p,
        SampleJob,
        backend="auto picks the fastest available and says which and why; on a CPU it is measured (the best of "
        "interleaved rounds) and cached with the load it was measured under in $GANKIT_CACHE_DIR/auto-backend.json, "
        "measured again when that was a busy moment; delete the auto-backend*.json files to measure anew",
        precision="auto (CPU): the fastest backend and precision whose quality cost is within tolerance, measured "
        "once on this machine and cached; it says what it picked and why",
        batch_size="samples per forward pass",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="npy: uint8/float16 .npy shards; png: one PNG a sample; webdataset: tar shards shard-NNNNN.tar "
        "(NNNNNNNNN.png or .npy, .cls, .json a sample); parquet: shard-NNNNN.parquet (index, label, image as "
        "Hugging Face's Image feature); grid: one PNG grid [grid if --out ends in .png, else npy]",
    )
    p.add_argument(
        "--dtype",
        default=default(SampleJob, "dtype"),
        choices=DTYPES,
        help="npy and webdataset image dtype [%(default)s]",
    )
    p.add_argument(
        "--shard-size", type=int, default=default(SampleJob, "shard_size"), help="samples per shard [%(default)s]"
    )
    p.add_argument(
        "--out", default="samples.png", help="folder (npy, png, webdataset, parquet) or .png file (grid) [%(default)s]"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--force", action="store_true", help="--format grid: " + FORCE_HELP)
    add_runtime_flags(p, SampleJob, device=DEVICE_HELP, compile_mode="for --backend compile")
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
        default=default(SampleJob, "engine"),
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
    add_import_flags(p)
    p.set_defaults(run=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    from gankit.labels import from_options
    from gankit.sampling.engine import sample
    from gankit.sampling.job import SampleJob, format_for

    fmt = format_for(args.out, args.format)
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


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check a sampling run folder against its manifest (sizes and checksums), without the model",
        description="Reads every shard the manifest lists and compares its size and checksum with the record; "
        "exit 0 when every sample of the job is there as written, 1 naming each bad or missing shard (rerun the "
        "sampling command with --resume to make them again), 2 when the folder is not a run.",
    )
    p.add_argument("folder", metavar="RUN", help="a folder written by gankit sample --format npy or png")
    p.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from gankit.sampling.manifest import verify_run

    problems = verify_run(Path(args.folder))
    for problem in problems:
        print(f"{args.folder}: {problem}")
    if not problems:
        print(f"{args.folder}: every shard holds its recorded bytes")
    return 1 if problems else 0
