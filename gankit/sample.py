"""The sampling engine: a seed's index range -> images on disk, in shards, resumable, across ranks.

Layout of an ``npy`` (or ``png``) run folder::

    manifest.json            job (model hash, seed, range, backend, precision, ...) and the shard list
    shard_00000.npy          samples [start, start + shard_size) as (count, C, H, W) uint8 or float16
    .journal/<run>-rank<r>.json   shards finished by one rank of one run (each rewritten atomically)

Shards are fixed index ranges, so their contents do not depend on the number of processes or on
interruptions: a shard file appears under its final name only once complete (temp file + rename), a
journal records it (with size and sha256) right after, and ``resume`` regenerates whatever is not
recorded. Rank 0 merges the journals into ``manifest.json`` at the end (and on Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gankit.backends import Backend, backend_class, backend_names, create_backend
from gankit.checkpoint import PRETRAINED, atomic_path, load_generator, sha256_of
from gankit.errors import BackendError, GankitError, SamplingError
from gankit.images import save_grid, save_png
from gankit.model import Generator
from gankit.version import __version__

FORMATS = ("npy", "png", "grid")
DTYPES = ("uint8", "float16")
MANIFEST = "manifest.json"
JOURNALS = ".journal"
MAX_GRID = 4096
MAX_PNG = 100_000


@dataclass
class SampleJob:
    """What to generate and where. ``out`` is a folder for npy/png, a .png file for grid."""

    out: Path
    n: int
    model: Path | None = None
    seed: int = 0
    start: int = 0
    backend: str = "auto"
    precision: str = "fp32"
    batch_size: int = 4096
    format: str = "npy"
    dtype: str = "uint8"
    shard_size: int = 65536
    device: str = "auto"
    compile_mode: str = "default"
    resume: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.model = Path(self.model) if self.model is not None else None
        if self.n <= 0:
            raise SamplingError(f"--n must be positive, got {self.n}")
        if self.start < 0 or not 0 <= self.seed < 2**64:
            raise SamplingError(f"need --start >= 0 and 0 <= --seed < 2**64 (got {self.start}, {self.seed})")
        if self.batch_size <= 0 or self.shard_size <= 0:
            raise SamplingError(
                f"--batch-size and --shard-size must be positive ({self.batch_size}, {self.shard_size})"
            )
        if self.format not in FORMATS:
            raise SamplingError(f"unknown --format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.dtype not in DTYPES:
            raise SamplingError(f"unknown --dtype {self.dtype!r}; choose from {', '.join(DTYPES)}")
        if self.format == "grid" and self.n > MAX_GRID:
            raise SamplingError(f"a grid holds at most {MAX_GRID} samples (asked {self.n}); use --format npy")
        if self.format == "png" and self.n > MAX_PNG:
            raise SamplingError(f"--format png writes one file a sample, at most {MAX_PNG}; use --format npy")

    @property
    def model_path(self) -> Path:
        return self.model or PRETRAINED


@dataclass
class ShardRecord:
    file: str
    start: int
    count: int
    bytes: int
    sha256: str


@dataclass
class SampleResult:
    out: Path
    backend: str
    samples_written: int
    seconds: float
    warmup_seconds: float
    interrupted: bool = False
    shards: list[ShardRecord] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        return self.samples_written / self.seconds if self.seconds > 0 else float("nan")


# ----------------------------------------------------------------------------- backends


def _is_onnx(path: Path) -> bool:
    return path.suffix == ".onnx"


def _auto_backend_name(job: SampleJob, generator: Generator | None) -> tuple[str, str]:
    """(backend name, why) for ``--backend auto``."""
    if generator is None:
        return "onnxruntime", "the model is an ONNX export"
    if torch.cuda.is_available() and job.device != "cpu":
        triton_ok = "triton" in backend_names() and backend_class("triton").unavailable_reason() is None
        if triton_ok and job.precision in backend_class("triton").precisions:
            return "triton", "CUDA device found: the fused whole-generator Triton kernel is the fastest path there"
        return "compile", "CUDA device found, Triton unavailable: torch.compile is the next fastest"
    from gankit.autoselect import choose_cpu_backend

    return choose_cpu_backend(generator, sha256_of(job.model_path), job.precision, min(job.batch_size, job.n))


def _auto_path(job: SampleJob, generator: Generator | None) -> tuple[str, str, str]:
    """(backend, precision, why) for ``--precision auto``."""
    if generator is None:
        raise BackendError("--precision auto needs a generator checkpoint; an ONNX export has its precision fixed")
    if torch.cuda.is_available() and job.device != "cpu":
        name = job.backend if job.backend != "auto" else _auto_backend_name(job, generator)[0]
        return name, "fp32", "on a GPU, --precision auto keeps fp32 (the low-precision choice is measured on CPUs)"
    from gankit.autoselect import choose_cpu_path

    name, precision, why = choose_cpu_path(generator, sha256_of(job.model_path), min(job.batch_size, job.n))
    if job.backend not in ("auto", name):
        raise BackendError(f"--precision auto picks a backend too ({name} {precision}); use it with --backend auto")
    return name, precision, why


def open_backend(job: SampleJob, log: Callable[[str], None] = print) -> Backend:
    """Build the job's backend (resolving ``auto`` and saying which it picked and why)."""
    path = job.model_path
    generator = None if _is_onnx(path) else load_generator(path)
    name = job.backend
    if job.precision == "auto":
        name, precision, why = _auto_path(job, generator)
        log(f"precision auto -> {name} {precision} ({why})")
        job = replace(job, backend=name, precision=precision)
    if name == "auto":
        name, why = _auto_backend_name(job, generator)
        log(f"backend auto -> {name} ({why})")
    if generator is None:
        if name not in ("onnxruntime", "openvino"):
            raise BackendError(
                f"{path} is an ONNX model: it runs on --backend onnxruntime, openvino or auto, not {name!r}"
            )
        return create_backend(name, path, precision=job.precision, device=job.device)
    options: dict[str, Any] = {"device": job.device}
    if name == "compile":
        options.update(mode=job.compile_mode, batch_size=job.batch_size)
    return create_backend(name, generator, precision=job.precision, **options)


