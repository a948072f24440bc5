"""GeneratedDataset: disjoint and complete over DataLoader workers and ranks, the same images as ``gankit sample``."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit import GeneratedDataset
from gankit.errors import SamplingError
from gankit.sampling.engine import sample
from gankit.sampling.job import SampleJob

pytestmark = pytest.mark.usefixtures("private_cache")

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = dict(seed=3, start=37, n=1000, batch_size=64, shard_size=256)


def shards(tmp_path: Path, model_file: Path, backend: str, precision: str) -> np.ndarray:
    """What ``gankit sample`` writes for OPTIONS, all shards in index order."""
    job = SampleJob(tmp_path / "shards", model=model_file, backend=backend, precision=precision, **OPTIONS)
    sample(job, progress=False, log=lambda message: None)
    return np.concatenate([np.load(path) for path in sorted((tmp_path / "shards").glob("shard_*.npy"))])


WORKERS = """
import sys
import numpy as np
from torch.utils.data import DataLoader
from gankit import GeneratedDataset

model, backend, precision, out = sys.argv[1:5]
options = dict(seed=3, start=37, n=1000, batch_size=64, shard_size=256)
made = {"rank": [], "index": [], "image": []}
for rank in range(2):
    dataset = GeneratedDataset(model, backend=backend, precision=precision, rank=rank, world=2, **options)
    for images, indices in DataLoader(dataset, batch_size=None, num_workers=2):
        assert images.shape[0] == indices.shape[0] <= 64, images.shape
        made["rank"] += [rank] * len(indices)
        made["index"] += indices.tolist()
        made["image"].append(images.numpy())
np.savez(out, rank=made["rank"], index=made["index"], image=np.concatenate(made["image"]))
"""


@pytest.mark.parametrize(("backend", "precision"), [("onnxruntime", "int8"), ("eager", "fp32")])
def test_two_workers_on_two_ranks_make_exactly_the_samples_gankit_sample_writes(
    tmp_path: Path, model_file: Path, backend: str, precision: str
) -> None:
    """Two simulated ranks, each with a DataLoader of two worker processes (in a process of its own: a
    DataLoader with workers leaves a SIGCHLD handler behind in its process, and the test process runs others)."""
    expected = shards(tmp_path, model_file, backend, precision)
    command = [sys.executable, "-c", WORKERS, str(model_file), backend, precision, str(tmp_path / "made.npz")]
    subprocess.run(command, cwd=ROOT, env={**os.environ}, check=True)
    made = np.load(tmp_path / "made.npz")
    order = np.argsort(made["index"])
    assert made["image"].dtype == np.uint8 and set(made["rank"]) == {0, 1}
    assert made["index"][order].tolist() == list(range(37, 1037)), "each sample once, all of them"
    assert np.array_equal(made["image"][order], expected)


def test_batches_follow_the_shards_of_gankit_sample(model_file: Path) -> None:
    """Batches start at each shard's first index (a 256-sample shard = 64 + 64 + 64 + 64; 100 = 64 + 36)."""
    dataset = GeneratedDataset(model_file, backend="eager", **{**OPTIONS, "batch_size": 100})
    batches = [(int(indices[0]), len(indices)) for _, indices in dataset]
    assert batches[:4] == [(37, 100), (137, 100), (237, 56), (293, 100)]
    assert sum(count for _, count in batches) == 1000 and batches[-1] == (37 + 768 + 200, 32)


def test_endless_and_float(model_file: Path, small_generator) -> None:
    from gankit.backends import create_backend

    endless = GeneratedDataset(model_file, backend="onnxruntime", output="float", **{**OPTIONS, "n": None})
    batches = list(itertools.islice(iter(endless), 40))  # 10 shards of 256: past any finite n above
    indices = torch.cat([i for _, i in batches])
    assert torch.equal(indices, torch.arange(37, 37 + 40 * 64))
    images = torch.cat([b for b, _ in batches])
    assert images.dtype == torch.float32 and images.shape == (40 * 64, *small_generator.config.image_shape)
    backend = create_backend("onnxruntime", small_generator, device="cpu")
    assert torch.equal(images[-64:], backend.generate_seeded(3, 37 + 39 * 64, 64))


def test_rank_and_world_come_from_torch_distributed(model_file: Path, monkeypatch) -> None:
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    dataset = GeneratedDataset(model_file, backend="eager", **OPTIONS)
    firsts = [int(indices[0]) for _, indices in dataset]
    assert (dataset.rank, dataset.world) == (1, 3) and firsts[:3] == [37 + 64, 37 + 4 * 64, 37 + 256 + 3 * 64]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": 1}, "give both rank and world"),
        ({"rank": 2, "world": 2}, "0 <= rank < world"),
        ({"output": "float16"}, "unknown output"),
        ({"n": 0}, "need n > 0"),
    ],
)
def test_bad_options(model_file: Path, options: dict, message: str) -> None:
    with pytest.raises(SamplingError, match=message):
        GeneratedDataset(model_file, backend="eager", **options)


@pytest.mark.slow
def test_the_readme_example_trains_a_classifier_on_generated_digits(tmp_path: Path) -> None:
    """docs/sampling.md's code block, run as it is: a student learns digits from the generator alone."""
    readme = (ROOT / "docs" / "sampling.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (block,) = [code for code in blocks if "GeneratedDataset(" in code and "student" in code]
    env = {**os.environ, "GANKIT_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    accuracy = float(re.search(r"accuracy on real digits: ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 70, result.stdout
