"""End-to-end samples/s to disk, by backend and format, next to the backend's generation-only rate.

    python benchmarks/run_sampling.py --out benchmarks/results/sampling-cpu-YYYY-MM-DD.json

The ratio "to disk / generation only" says whether the writer keeps up (1.0 = disk and Python
cost nothing) on this machine. "generation only" times the backend on a fixed z; the end-to-end
run also makes the noise (``gankit.noise``), whose own rate is recorded as ``noise_per_second``.
Backends are NAME or NAME:PRECISION. Writes JSON with the environment (see gankit.perf.bench.environment).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gankit.backends import create_backend
from gankit.checkpoint import load_generator
from gankit.errors import GankitError
from gankit.io import atomic_path
from gankit.noise import noise
from gankit.perf.environment import environment
from gankit.sampling.engine import SampleJob, sample
from gankit.timing import time_cpu, time_gpu


def noise_rate(batch: int, device: str, repeats: int = 8) -> float:
    noise(0, 0, batch, 100, device=device)
    begin = time.perf_counter()
    for i in range(repeats):
        noise(0, i * batch, batch, 100, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return repeats * batch / (time.perf_counter() - begin)


def generation_rate(backend_name: str, precision: str, batch: int, device: str) -> float:
    """Median samples/s of ``generate(z, output="uint8")`` on a fixed z (no noise, no disk)."""
    options = {"device": device}
    if backend_name == "compile":
        options["batch_size"] = batch
    backend = create_backend(backend_name, load_generator(), precision=precision, **options)
    z = noise(0, 0, batch, backend.config.latent_dim, device=device)
    gc.collect()  # drop earlier sessions, and let onnxruntime's spinning threads fall asleep
    time.sleep(0.3)
    if device == "cuda":
        times = time_gpu(lambda: backend.generate(z, output="uint8"))
    else:
        times = time_cpu(lambda: backend.generate(z, output="uint8"), min_seconds=0.5)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=262_144)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument(
        "--backends", default="eager,compile,onnxruntime,onnxruntime:int8,openvino:bf16", help="NAME[:PRECISION],..."
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    cases = [("npy", "uint8", args.n), ("npy", "float16", args.n), ("png", "uint8", min(args.n, 4096))]
    rows = []
    noise_per_second = noise_rate(args.batch_size, args.device)
    print(f"noise alone: {noise_per_second:,.0f} latent vectors/s at batch {args.batch_size}", flush=True)
    for entry in args.backends.split(","):
        backend, _, precision = entry.partition(":")
        precision = precision or "fp32"
        try:
            generation = generation_rate(backend, precision, args.batch_size, args.device)
        except GankitError as exc:
            rows.append({"backend": backend, "precision": precision, "status": f"unavailable: {exc}"})
            print(f"{entry}: unavailable ({exc})", flush=True)
            continue
        for fmt, dtype, n in cases:
            folder = Path(tempfile.mkdtemp(prefix="gankit-bench-"))
            try:
                job = SampleJob(
                    folder / "out",
                    n=n,
                    backend=backend,
                    precision=precision,
                    format=fmt,
                    dtype=dtype,
                    batch_size=args.batch_size,
                    shard_size=65536,
                    device=args.device,
                )
                result = sample(job, progress=False, log=lambda message: None)
            finally:
                shutil.rmtree(folder)
            row = {
                "backend": backend,
                "precision": precision,
                "format": fmt,
                "dtype": dtype,
                "n": n,
                "batch": args.batch_size,
                "seconds": result.seconds,
                "warmup_seconds": result.warmup_seconds,
                "samples_per_second_to_disk": result.samples_per_second,
                "samples_per_second_generation_only": generation,
                "to_disk_over_generation": result.samples_per_second / generation,
                "status": "ok",
            }
            rows.append(row)
            print(
                f"{entry:<16} {fmt:<4} {dtype:<8} n={n:<8} {result.samples_per_second:>12,.0f} samples/s to disk "
                f"(generation only {generation:,.0f}/s, ratio {row['to_disk_over_generation']:.2f})",
                flush=True,
            )
    payload = {
        "environment": environment(torch.device(args.device)),
        "noise_per_second": noise_per_second,
        "results": rows,
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
