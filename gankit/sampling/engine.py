"""The sampling engine: a seed's index range -> images on disk in shards (resumable, across torchrun ranks),
or in memory.

Layout of an ``npy`` (or ``png``) run folder::

    manifest.json            job (model hash, seed, range, backend, precision, labels, ...) and the shard list
    shard_00000.npy          samples [start, start + shard_size) as (count, C, H, W) uint8 or float16
    shard_00000.labels.npy   a class-conditional generator only: their labels, (count,) int64 (``gankit.labels``)
    .journal/<run>-rank<r>.json   shards finished by one rank of one run (each rewritten atomically)

``webdataset`` and ``parquet`` runs write ``shard-00000.tar`` or ``shard-00000.parquet`` instead, the labels inside
(``gankit.sampling.formats``). ``engine="ray"`` makes the same shards as Ray tasks (``gankit.sampling.ray_engine``).

A shard file appears under its final name only once complete (temp file + rename), a journal records it
(with size and checksum) right after, and ``resume`` regenerates whatever is not recorded
(``gankit.sampling.manifest``). The shards are made by lanes ahead of a writer thread
(``gankit.sampling.pipeline``); Ctrl-C finishes and writes the shards already under way, then stops.

A class-conditional generator runs with the job's label spec (``balanced`` when none is given; an
unconditional one refuses a spec): sample i's label is a function of (seed, i) like its noise, the manifest
records the spec (resume refuses another), and each shard's labels file is listed with its checksum under the
shard's ``labels`` entry. A grid of a conditional generator shows its samples sorted by label (stable), a row
a label when n is a multiple of K with balanced labels (n = 100, K = 10: row d holds digit d).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gankit.backends import Backend
from gankit.backends.resolve import open_backend
from gankit.errors import GankitError, SamplingError
from gankit.io import LOCK, check_writable, refuse_overwrite, release_lock
from gankit.labels import LabelSpec, resolve
from gankit.limits import require_memory
from gankit.noise import check_range
from gankit.pixels import save_grid
from gankit.sampling.formats import sample_meta
from gankit.sampling.job import N, SampleJob, SampleResult, ShardRecord, shard_name, shards_of
from gankit.sampling.lanes import DTYPES, backend_lane, open_lanes, plan_lanes, runs_in_lanes
from gankit.sampling.manifest import JOURNALS, finish_run, job_header, prepare_folder
from gankit.sampling.pipeline import IN_FLIGHT, PendingShard, ShardMaker
from gankit.sampling.ranks import Ranks
from gankit.sampling.writer import QUEUED, ShardWriter

if TYPE_CHECKING:  # a run on onnxruntime or OpenVINO on the CPU never imports torch
    import torch


def _open(job: SampleJob, log: Callable[[str], None], ranks: Ranks | None = None) -> Backend:
    share = ranks.share if ranks is not None else (lambda compute: compute())
    return open_backend(job.model, **job.backend_options(), log=log, share=share)


def generate(
    model: str | Path | None = None,
    n: int = N,
    seed: int = 0,
    start: int = 0,
    backend: str = "auto",
    precision: str = "fp32",
    batch_size: int = 4096,
    output: str = "float",
    device: str = "auto",
    labels: LabelSpec | None = None,
) -> torch.Tensor:
    """Samples start .. start+n-1 of ``seed`` in memory: (n, C, H, W) float32 in [-1, 1] or uint8, on the CPU.

    ``labels``: a class-conditional generator's label spec (None: balanced); their labels are
    ``labels.labels(seed, start, n, K)``."""
    job = SampleJob(Path("."), n, model, seed, start, backend, precision, batch_size, device=device, labels=labels)
    return _open(job, log=lambda message: None).generate_range(seed, start, n, batch_size, output, labels)


def sample(job: SampleJob, progress: bool = True, log: Callable[[str], None] = print) -> SampleResult:
    """Run ``job``: write its samples (see the module docstring) and return what was done."""
    if job.format == "grid":
        return _sample_grid(job, log)
    from tqdm import tqdm

    ranks = Ranks.from_environment()
    if job.engine == "ray" and ranks.world > 1:
        raise SamplingError("--engine ray starts its own workers: run it as one process, not under torchrun")
    if job.engine == "ray":
        from gankit.sampling.ray_engine import reachable

        reachable(job.address)  # before the folder is touched
    say = log if ranks.rank == 0 else (lambda message: None)
    backend = _open(job, say, ranks)
    check_range(job.start, job.n, backend.config.latent_dim)
    sample_bytes = math.prod(backend.config.image_shape) * DTYPES[job.dtype].itemsize
    # Shard buffers alive at once: being made, queued for the writer, and the one it writes.
    held = (IN_FLIGHT + QUEUED + 1) * min(job.shard_size, job.n) * sample_bytes
    require_memory(f"--shard-size {job.shard_size} ({IN_FLIGHT + QUEUED + 1} shards in memory at once)", held)
    labels = resolve(job.labels, backend.num_classes)  # the job's labels, resolved once: everything below takes them
    header = job_header(job, backend, labels)
    done = ranks.broadcast(prepare_folder(job, header, sample_bytes, say) if ranks.rank == 0 else None)
    if isinstance(done, GankitError):
        raise done
    try:
        return _write_shards(job, backend, ranks, header, labels, done, progress, say, tqdm)
    finally:
        if ranks.rank == 0:
            release_lock(job.out / LOCK)


def _write_shards(
    job: SampleJob,
    backend: Backend,
    ranks: Ranks,
    header: dict[str, Any],
    labels: LabelSpec | None,
    done: dict[str, ShardRecord],
    progress: bool,
    say: Callable[[str], None],
    tqdm: Any,
) -> SampleResult:
    """The shards not ``done`` of this rank, made and written (here, or as Ray tasks); the manifest updated
    (rank 0)."""
    total = sum(count for _, _, count in _my_shards(job, done, ranks))
    run_id = ranks.broadcast(uuid.uuid4().hex[:8])
    journal = job.out / JOURNALS / f"{run_id}-rank{ranks.rank}.json"
    records: list[ShardRecord] = []  # this process's finished shards, as they are written
    # disable=None: tqdm draws only on a terminal, so logs and pipes get no bar
    bar = tqdm(total=total, unit="sample", unit_scale=True, disable=True if not progress or ranks.rank else None)
    try:
        if job.engine == "ray":
            from gankit.sampling.ray_engine import write_shards

            warmup, begin = 0.0, time.perf_counter()
            mine = list(_my_shards(job, done, ranks))  # bounded: gankit.limits caps a job's shards
            interrupted = write_shards(job, backend, labels, header, mine, journal, records, bar.update, say)
        else:
            warmup, begin, interrupted = _write_here(
                job, backend, labels, header, _my_shards(job, done, ranks), journal, records, ranks, bar, say
            )
    except BaseException:
        if ranks.world == 1:  # keep the manifest in step with what is on disk, then report the failure
            with contextlib.suppress(OSError):  # a full disk: the journal still lists them; report the cause
                finish_run(job.out, header, list(done.values()) + records, complete=False)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - begin

    everything = [r for gathered in ranks.gather(records) for r in gathered]
    ranks.close()  # the last collective
    if ranks.rank == 0:
        shards = list(done.values()) + everything
        finish_run(job.out, header, shards, complete=not interrupted and sum(s.count for s in shards) == job.n)
    written = sum(r.count for r in records)
    return SampleResult(job.out, backend.describe(), written, seconds, warmup, interrupted, records)


def _write_here(
    job: SampleJob,
    backend: Backend,
    labels: LabelSpec | None,
    header: dict[str, Any],
    mine: Iterator[tuple[int, int, int]],
    journal: Path,
    records: list[ShardRecord],
    ranks: Ranks,
    bar: Any,
    say: Callable[[str], None],
) -> tuple[float, float, bool]:
    """The ``local`` engine: ``mine`` made by lanes in this process and written by a writer thread, each
    finished shard appended to ``records``. (warm-up seconds, when the timed part began, whether Ctrl-C came)"""
    lanes, threads, why = ranks.share(lambda: plan_lanes(backend, job.dtype, job.batch_size, labels))
    if runs_in_lanes(backend):
        say(f"pipeline: {lanes} lane{'s' if lanes > 1 else ''} x {threads} thread{'s' if threads > 1 else ''} ({why})")
    on_gpu = backend.device_type == "cuda"
    maker = ShardMaker(
        open_lanes(backend, lanes, threads, labels), backend.config.image_shape, job.dtype, job.batch_size, on_gpu
    )
    warmup = getattr(backend, "warmup", lambda: 0.0)()
    if warmup:
        say(f"warm-up (compile) took {warmup:.1f} s; not counted in the throughput")
    writer = ShardWriter(job.out, journal, sample_meta(header), records)

    def deliver(shard: PendingShard, buffer: Any, ready: Any) -> None:
        shard_labels = None
        if labels is not None:
            shard_labels = labels.label_array(job.seed, shard.first, shard.count, backend.num_classes)
        writer.put(shard_name(job, shard.index), shard.first, buffer, ready, shard_labels)
        bar.update(shard.count)

    begin = time.perf_counter()
    try:
        interrupted = maker.make(job.seed, mine, deliver)
        writer.close()
    except BaseException:
        writer.close(raise_error=False)
        raise
    finally:
        maker.close()
    return warmup, begin, interrupted


def _my_shards(job: SampleJob, done: dict[str, ShardRecord], ranks: Ranks) -> Iterator[tuple[int, int, int]]:
    """This rank's share of the shards not done, planned lazily: a range of many shards is never a list."""
    pending = (s for s in shards_of(job) if shard_name(job, s[0]) not in done)
    return itertools.islice(pending, ranks.rank, None, ranks.world)


