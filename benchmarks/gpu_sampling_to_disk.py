"""10 M uint8 samples to disk through gankit's sampling engine on a GPU, beside the ceilings that bound it.

    python -m benchmarks.gpu_sampling_to_disk --out disk.json [--n 10000000] [--dir DIR] [--deadline-s 80]

The engine (``gankit.sampling.engine.sample``: triton backend, bf16, noise made in the kernel, uint8 .npy
shards of 65,536 samples, each checksummed (CRC-32) and fsync'd by a writer thread behind the
generator) writes ``--n`` samples under ``--dir`` (default: a new folder in the current directory;
removed at the end; its filesystem is recorded). Measured in the same run, on the same bytes (the
real images of one shard):

- disk: as many shard-sized files as the run writes, each written with ``ndarray.tofile`` and
  fsync'd: the disk's own write rate, the target's yardstick (before and after the run; the faster);
- checksum: the writer's own CRC-32 (``gankit.sampling.writer.checksum``) over the shard, in one thread;
- generation: the backend's seed -> uint8 launch at the shard size (``do_bench``), and the copy of
  one shard into pinned host memory.

The writer checksums, then writes and fsyncs, one after the other, so it is bound by
1 / (1/checksum + 1/disk); ``binding`` names the smallest of that, the generation and the copy.
Target: samples/s to disk >= 90 % of the disk's own rate. With ``--deadline-s``, n shrinks to what
the ceilings measured first say fits (recorded as ``n`` beside ``n_asked``). The first shard on disk
is compared with the backend's own images of the same indices.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gankit.sampling.writer import checksum

SHARD = 65536


def write_files(folder: Path, data: np.ndarray, count: int, stop_at: float | None = None) -> dict:
    """``count`` files of ``data`` (tofile, then fsync each), or fewer once ``stop_at`` (monotonic) passes."""
    begin, written = time.perf_counter(), 0
    try:
        for index in range(count):
            with open(folder / f"ceiling_{index:05d}.bin", "wb") as handle:
                data.tofile(handle)
                handle.flush()
                os.fsync(handle.fileno())
            written += data.nbytes
            if stop_at is not None and time.monotonic() > stop_at:
                break
        seconds = time.perf_counter() - begin
    finally:
        for path in folder.glob("ceiling_*.bin"):
            path.unlink()
    return {"bytes": written, "seconds": seconds, "bytes_per_s": written / seconds}


def checksum_bytes_per_s(data: np.ndarray, min_seconds: float = 0.5) -> float:
    """Bytes/s of the writer's checksum over ``data`` (one thread, as the writer does it)."""
    begin, hashed = time.perf_counter(), 0
    while hashed == 0 or time.perf_counter() - begin < min_seconds:
        checksum(data)
        hashed += data.nbytes
    return hashed / (time.perf_counter() - begin)


def filesystem(folder: Path) -> dict:
    """The mount that holds ``folder``: mount point, type, device (from /proc/mounts), and its free bytes."""
    path, best = str(folder.resolve()), {"mount": "/", "type": "unknown", "device": "unknown"}
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best["mount"]):
                best = {"mount": mount, "type": kind, "device": device}
    except OSError:
        pass
    return {**best, "free_bytes": shutil.disk_usage(folder).free}


def binding(samples_per_s: dict[str, float]) -> tuple[str, float]:
    """The writer's serial bound from the checksum and disk rates, then the smallest of it and the others."""
    bounds = {
        "writer thread (checksum, then write + fsync)": 1 / (1 / samples_per_s["checksum"] + 1 / samples_per_s["disk"]),
        "generation (seed -> uint8 kernel)": samples_per_s["generation"],
        "device-to-host copy": samples_per_s["copy"],
    }
    name = min(bounds, key=bounds.get)
    return name, bounds[name]


