"""The run folder's records: ``manifest.json`` (the job and every finished shard) and the ranks' journals; the
folder made or checked before a run (``prepare_folder``: lock, resume, disk) and recorded after it (``finish_run``).

A journal ``.journal/<run>-rank<r>.json`` lists the shards one rank of one run finished (rewritten
atomically after each); rank 0 merges them into the manifest at the end (and on Ctrl-C). Resuming
trusts a shard only when it is recorded and its file (and its labels file, for a class-conditional generator)
still has the recorded size and checksum (``verify_record``: whatever the format; a folder shard by its files),
and refuses a folder made with other options (the label spec among them) or
another version of the noise (``gankit.noise``'s ``NOISE_VERSION``; runs
recorded before versions were written are version 1): the same index would give another image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gankit.backends import Backend
from gankit.errors import GankitError, SamplingError
from gankit.io import LOCK, acquire_lock, crc32_of, read_json, release_lock, write_json
from gankit.labels import LabelSpec
from gankit.limits import require_disk
from gankit.noise import NOISE_NAME, NOISE_VERSION
from gankit.sampling.job import SampleJob, ShardRecord
from gankit.sampling.writer import CHECKSUM
from gankit.version import __version__

MANIFEST = "manifest.json"
JOURNALS = ".journal"


def job_header(job: SampleJob, backend: Backend, labels: LabelSpec | None = None) -> dict[str, Any]:
    """The manifest's ``job``; ``backend``: opened by ``open_backend`` (its ``source`` is the model file, hashed
    once); ``labels``: the resolved label spec of a class-conditional generator (else None)."""
    return {
        "model": {"path": str(job.model_path), "sha256": backend.source.sha256},
        "config": json.loads(backend.config.to_json()),
        "seed": job.seed,
        "start": job.start,
        "n": job.n,
        "format": job.format,
        "dtype": job.dtype,
        "shard_size": job.shard_size,
        "backend": backend.name,
        "precision": backend.precision,
        "noise": NOISE_VERSION,
        "noise_name": NOISE_NAME,
        "checksum": CHECKSUM,
        "labels": None if labels is None else labels.to_json(),
    }


def read_record(path: Path) -> dict[str, Any]:
    """A manifest or journal's JSON; SamplingError (what to do) when it is unreadable."""
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise SamplingError(f"{path}: unreadable ({exc}); remove the folder or choose another --out") from exc


# "config" too: a foreign state dict read with other import flags (--slope, --output-act, ...) is the same file
# and another generator. Manifests written before it was recorded are compared without it.
MUST_MATCH_ON_RESUME = (
    "model",
    "config",
    "seed",
    "start",
    "n",
    "format",
    "dtype",
    "shard_size",
    "backend",
    "precision",
    "labels",
)


def check_resumable(existing: dict[str, Any], header: dict[str, Any], out: Path) -> None:
    job = existing.get("job", {})
    if job.get("noise", 1) != header["noise"]:
        raise SamplingError(
            f"{out} was sampled with noise version {job.get('noise', 1)}; this gankit makes version {header['noise']}, "
            "whose images differ: resume refuses to mix them (finish it with the gankit that started it, or use "
            "another --out)"
        )
    for key in MUST_MATCH_ON_RESUME:
        if key == "config" and key not in job:
            continue
        if job.get(key) != header[key]:
            raise SamplingError(
                f"{out} holds a run with another {key} ({job.get(key)!r}, now {header[key]!r}); "
                "resume refuses to mix them: use the same options or another --out"
            )


def _files_of(target: Path) -> list[Path] | None:
    """A shard's files in the order their bytes were checksummed: the file itself, or a folder shard's files by
    name (hidden temporary files aside); None when it is neither."""
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith("."))
    return None


def _check(target: Path, size: int, algorithm: str, checksum: str) -> str | None:
    files = _files_of(target)
    if files is None:
        return "missing"
    found = sum(p.stat().st_size for p in files)
    if found != size:
        return f"{found} bytes, recorded {size}"
    if algorithm == "crc32":
        actual = crc32_of(*files)
    else:
        digest = hashlib.new(algorithm)
        for path in files:
            digest.update(path.read_bytes())
        actual = digest.hexdigest()
    return None if actual == checksum else f"{algorithm} {actual}, recorded {checksum}"


def verify_record(out: Path, record: ShardRecord) -> str | None:
    """What is wrong with a recorded shard under ``out`` (missing, another size, another checksum), or None when
    it and its labels file hold exactly the recorded bytes. Any format: a file is read whole, a folder shard as
    its files one after the other by name (as the writer checksums them)."""
    problem = _check(out / record.file, record.bytes, record.algorithm, record.checksum)
    if problem is None and record.labels is not None:
        entry = record.labels
        algorithm = next((name for name in ("crc32", "sha256") if name in entry), "crc32")
        problem = _check(out / str(entry["file"]), int(entry["bytes"]), algorithm, str(entry.get(algorithm)))
        problem = None if problem is None else f"labels {entry['file']}: {problem}"
    return problem


