"""``gankit demo``: the whole pipeline on the bundled data, small enough for 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

from gankit.config import TrainConfig
from gankit.cpu import cpu_info
from gankit.export import export
from gankit.perf.bench import run_bench
from gankit.perf.report import describe_ceilings, format_table, write_report
from gankit.sampling.engine import sample
from gankit.sampling.job import SampleJob
from gankit.train import train


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_demo(out: Path, epochs: int = 3, quick: bool = False) -> None:
    """Train briefly; export, sample and benchmark the bundled pretrained generator; files land under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _step(f"1. train {epochs} epoch(s) on the bundled 5,000 MNIST digits (the seed's recipe)")
    # The demo's folder is its own: each run replaces what the last one wrote (the shards resume).
    result = train(TrainConfig(epochs=epochs), out / "train", force=True)
    run = out / "train"
    print(f"generator: {result.generator_path}; grids: {run / 'samples'}; losses: {run / 'losses.png'}")

    _step("2. export the bundled pretrained generator to ONNX and check its parity against float64")
    exported = export(None, out / "generator.onnx", force=True)
    print(f"ONNX model: {exported.path}; parity report: {exported.report_path}")

    _step("3. sample the bundled pretrained generator with the fastest path that keeps quality")
    grid = sample(SampleJob(out / "pretrained_grid.png", n=64, format="grid", force=True))
    print(f"grid of samples 0..63 of seed 0: {grid.out}")
    count = 20_000 if quick else 200_000
    # precision auto: every backend and precision this machine has, timed and checked for MNIST-FID once (cached)
    shards = sample(SampleJob(out / "samples", n=count, shard_size=65_536, resume=True, precision="auto"))
    print(f"{shards.samples_written:,} samples to {shards.out} at {shards.samples_per_second:,.0f} samples/s")

    _step("4. benchmark the backends on this machine (checked against eager, then timed)")
    batches = [1, 4096] if quick else [1, 64, 4096]
    precisions = ["fp32", "int8"] + (["bf16"] if cpu_info().has_bf16 else [])
    # the device's default backends (on a CPU: eager, compile, onnxruntime, and openvino where installed)
    report = run_bench(precisions=precisions, batch_sizes=batches, log=lambda line: None)
    print("ceilings measured in this run:")
    print("\n".join(f"  {line}" for line in describe_ceilings(report)))
    print(format_table(report))
    json_path, png_path = write_report(report, out / "bench")
    print(f"bench results: {json_path}, plot: {png_path}")
    print(f"\ndemo finished: everything is under {out}")
