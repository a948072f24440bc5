"""Samples/s to disk for every shard format and every engine, and what binds each format.

    python -m benchmarks.run_formats [--n 1000000] [--path auto|BACKEND:PRECISION] [--workdir DIR] [--note TEXT]

For npy, webdataset and parquet (uint8, the bundled generator, shards of 65,536), three engines, each a whole
``gankit sample`` process (``--quiet``):

- one process (``--engine local``);
- ``torchrun`` with 2 ranks (``python -m torch.distributed.run --standalone --nproc-per-node 2``, one thread a rank);
- Ray with 2 workers (``--engine ray --workers 2``, a local Ray started by the command).

Each engine's shards are checked against the one-process run's (the manifest's CRC-32 of every shard) before its
time counts: a faster engine that wrote other bytes is a failure, not a result. Reported: samples/s over the
whole process (start-up included) and the run's own rate as it prints it (from its first shard on; for Ray from
connecting, so starting Ray and its workers counts); each engine's overhead against the one-process run of the
same format (1 - its whole-process rate / the one-process one).

What binds each format: in this process, on one shard of the generator's real images, the CPU µs a sample of
making the images (the lanes' fill, one lane of all threads), of the format's encoding (a PNG each for
webdataset and parquet, and the tar or Parquet assembly around them, timed apart), and of writing the bytes
(atomic, fsync; the npy shard is the raw uint8 write). The format's ceiling on C cores is C / (make + encode +
write); the stage that takes the most of it binds.

Writes ``benchmarks/results/formats-<cpu>-<date>.json`` and ``.md``. Caches (the ONNX export, ``--precision
auto``'s choice, the lanes split) are warmed by a first small run and not timed. The load average is recorded
before and after: on a busy machine every number moves.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.harness import add_run_arguments, cpu_path, write_results
from benchmarks.run_sampling import ROOT, run_process, slug, timed
from gankit.backends import create_backend
from gankit.checkpoint import load_generator
from gankit.perf.environment import environment
from gankit.pixels import png_bytes
from gankit.sampling.formats import parquet_shard, webdataset_shard
from gankit.sampling.lanes import open_lanes
from gankit.sampling.writer import write_file, write_shard

FORMATS = ("npy", "webdataset", "parquet")
ENGINES = ("one process", "torchrun 2 ranks", "ray 2 workers")
SHARD = 65536
META = {"seed": 0, "model_sha256": "0" * 64, "noise": "bench"}


def command(engine: str, fmt: str, n: int, name: str, precision: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one run."""
    options = ["--backend", name, "--precision", precision, "--format", fmt, "--shard-size", str(SHARD)]
    options += ["--out", str(out), "--quiet"]
    env = dict(os.environ)
    if engine == "torchrun 2 ranks":
        env["OMP_NUM_THREADS"] = "1"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        return [*launcher, "-m", "gankit", "sample", "--num-samples", str(n), *options], env
    base = [sys.executable, "-m", "gankit", "sample", "--n", str(n), *options]
    return (base + ["--engine", "ray", "--workers", "2"] if engine == "ray 2 workers" else base), env


def checksums(out: Path) -> list[tuple[str, str]]:
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["status"] != "complete":
        raise SystemExit(f"{out}: the run did not complete ({manifest['status']})")
    return [(shard["file"], shard["crc32"]) for shard in manifest["shards"]]


def engines(fmt: str, n: int, name: str, precision: str, workdir: Path) -> dict[str, dict[str, float]]:
    """Every engine's whole-process and steady rates for ``fmt``; SystemExit when one wrote other bytes."""
    results, reference = {}, None
    for engine in ENGINES:
        out = workdir / f"{fmt}-{engine.split()[0]}"
        line, env = command(engine, fmt, n, name, precision, out)
        seconds, stdout = run_process(line, env)
        found = re.search(r": ([\d,]+) samples/s", stdout)
        sums = checksums(out)
        reference = reference or sums
        if sums != reference:
            raise SystemExit(f"{engine} wrote other {fmt} shards than one process: not a measurement")
        shutil.rmtree(out)
        results[engine] = {
            "whole_per_second": n / seconds,
            "wall_seconds": seconds,
            "steady_per_second": float(found.group(1).replace(",", "")) if found else float("nan"),
        }
        print(f"{fmt:<11} {engine:<17} {n / seconds:>10,.0f}/s whole process ({seconds:.1f} s)", flush=True)
    one = results[ENGINES[0]]["whole_per_second"]
    for engine in ENGINES[1:]:
        results[engine]["overhead"] = 1 - results[engine]["whole_per_second"] / one
    return results


