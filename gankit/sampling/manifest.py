"""The run folder's records: ``manifest.json`` (the job and every finished shard) and the ranks' journals.

A journal ``.journal/<run>-rank<r>.json`` lists the shards one rank of one run finished (rewritten
atomically after each); rank 0 merges them into the manifest at the end (and on Ctrl-C). Resuming
trusts a shard only when it is recorded and its file (and its labels file, for a class-conditional generator)
still has the recorded size, and refuses a folder made with other options (the label spec among them) or
another version of the noise (``gankit.noise``'s ``NOISE_VERSION``; runs
recorded before versions were written are version 1): the same index would give another image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gankit.backends import Backend
from gankit.errors import SamplingError
from gankit.io import read_json, write_json
from gankit.labels import LabelSpec
from gankit.noise import NOISE_NAME, NOISE_VERSION
from gankit.sampling.job import SampleJob, ShardRecord
from gankit.sampling.writer import CHECKSUM
from gankit.version import __version__

MANIFEST = "manifest.json"
JOURNALS = ".journal"


def job_header(job: SampleJob, backend: Backend, model_sha: str, labels: LabelSpec | None = None) -> dict[str, Any]:
    """The manifest's ``job``; ``labels``: the resolved label spec of a class-conditional generator (else None)."""
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


def recorded_shards(out: Path, manifest: dict[str, Any]) -> dict[str, ShardRecord]:
    """Shards listed in the manifest or any journal whose file is still there with the recorded size."""
    found: dict[str, ShardRecord] = {}
    entries = list(manifest.get("shards", []))
    journal_dir = out / JOURNALS
    if journal_dir.is_dir():
        for journal in sorted(journal_dir.glob("*.json")):
            entries.extend(read_record(journal).get("shards", []))
    for entry in entries:
        record = ShardRecord.from_json(entry)
        target = out / record.file
        labels = None if record.labels is None else out / str(record.labels["file"])
        if labels is not None and not (labels.is_file() and labels.stat().st_size == record.labels["bytes"]):
            continue
        if target.is_file() and target.stat().st_size == record.bytes or record.file.endswith("/"):
            found[record.file] = record
    return found


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
