"""Ray (gankit/ray.py, gankit/sampling/ray_engine.py): ``--engine ray`` writes the files of a one-process run, every
format, a worker killed in the middle of a shard included; ``gankit.ray.dataset`` gives GeneratedDataset's
images. A local Ray of 2 CPUs started by this module, shut down after it."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from gankit import GeneratedDataset
from gankit.labels import BALANCED
from gankit.sampling.engine import sample
from gankit.sampling.job import SampleJob
from gankit.sampling.manifest import MANIFEST
from gankit.sampling.ray_engine import FAIL_ONCE

pytestmark = [
    pytest.mark.usefixtures("private_cache"),
    pytest.mark.xdist_group("ray-cluster"),  # one worker starts the local Ray (``local_ray``) once
]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


def run_job(folder: Path, model: Path, **options) -> object:
    defaults = dict(n=300, model=model, seed=5, batch_size=32, shard_size=64, backend="eager", device="cpu")
    defaults.update(options)
    return sample(SampleJob(folder, **defaults), progress=False, log=lambda message: None)


def files(folder: Path) -> dict[str, bytes]:
    """Every shard file (and labels file) by its path under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("shard*")) if p.is_file()}


def manifest(folder: Path) -> dict:
    """The manifest without its time stamp."""
    return {k: v for k, v in json.loads((folder / MANIFEST).read_text()).items() if k != "updated"}


@pytest.mark.parametrize(
    ("fmt", "dtype", "conditional"),
    [("npy", "uint8", False), ("npy", "float16", True), ("webdataset", "uint8", True), ("parquet", "uint8", False)],
)
def test_ray_engine_writes_the_files_of_one_process(
    tmp_path: Path, model_file: Path, conditional_file: Path, fmt: str, dtype: str, conditional: bool
) -> None:
    model = conditional_file if conditional else model_file
    options = dict(format=fmt, dtype=dtype, labels=BALANCED if conditional else None)
    run_job(tmp_path / "one", model, **options)
    result = run_job(tmp_path / "ray", model, engine="ray", **options)
    assert result.samples_written == 300 and len(result.shards) == 5
    assert files(tmp_path / "ray") == files(tmp_path / "one") and len(files(tmp_path / "one")) >= 5
    assert manifest(tmp_path / "ray") == manifest(tmp_path / "one")
    assert manifest(tmp_path / "ray")["status"] == "complete"