def stages(name: str, precision: str, count: int, workdir: Path) -> dict[str, dict[str, float]]:
    """CPU µs a sample (and samples/s) of each stage of each format, on ``count`` of the generator's images."""
    backend = create_backend(name, load_generator(), precision=precision, device="cpu")
    (lane,) = open_lanes(backend, 1, torch.get_num_threads())
    images = torch.empty((count, *backend.config.image_shape), dtype=torch.uint8)

    def make() -> None:
        for offset in range(0, count, 4096):
            lane.fill(0, offset, images[offset : offset + 4096])

    out = {"make the images (noise, model, uint8)": timed(make, count)}
    array = images.numpy()
    pngs = [png_bytes(image) for image in array]
    tar, table = webdataset_shard(0, array, None, META), parquet_shard(0, array, None)
    out["PNG encoding (pixels.png_bytes)"] = timed(lambda: [png_bytes(image) for image in array], count)
    out["webdataset: tar around the PNGs (whole shard less PNGs)"] = _less(
        timed(lambda: webdataset_shard(0, array, None, META), count), out["PNG encoding (pixels.png_bytes)"]
    )
    out["parquet: table around the PNGs (whole shard less PNGs)"] = _less(
        timed(lambda: parquet_shard(0, array, None), count), out["PNG encoding (pixels.png_bytes)"]
    )
    target = workdir / "stages"
    target.mkdir()
    out["npy: write raw uint8 (atomic, O_DIRECT, fsync)"] = timed(lambda: write_shard(target, "s.npy", 0, array), count)
    for label, data, suffix in (("webdataset", tar, "tar"), ("parquet", table, "parquet")):
        out[f"{label}: write its bytes (atomic, fsync)"] = timed(
            partial(write_file, target / f"s.{suffix}", data), count
        )
    shutil.rmtree(target)
    out["bytes a sample"] = {
        "npy": float(array[0].nbytes),
        "png": sum(map(len, pngs)) / count,
        "webdataset": len(tar) / count,
        "parquet": len(table) / count,
    }
    return out


