"""pytest-benchmark: end-to-end sampling to disk (generation + shard writing + manifest), by format.

``benchmarks/run_sampling.py`` runs the same at a larger size and commits JSON to benchmarks/results/.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from gankit.sampling.engine import SampleJob, sample

CASES = [("eager", "npy", "uint8"), ("eager", "npy", "float16"), ("eager", "png", "uint8")]
_runs = itertools.count()


@pytest.mark.parametrize(("backend", "fmt", "dtype"), CASES)
def test_sampling_to_disk(benchmark, tmp_path: Path, backend: str, fmt: str, dtype: str) -> None:
    n = 512 if fmt == "png" else 8192

    def run() -> Path:
        out = tmp_path / f"run{next(_runs)}"
        job = SampleJob(out, n=n, backend=backend, format=fmt, dtype=dtype, batch_size=1024, shard_size=4096)
        sample(job, progress=False, log=lambda message: None)
        return out

    out = benchmark.pedantic(run, rounds=3, iterations=1)
    if fmt == "npy":
        total = sum(np.load(p, mmap_mode="r").shape[0] for p in out.glob("shard_*.npy"))
    else:
        total = len(list(out.rglob("*.png")))
    assert total == n