def test_a_worker_killed_mid_shard_is_retried_to_the_same_files(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    """The worker making shard 2 dies (os._exit) after making its images, half a file beside it; Ray makes the
    shard again on a new worker and the run's files are those of one process."""
    marker = tmp_path / "died"
    monkeypatch.setenv(FAIL_ONCE, f"2:{marker}")
    run_job(tmp_path / "ray", model_file, engine="ray", format="webdataset")
    assert marker.exists(), "the test hook never killed a worker"
    assert (tmp_path / "ray" / ".partial-2").exists()
    monkeypatch.delenv(FAIL_ONCE)
    run_job(tmp_path / "one", model_file, format="webdataset")
    assert files(tmp_path / "ray") == files(tmp_path / "one") and len(files(tmp_path / "one")) == 5
    assert manifest(tmp_path / "ray") == manifest(tmp_path / "one")


def test_ctrl_c_keeps_the_shards_under_way_and_resume_finishes(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    """Ctrl-C while the driver waits: the shards already running are collected and recorded, the run is marked
    partial, and --resume (here with the local engine) ends with the files of one uninterrupted process."""
    real, calls = ray.wait, {"n": 0}

    def interrupt_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ray, "wait", interrupt_second)
    result = run_job(tmp_path / "ray", model_file, engine="ray", workers=2, format="webdataset")
    monkeypatch.setattr(ray, "wait", real)
    assert result.interrupted and result.samples_written == 3 * 64  # the first shard, then the two under way
    partial = json.loads((tmp_path / "ray" / MANIFEST).read_text())
    assert partial["status"] == "partial" and [s["start"] for s in partial["shards"]] == [0, 64, 128]
    assert run_job(tmp_path / "ray", model_file, format="webdataset", resume=True).samples_written == 300 - 192
    run_job(tmp_path / "one", model_file, format="webdataset")
    assert files(tmp_path / "ray") == files(tmp_path / "one") and len(files(tmp_path / "one")) == 5


def test_ray_engine_resumes_a_local_run(tmp_path: Path, model_file: Path) -> None:
    """A run cut short (its last shards deleted with the records of them) is finished by Ray: the same files."""
    run_job(tmp_path / "one", model_file, format="parquet")
    run_job(tmp_path / "mixed", model_file, format="parquet", n=128)  # shards 0 and 1 of the same job...
    header = json.loads((tmp_path / "mixed" / MANIFEST).read_text())
    header["job"]["n"], header["status"] = 300, "partial"  # ...recorded as the interrupted 300-sample run
    (tmp_path / "mixed" / MANIFEST).write_text(json.dumps(header))
    result = run_job(tmp_path / "mixed", model_file, format="parquet", engine="ray", resume=True)
    assert result.samples_written == 300 - 128
    assert files(tmp_path / "mixed") == files(tmp_path / "one")
    assert manifest(tmp_path / "mixed")["shards"] == manifest(tmp_path / "one")["shards"]


@pytest.mark.parametrize("conditional", [False, True])
def test_dataset_is_generated_datasets_images(model_file: Path, conditional_file: Path, conditional: bool) -> None:
    import gankit.ray

    model = conditional_file if conditional else model_file
    labels = BALANCED if conditional else None
    options = dict(seed=3, start=10, backend="eager", batch_size=16, shard_size=48, labels=labels)
    rows = gankit.ray.dataset(model, n=150, workers=2, **options).take_all()
    rows.sort(key=lambda row: row["index"])
    expected = list(GeneratedDataset(model, n=150, **options))
    indices = torch.cat([batch[-1] for batch in expected]).numpy()
    images = torch.cat([batch[0] for batch in expected]).numpy()
    assert [row["index"] for row in rows] == indices.tolist() == list(range(10, 160))
    assert all(row["image"].dtype == np.uint8 and np.array_equal(row["image"], images[k]) for k, row in enumerate(rows))
    if conditional:
        assert [row["label"] for row in rows] == torch.cat([batch[1] for batch in expected]).tolist()
    else:
        assert "label" not in rows[0]


def test_cli_ray_engine_is_quiet_and_equal(tmp_path: Path, model_file: Path) -> None:
    """The command line starts its own local Ray: only gankit's lines on stdout and stderr, the same files."""
    args = [sys.executable, "-m", "gankit", "sample", str(model_file), "--n", "200", "--seed", "2"]
    args += ["--batch-size", "32", "--shard-size", "64", "--backend", "eager", "--device", "cpu", "--quiet"]
    args += ["--format", "webdataset"]
    ran = subprocess.run(
        [*args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    subprocess.run([*args, "--out", str(tmp_path / "one")], cwd=ROOT, check=True, capture_output=True)
    assert ran.stderr == ""
    lines = ran.stdout.splitlines()
    assert lines[0] == "ray: 4 shard(s), at most 2 at once"
    assert lines[-1].startswith(f"wrote 200 samples to {tmp_path / 'ray'} with eager") and len(lines) == 2
    assert files(tmp_path / "ray") == files(tmp_path / "one") and len(files(tmp_path / "one")) == 4


def test_unreachable_address_fails_in_one_line(tmp_path: Path, model_file: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    begin = time.monotonic()
    ran = subprocess.run(
        [sys.executable, "-m", "gankit", "sample", str(model_file), "--n", "64", "--backend", "eager", "--quiet"]
        + ["--out", str(tmp_path / "out"), "--engine", "ray", "--address", f"127.0.0.1:{port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.startswith(f"gankit sample: error: no Ray cluster answers at --address 127.0.0.1:{port}")
    assert len(ran.stderr.splitlines()) == 1 and "ray start --head" in ran.stderr
    assert time.monotonic() - begin < 60  # the connection check gives up after CONNECT_SECONDS, not Ray's minutes