# ----------------------------------------------------------------------------- distributed


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_environment(cls) -> Ranks:
        """torchrun sets WORLD_SIZE/RANK; join its process group (NCCL on GPU, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            use_nccl = torch.cuda.is_available()
            if use_nccl:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if use_nccl else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def broadcast(self, value: Any) -> Any:
        """rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        boxes: list[Any] = [None] * self.world
        dist.all_gather_object(boxes, value)
        return boxes


# ----------------------------------------------------------------------------- manifest


def _job_header(job: SampleJob, backend: Backend, model_sha: str) -> dict[str, Any]:
    return {
        "model": {"path": str(job.model_path), "sha256": model_sha},
        "config": json.loads(backend.config.to_json()),
        "seed": job.seed,
        "start": job.start,
        "n": job.n,
        "format": job.format,
        "dtype": job.dtype,
        "shard_size": job.shard_size,
        "backend": backend.name,
        "precision": backend.precision,
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SamplingError(f"{path}: unreadable ({exc}); remove the folder or choose another --out") from exc


MUST_MATCH_ON_RESUME = ("model", "seed", "start", "n", "format", "dtype", "shard_size", "backend", "precision")


def _check_resumable(existing: dict[str, Any], header: dict[str, Any], out: Path) -> None:
    for key in MUST_MATCH_ON_RESUME:
        if existing.get("job", {}).get(key) != header[key]:
            raise SamplingError(
                f"{out} holds a run with another {key} ({existing.get('job', {}).get(key)!r}, now {header[key]!r}); "
                "resume refuses to mix them: use the same options or another --out"
            )


def _recorded_shards(out: Path, manifest: dict[str, Any]) -> dict[str, ShardRecord]:
    """Shards listed in the manifest or any journal whose file is still there with the recorded size."""
    found: dict[str, ShardRecord] = {}
    entries = list(manifest.get("shards", []))
    journal_dir = out / JOURNALS
    if journal_dir.is_dir():
        for journal in sorted(journal_dir.glob("*.json")):
            entries.extend(_read_json(journal).get("shards", []))
    for entry in entries:
        record = ShardRecord(**entry)
        target = out / record.file
        if target.is_file() and target.stat().st_size == record.bytes or record.file.endswith("/"):
            found[record.file] = record
    return found


def _write_manifest(out: Path, header: dict[str, Any], shards: list[ShardRecord], status: str) -> None:
    _write_json(
        out / MANIFEST,
        {
            "gankit_version": __version__,
            "status": status,
            "job": header,
            "samples": sum(s.count for s in shards),
            "shards": [asdict(s) for s in sorted(shards, key=lambda s: s.start)],
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


# ----------------------------------------------------------------------------- writing


class _HashingFile:
    """A write-only file wrapper that hashes what goes through it."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)


def _shard_name(job: SampleJob, index: int) -> str:
    return f"shard_{index:05d}.npy" if job.format == "npy" else f"shard_{index:05d}/"


def _write_shard(out: Path, name: str, first: int, images: np.ndarray) -> ShardRecord:
    """Write one shard atomically; OSError (disk full, permissions) propagates with nothing half-written."""
    if name.endswith("/"):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        for offset, image in enumerate(images):
            path = folder / f"{first + offset:09d}.png"
            with atomic_path(path) as tmp:
                save_png(torch.from_numpy(image), tmp)
            data = path.read_bytes()
            digest.update(data)
            size += len(data)
        return ShardRecord(name, first, len(images), size, digest.hexdigest())
    with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
        hashing = _HashingFile(handle)
        np.lib.format.write_array(hashing, images, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    return ShardRecord(name, first, len(images), hashing.size, hashing.digest.hexdigest())


class _Writer:
    """A background thread that turns finished shard buffers into files, so generation never waits on disk."""

    def __init__(self, out: Path, journal: Path) -> None:
        self.out, self.journal = out, journal
        self._closed = False
        self.records: list[ShardRecord] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._loop, name="gankit-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue
            name, first, buffer, ready = item
            try:
                if ready is not None:
                    ready.synchronize()
                record = _write_shard(self.out, name, first, buffer.numpy())
                self.records.append(record)
                _write_json(self.journal, {"shards": [asdict(r) for r in self.records]})
            except BaseException as exc:  # reported to the producer on its next put or at close
                self.error = exc

    def put(self, name: str, first: int, buffer: torch.Tensor, ready: torch.cuda.Event | None) -> None:
        self._raise_if_failed()
        self._queue.put((name, first, buffer, ready))

    def close(self, raise_error: bool = True) -> None:
        """Wait for the queued shards to be written; then raise the writer's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is None:
            return
        error = self.error
        if isinstance(error, OSError):
            raise SamplingError(
                f"cannot write under {self.out} ({error.strerror or error}); the {len(self.records)} shard(s) "
                "written so far are recorded: free space or fix permissions, then rerun with --resume"
            ) from error
        raise error


def _shards_of(job: SampleJob) -> Iterator[tuple[int, int, int]]:
    """(shard index, first sample, count) over the job's range."""
    for index, offset in enumerate(range(0, job.n, job.shard_size)):
        yield index, job.start + offset, min(job.shard_size, job.n - offset)


def _generate_shard(backend: Backend, job: SampleJob, first: int, count: int) -> tuple[torch.Tensor, Any]:
    """Generate one shard into a host buffer (pinned, filled by async copies on a GPU)."""
    output = "uint8" if job.dtype == "uint8" else "float"
    on_gpu = backend.device.type == "cuda"
    dtype = torch.uint8 if job.dtype == "uint8" else torch.float16
    host = torch.empty((count, *backend.config.image_shape), dtype=dtype, pin_memory=on_gpu)
    for offset in range(0, count, job.batch_size):
        size = min(job.batch_size, count - offset)
        images = backend.generate_seeded(job.seed, first + offset, size, output=output)
        host[offset : offset + size].copy_(images.to(dtype) if images.dtype != dtype else images, non_blocking=on_gpu)
    ready = None
    if on_gpu:
        ready = torch.cuda.Event()
        ready.record()
    return host, ready


# ----------------------------------------------------------------------------- public API


def generate(
    model: str | Path | None = None,
    n: int = 64,
    seed: int = 0,
    start: int = 0,
    backend: str = "auto",
    precision: str = "fp32",
    batch_size: int = 4096,
    output: str = "float",
    device: str = "auto",
) -> torch.Tensor:
    """Samples start .. start+n-1 of ``seed`` in memory: (n, C, H, W) float32 in [-1, 1] or uint8, on the CPU."""
    job = SampleJob(Path("."), n, model, seed, start, backend, precision, batch_size, device=device)
    engine = open_backend(job, log=lambda message: None)
    chunks = [
        engine.generate_seeded(seed, first, min(batch_size, start + n - first), output=output).cpu()
        for first in range(start, start + n, batch_size)
    ]
    return torch.cat(chunks)


def sample(job: SampleJob, progress: bool = True, log: Callable[[str], None] = print) -> SampleResult:
    """Run ``job``: write its samples (see the module docstring) and return what was done."""
    if job.format == "grid":
        return _sample_grid(job, log)
    ranks = Ranks.from_environment()
    backend = open_backend(job, log=log if ranks.rank == 0 else (lambda message: None))
    header = _job_header(job, backend, sha256_of(job.model_path))
    done = ranks.broadcast(_prepare_folder(job, header) if ranks.rank == 0 else None)
    if isinstance(done, GankitError):
        raise done
    pending = [s for s in _shards_of(job) if _shard_name(job, s[0]) not in done]
    mine = pending[ranks.rank :: ranks.world]
    run_id = ranks.broadcast(uuid.uuid4().hex[:8])
    journal = job.out / JOURNALS / f"{run_id}-rank{ranks.rank}.json"

    warmup = getattr(backend, "warmup", lambda: 0.0)()
    if warmup and ranks.rank == 0:
        log(f"warm-up (compile) took {warmup:.1f} s; not counted in the throughput")
    total = sum(count for _, _, count in mine)
    bar = tqdm(total=total, unit="sample", unit_scale=True, disable=not progress or ranks.rank != 0)
    writer = _Writer(job.out, journal)
    interrupted = False
    begin = time.perf_counter()
    try:
        for index, first, count in mine:
            buffer, ready = _generate_shard(backend, job, first, count)
            writer.put(_shard_name(job, index), first, buffer, ready)
            bar.update(count)
        writer.close()
    except KeyboardInterrupt:
        interrupted = True
        writer.close()
    except BaseException:
        if ranks.world == 1:  # keep the manifest in step with what is on disk, then report the failure
            writer.close(raise_error=False)
            _write_manifest(job.out, header, list(done.values()) + writer.records, "partial")
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - begin

    everything = [r for records in ranks.gather(writer.records) for r in records]
    if ranks.rank == 0:
        shards = list(done.values()) + everything
        complete = not interrupted and sum(s.count for s in shards) == job.n
        _write_manifest(job.out, header, shards, "complete" if complete else "partial")
        if complete:
            for stale in (job.out / JOURNALS).glob("*.json"):
                stale.unlink()
    written = sum(r.count for r in writer.records)
    return SampleResult(job.out, backend.describe(), written, seconds, warmup, interrupted, writer.records)


def _prepare_folder(job: SampleJob, header: dict[str, Any]) -> dict[str, ShardRecord] | GankitError:
    """Create or check the output folder on rank 0: the shards already done, or the error to raise."""
    try:
        manifest_path = job.out / MANIFEST
        if manifest_path.exists():
            if not job.resume:
                raise SamplingError(
                    f"{job.out} already holds a sampling run: add --resume to continue it, or pick another --out"
                )
            manifest = _read_json(manifest_path)
            _check_resumable(manifest, header, job.out)
            return _recorded_shards(job.out, manifest)
        if job.out.exists() and not job.out.is_dir():
            raise SamplingError(f"{job.out} is a file; --out must be a folder for --format {job.format}")
        job.out.mkdir(parents=True, exist_ok=True)
        (job.out / JOURNALS).mkdir(exist_ok=True)
        _write_manifest(job.out, header, [], "running")
        return {}
    except GankitError as exc:
        return exc
    except OSError as exc:
        return SamplingError(f"cannot write to {job.out} ({exc.strerror or exc}); choose a writable --out")


def _sample_grid(job: SampleJob, log: Callable[[str], None]) -> SampleResult:
    if job.out.suffix != ".png":
        raise SamplingError(f"--format grid writes one PNG: --out must end in .png (got {job.out})")
    backend = open_backend(job, log=log)
    begin = time.perf_counter()
    images = torch.cat(
        [
            backend.generate_seeded(
                job.seed, first, min(job.batch_size, job.start + job.n - first), output="uint8"
            ).cpu()
            for first in range(job.start, job.start + job.n, job.batch_size)
        ]
    )
    try:
        save_grid(images, job.out)
    except OSError as exc:
        raise SamplingError(f"cannot write {job.out} ({exc.strerror or exc})") from exc
    return SampleResult(job.out, backend.describe(), job.n, time.perf_counter() - begin, 0.0)