def _entries(out: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    entries = list(manifest.get("shards", []))
    journal_dir = out / JOURNALS
    if journal_dir.is_dir():
        for journal in sorted(journal_dir.glob("*.json")):
            entries.extend(read_record(journal).get("shards", []))
    return entries


def recorded_shards(
    out: Path, manifest: dict[str, Any], log: Callable[[str], None] = lambda message: None
) -> dict[str, ShardRecord]:
    """Shards listed in the manifest or any journal whose files still hold the recorded bytes (size and checksum);
    each one that does not is said through ``log`` and left out (so it is made again)."""
    found: dict[str, ShardRecord] = {}
    for entry in _entries(out, manifest):
        record = ShardRecord.from_json(entry)
        if record.file in found:
            continue
        problem = verify_record(out, record)
        if problem is None:
            found[record.file] = record
        else:
            log(f"{record.file}: {problem}; made again")
    return found


def verify_run(out: Path) -> list[str]:
    """Every problem of the finished run in ``out`` against its manifest, without the model: a recorded shard
    whose files do not hold the recorded bytes, samples of the job's range no shard holds, a run not complete.
    An empty list: every sample is there, bit for bit as written."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise SamplingError(f"{out}: no {MANIFEST}; not a sampling run folder")
    manifest = read_record(manifest_path)
    job = manifest.get("job", {})
    problems = []
    records = sorted((ShardRecord.from_json(e) for e in manifest.get("shards", [])), key=lambda r: r.start)
    for record in records:
        problem = verify_record(out, record)
        if problem is not None:
            problems.append(f"{record.file}: {problem}")
    position, end = int(job.get("start", 0)), int(job.get("start", 0)) + int(job.get("n", 0))
    for record in records:
        if record.start > position:
            problems.append(f"samples {position} .. {record.start - 1}: in no shard")
        position = max(position, record.start + record.count)
    if position < end:
        problems.append(f"samples {position} .. {end - 1}: in no shard")
    if manifest.get("status") != "complete":
        problems.append(f"status is {manifest.get('status')!r}, not 'complete': finish it with --resume")
    return problems


def write_manifest(out: Path, header: dict[str, Any], shards: list[ShardRecord], status: str) -> None:
    """Write the manifest atomically, each shard once (a Ctrl-C right after a shard was handed to the writer
    can make the engine hand it over twice)."""
    shards = list({s.file: s for s in shards}.values())
    write_json(
        out / MANIFEST,
        {
            "gankit_version": __version__,
            "status": status,
            "job": header,
            "samples": sum(s.count for s in shards),
            "shards": [s.to_json() for s in sorted(shards, key=lambda s: s.start)],
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        sort_keys=True,
    )


def prepare_folder(
    job: SampleJob, header: dict[str, Any], sample_bytes: int, log: Callable[[str], None]
) -> dict[str, ShardRecord] | GankitError:
    """Create or check the output folder on rank 0: the shards already done (each verified against its recorded
    size and checksum; those that fail are said and made again), or the error to raise. Nothing is written
    before every check passed."""
    try:
        manifest_path = job.out / MANIFEST
        if manifest_path.exists():
            if not job.resume:
                raise SamplingError(
                    f"{job.out} already holds a sampling run: add --resume to continue it, or pick another --out"
                )
            manifest = read_record(manifest_path)
            check_resumable(manifest, header, job.out)
            acquire_lock(job.out)  # one writer at a time: a second --resume refuses
            done = recorded_shards(job.out, manifest, log)
            left = job.n - sum(record.count for record in done.values())
            require_disk(f"the {left:,} samples left", left * sample_bytes, job.out)
            return done
        if job.out.exists() and not job.out.is_dir():
            raise SamplingError(f"{job.out} is a file; --out must be a folder for --format {job.format}")
        require_disk(f"--n {job.n:,} ({sample_bytes:,} bytes a sample)", job.n * sample_bytes, job.out)
        job.out.mkdir(parents=True, exist_ok=True)
        acquire_lock(job.out)
        (job.out / JOURNALS).mkdir(exist_ok=True)
        write_manifest(job.out, header, [], "running")
        return {}
    except GankitError as exc:
        release_lock(job.out / LOCK)
        return exc
    except OSError as exc:
        release_lock(job.out / LOCK)
        return SamplingError(f"cannot write to {job.out} ({exc.strerror or exc}); choose a writable --out")


def finish_run(out: Path, header: dict[str, Any], shards: list[ShardRecord], complete: bool) -> None:
    """The manifest of a run that stopped (``complete``, or ``partial``: interrupted or failed, to be resumed);
    a complete run's journals are merged into it and removed."""
    write_manifest(out, header, shards, "complete" if complete else "partial")
    if complete:
        for stale in (out / JOURNALS).glob("*.json"):
            stale.unlink()
        with contextlib.suppress(OSError):  # a complete run leaves no empty journal folder
            (out / JOURNALS).rmdir()