def _sample_grid(job: SampleJob, log: Callable[[str], None]) -> SampleResult:
    if job.out.suffix != ".png":
        raise SamplingError(f"--format grid writes one PNG: --out must end in .png (got {job.out})")
    refuse_overwrite(job.out, job.force, "a grid")
    check_writable(job.out)
    backend = _open(job, log)
    labels = resolve(job.labels, backend.num_classes)
    begin = time.perf_counter()
    images = np.empty((job.n, *backend.config.image_shape), dtype=np.uint8)
    lane = backend_lane(backend, labels)
    for offset in range(0, job.n, job.batch_size):
        lane.fill(job.seed, job.start + offset, images[offset : offset + job.batch_size])
    columns = None
    if labels is not None:  # by label: a row a label when every label comes equally often
        order = labels.label_array(job.seed, job.start, job.n, backend.num_classes).argsort(kind="stable")
        images = images[order]
        if labels.digit is None and job.n % backend.num_classes == 0:
            columns = job.n // backend.num_classes
    try:
        save_grid(images, job.out, nrow=columns)
    except OSError as exc:
        raise SamplingError(f"cannot write {job.out} ({exc.strerror or exc})") from exc
    return SampleResult(job.out, backend.describe(), job.n, time.perf_counter() - begin, 0.0)
