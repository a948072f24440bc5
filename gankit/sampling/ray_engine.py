"""Sampling through Ray (``pip install 'gankit[ray]'``): the ``ray`` engine of ``gankit sample`` and the batches
behind ``gankit.ray.dataset``.

``--engine ray``: every pending shard is one Ray task (``max_retries``: a worker that dies is replaced and the
shard made again). A worker opens the backend once (the job's resolved backend and precision, the same lanes as
the local engine, one lane of the worker's CPUs) and keeps it for every shard it is given; it writes the shard
under ``--out`` itself (temp file + rename, ``writer.write_shard_files``) and hands back only its manifest entry,
which the driver journals as it arrives. Shards are fixed index ranges made batch by batch from their first
index, so the files are those of a one-process run with the same options. On a cluster ``--out`` and the model
file must be on storage every node sees at the same path.

Connecting: an existing ``ray.init`` in this process is used as it is; otherwise ``--address`` (a ``ray start
--head`` cluster's ``HOST:PORT``, or ``auto``) is joined, or a local Ray started for the run and stopped after
it. Ray's own logging stays out of the command's output (errors only; workers' output not forwarded).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gankit.backends import Backend
from gankit.errors import GankitError, SamplingError
from gankit.labels import LabelSpec
from gankit.sampling.formats import sample_meta
from gankit.sampling.job import SampleJob, ShardRecord, shard_name
from gankit.sampling.writer import write_journal, write_shard_files

RETRIES = 3  # times Ray makes a shard again after its worker died
CONNECT_SECONDS = 10.0  # how long --address may take to answer before the run gives up
FAIL_ONCE = "GANKIT_RAY_FAIL_ONCE"  # tests: "SHARD:MARKER", the worker making SHARD dies once (MARKER records it)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise SamplingError("--engine ray needs Ray: pip install 'gankit[ray]'") from exc
    return ray


def reachable(address: str | None) -> None:
    """SamplingError, within ``CONNECT_SECONDS``, when nothing listens at ``address`` (HOST:PORT or
    ray://HOST:PORT; None and ``auto`` are Ray's to find). Ray itself would retry for minutes."""
    import_ray()
    if address in (None, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SamplingError(
            f"no Ray cluster answers at --address {address} ({reason}); start one with `ray start --head` "
            "and pass the HOST:PORT it prints, or drop --address for a local Ray"
        ) from None


def connect(address: str | None = None, workers: int | None = None) -> bool:
    """Join the Ray at ``address`` (None: start a local one with ``workers`` CPUs, None: all); True when this
    call started the connection (and the caller shuts it down). SamplingError, in bounded time, when nothing
    answers at ``address``."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    reachable(address)
    try:
        ray.init(
            address=address,
            num_cpus=workers if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SamplingError(f"cannot start or join Ray (--address {address}): {exc}") from None
    return True


_OPENED: dict[tuple, Any] = {}  # one per worker process: the backend and lane it opened, by what was asked


def opened(job: SampleJob, labels: LabelSpec | None) -> tuple[Any, Backend]:
    """(lane, backend) of ``job`` in this worker, opened on first use; ``labels``: the job's, as the engine
    resolved them."""
    from gankit.backends.resolve import open_backend
    from gankit.sampling.lanes import open_lanes

    key = (str(job.model_path), job.backend, job.precision, job.device, job.batch_size, job.compile_mode)
    key += (repr(job.import_options), repr(labels))
    if key not in _OPENED:
        backend = open_backend(job.model, **job.backend_options(), log=lambda message: None)
        threads = max(1, int(import_ray().get_runtime_context().get_assigned_resources().get("CPU", 1)))
        _OPENED[key] = (open_lanes(backend, 1, threads, labels)[0], backend)
    return _OPENED[key]


def make_images(
    job: SampleJob, labels: LabelSpec | None, index: int, first: int, count: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shard ``index`` (samples first .. first+count-1) of ``job`` in this worker, made as the local engine makes
    it (``pipeline.ShardMaker``, one lane): (images (count, C, H, W) of ``job.dtype``, labels (count,) or None)."""
    from gankit.sampling.pipeline import ShardMaker

    lane, backend = opened(job, labels)
    maker = ShardMaker([lane], backend.config.image_shape, job.dtype, job.batch_size, backend.device_type == "cuda")
    buffer, ready = maker.finish(maker.start(job.seed, index, first, count))
    if ready is not None:
        ready.synchronize()
    shard_labels = None if labels is None else labels.label_array(job.seed, first, count, backend.num_classes)
    return np.asarray(buffer), shard_labels


def _die_once(fail_once: str | None, index: int, out: Path) -> None:
    """The test hook ``FAIL_ONCE``: the first attempt at the shard dies in the middle of writing it."""
    if not fail_once:
        return
    shard, _, marker = fail_once.partition(":")
    if int(shard) == index and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        (out / f".partial-{index}").write_bytes(b"half a shard")
        os._exit(1)


def make_shard(
    job: SampleJob,
    labels: LabelSpec | None,
    meta: dict[str, Any],
    index: int,
    first: int,
    count: int,
    fail_once: str | None,
) -> dict[str, Any]:
    """The Ray task: make shard ``index`` (samples first .. first+count-1) and write it; its manifest entry."""
    images, labels = make_images(job, labels, index, first, count)
    _die_once(fail_once, index, job.out)
    return write_shard_files(job.out, shard_name(job, index), first, images, labels, meta).to_json()


def _failure(exc: BaseException, job: SampleJob, index: int) -> BaseException:
    """What a task's failure means to the person running the command."""
    ray = import_ray()
    cause = getattr(exc, "cause", None)
    if isinstance(cause, GankitError):
        return cause
    if isinstance(cause, OSError):
        return SamplingError(
            f"cannot write under {job.out} ({cause.strerror or cause}); the shards written so far are recorded: "
            "free space or fix permissions, then rerun with --resume"
        )
    if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return SamplingError(
            f"Ray workers died {RETRIES + 1} times making shard {index}; the shards written so far are recorded: "
            "rerun with --resume"
        )
    return exc


def write_shards(
    job: SampleJob,
    backend: Backend,
    labels: LabelSpec | None,
    header: dict[str, Any],
    shards: list[tuple[int, int, int]],
    journal: Path,
    records: list[ShardRecord],
    advance: Callable[[int], Any],
    say: Callable[[str], None],
) -> bool:
    """Make and write ``shards`` ((index, first, count)) as Ray tasks, at most ``job.workers`` at once (None: one
    a CPU of the cluster), their labels from ``labels`` (the job's, resolved); each finished shard is appended to
    ``records``, journaled and ``advance``d by its count. Ctrl-C waits for the shards under way, then returns True;
    a second one propagates."""
    ray = import_ray()
    started = connect(job.address, job.workers)
    try:
        gpus = 1 if backend.device_type == "cuda" else 0
        task = ray.remote(max_retries=RETRIES, num_cpus=1, num_gpus=gpus)(make_shard)
        worker_job = dataclasses.replace(
            job, backend=backend.name, precision=backend.precision, device=backend.device_type, resume=False
        )
        limit = job.workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))
        say(f"ray: {len(shards)} shard(s), at most {limit} at once")
        meta, fail_once = sample_meta(header), os.environ.get(FAIL_ONCE)
        waiting, running = list(reversed(shards)), {}

        def collect(ref: Any) -> None:
            index, count = running.pop(ref)
            try:
                entry = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise _failure(exc, job, index) from None
            records.append(ShardRecord.from_json(entry))
            write_journal(journal, records)
            advance(count)

        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    index, first, count = waiting.pop()
                    running[task.remote(worker_job, labels, meta, index, first, count, fail_once)] = (index, count)
                finished, _ = ray.wait(list(running), num_returns=1)
                collect(finished[0])
        except KeyboardInterrupt:
            for ref in list(running):
                collect(ref)
            return True
        return False
    finally:
        if started:
            ray.shutdown()