def fitted_n(asked: int, rate: float, seconds_left: float) -> int:
    """``asked`` samples, or the whole shards that ``rate`` writes in ``seconds_left`` (at least one)."""
    if asked / rate <= seconds_left:
        return asked
    return max(SHARD, int(rate * seconds_left) // SHARD * SHARD)


def generation_rates(backend) -> tuple[np.ndarray, dict[str, float]]:
    """One shard of real images (samples 0 .. SHARD-1 of seed 0), and samples/s of the launch and of the copy."""
    import torch

    from benchmarks.bench_gpu_kernels import timed

    images = backend.generate_seeded(0, 0, SHARD, output="uint8")  # autotunes the kernel for this shape
    host = torch.empty(images.shape, dtype=torch.uint8, pin_memory=True)
    rates = {
        "generation": SHARD / timed(lambda: backend.generate_seeded(0, 0, SHARD, output="uint8"))["median_s"],
        "copy": SHARD / timed(lambda: host.copy_(images, non_blocking=True))["median_s"],
    }
    return images.cpu().numpy(), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a new folder here)")
    parser.add_argument("--deadline-s", type=float, default=None, help="fit the run into this many seconds")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_sampling_to_disk.py needs a CUDA GPU and found none.")
    from benchmarks.harness import environment, write_results
    from gankit.backends.triton import TritonBackend
    from gankit.checkpoint import load_generator
    from gankit.sampling.engine import sample
    from gankit.sampling.job import SampleJob

    begin = time.monotonic()
    stop_at = begin + args.deadline_s if args.deadline_s else None
    folder = Path(tempfile.mkdtemp(prefix=".gpu-disk-", dir=args.dir or Path.cwd()))
    report: dict = {"environment": environment(torch.device("cuda")), "n_asked": args.n, "filesystem": {}}
    try:
        report["filesystem"] = filesystem(folder)
        backend = TritonBackend(load_generator(), precision="bf16", device="cuda")
        shard, rates = generation_rates(backend)
        image_bytes = shard[0].nbytes
        rates["checksum"] = checksum_bytes_per_s(shard) / image_bytes
        room = int(report["filesystem"]["free_bytes"] * 0.8) // shard.nbytes * SHARD
        n = min(args.n, max(SHARD, room))
        ceiling_stop = begin + 0.3 * args.deadline_s if args.deadline_s else None
        report["disk_before"] = write_files(folder, shard, -(-n // SHARD), ceiling_stop)
        rates["disk"] = report["disk_before"]["bytes_per_s"] / image_bytes
        _, bound = binding(rates)
        if stop_at is not None:  # leave a third of what is left for the second ceiling and the cleanup
            n = fitted_n(n, bound, (stop_at - time.monotonic()) * 0.6)
        report.update(n=n, samples_per_s=rates)
        job = SampleJob(folder / "run", n=n, backend="triton", precision="bf16", batch_size=SHARD, shard_size=SHARD)
        result = sample(job, progress=False)
        first = np.load(folder / "run" / "shard_00000.npy")
        report["first_shard_equals_backend"] = bool(np.array_equal(first, shard))
        shutil.rmtree(folder / "run")
        report["disk_after"] = write_files(folder, shard, -(-n // SHARD), stop_at)
        rates["disk"] = max(report["disk_before"]["bytes_per_s"], report["disk_after"]["bytes_per_s"]) / image_bytes
        name, bound = binding(rates)
        report.update(
            to_disk_samples_per_s=result.samples_per_second,
            to_disk_seconds=result.seconds,
            to_disk_interrupted=result.interrupted,  # SIGINT at the step's time limit stops the engine early
            disk_ceiling_samples_per_s=rates["disk"],
            to_disk_over_disk_ceiling=result.samples_per_second / rates["disk"],
            bound_samples_per_s=bound,
            binding=f"{name}: {bound:,.0f} samples/s; measured {result.samples_per_second / bound:.0%} of it",
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        write_results(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "environment"}, indent=1))


if __name__ == "__main__":
    main()