def _less(whole: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    """A stage's CPU cost without a part timed apart (its rate: the rate of what is left)."""
    cpu = whole["cpu_us"] - part["cpu_us"]
    return {"per_second": 1e6 / cpu if cpu > 0 else float("inf"), "cpu_us": cpu}


def binding(stage: dict[str, dict[str, float]], threads: int) -> dict[str, dict[str, object]]:
    """Each format's CPU µs a sample by stage, its ceiling on ``threads`` cores and the stage that binds."""
    make = stage["make the images (noise, model, uint8)"]["cpu_us"]
    png = stage["PNG encoding (pixels.png_bytes)"]["cpu_us"]
    parts = {
        "npy": {"make": make, "write": stage["npy: write raw uint8 (atomic, O_DIRECT, fsync)"]["cpu_us"]},
        "webdataset": {
            "make": make,
            "PNG": png,
            "tar": stage["webdataset: tar around the PNGs (whole shard less PNGs)"]["cpu_us"],
            "write": stage["webdataset: write its bytes (atomic, fsync)"]["cpu_us"],
        },
        "parquet": {
            "make": make,
            "PNG": png,
            "table": stage["parquet: table around the PNGs (whole shard less PNGs)"]["cpu_us"],
            "write": stage["parquet: write its bytes (atomic, fsync)"]["cpu_us"],
        },
    }
    out = {}
    for fmt, costs in parts.items():
        total = sum(costs.values())
        out[fmt] = {
            "cpu_us_a_sample": costs,
            "ceiling_per_second": threads * 1e6 / total,
            "binds": max(costs, key=costs.get),
            "png_over_raw_write": png / parts["npy"]["write"] if "PNG" in costs else None,
        }
    return out


def markdown(result: dict) -> list[str]:
    env = result["environment"]
    note = f" ({result['note']})" if result["note"] else ""
    lines = [
        f"On {env['cpu']}, {env['cpu_count']} CPUs, {env['date']}{note}. Path: **{result['path']['backend']} "
        f"{result['path']['precision']}** ({result['path']['why']}); N = {result['n']:,} uint8 samples a run, shards "
        f"of {SHARD:,}; load average {result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after; "
        f"commit {env['git_commit'][:12]}. Every engine's shards were checked equal (CRC-32) to one process's.",
        "",
        "| format | engine | samples/s, whole process | steady (as it reports) | overhead vs one process |",
        "|---|---|---:|---:|---:|",
    ]
    for fmt, rows in result["engines"].items():
        for engine, row in rows.items():
            overhead = f"{row['overhead']:.0%}" if "overhead" in row else "-"
            lines.append(
                f"| {fmt} | {engine} | {row['whole_per_second']:,.0f} | {row['steady_per_second']:,.0f} | {overhead} |"
            )
    lines += ["", "| stage (one shard, in one process) | samples/s | CPU µs a sample |", "|---|---:|---:|"]
    for label, value in result["stages"].items():
        if label != "bytes a sample":
            lines.append(f"| {label} | {value['per_second']:,.0f} | {value['cpu_us']:.2f} |")
    sizes = result["stages"]["bytes a sample"]
    lines += ["", "Bytes a sample: " + ", ".join(f"{k} {v:,.0f}" for k, v in sizes.items()) + ".", ""]
    for fmt, bound in result["binding"].items():
        costs = ", ".join(f"{k} {v:.2f}" for k, v in bound["cpu_us_a_sample"].items())
        png = bound["png_over_raw_write"]
        extra = f"; a PNG costs {png:.1f}x the raw uint8 write of its sample" if png else ""
        lines.append(
            f"- {fmt}: CPU µs a sample {costs}; ceiling on {result['threads']} cores "
            f"{bound['ceiling_per_second']:,.0f}/s; binds: **{bound['binds']}**{extra}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples a run [%(default)s]")
    add_run_arguments(parser, "formats")
    args = parser.parse_args()
    load_before = os.getloadavg()
    name, precision, why = cpu_path(args.path)
    print(f"path: {name} {precision} ({why})", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gankit-formats-", dir=args.workdir))
    try:
        warm, env = command("one process", "npy", 4096, name, precision, workdir / "warm")
        run_process(warm, env)  # the export, the lanes split: cached, not timed
        begin = time.perf_counter()
        stage = stages(name, precision, min(args.n, SHARD), workdir)
        for label, value in stage.items():
            if label != "bytes a sample":
                print(f"{label:<58} {value['per_second']:>12,.0f}/s  {value['cpu_us']:.2f} CPU µs a sample")
        rates = {fmt: engines(fmt, args.n, name, precision, workdir) for fmt in FORMATS}
        print(f"measured in {time.perf_counter() - begin:.0f} s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    threads = torch.get_num_threads()
    result = {
        "environment": environment(torch.device("cpu")),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "path": {"backend": name, "precision": precision, "why": why},
        "n": args.n,
        "shard_size": SHARD,
        "threads": threads,
        "note": args.note,
        "engines": rates,
        "stages": stage,
        "binding": binding(stage, threads),
        "versions": {m: __import__(m).__version__ for m in ("ray", "pyarrow", "webdataset")},
    }
    date = datetime.date.today().isoformat()
    out = args.out or ROOT / "benchmarks" / "results" / f"formats-{slug()}-{date}.json"
    lines = markdown(result)
    write_results(out, result, "\n".join(["# Shard formats and engines, samples/s to disk", "", *lines]))
    print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
