"""Generated samples as a Ray Data dataset (``pip install 'gankit[ray]'``): ``dataset``.

    import gankit.ray
    ds = gankit.ray.dataset("conditional", n=1_000_000, seed=0)   # columns index, image, label
    ds.write_parquet("s3://bucket/synthetic")                     # or any Ray Data consumer

The index range is cut into ``gankit sample``'s batches (``gankit.sampling.dataset.grid_batch``); ``map_batches``
turns each into images with a callable class that opens the backend once per Ray worker (an actor), so the
uint8 images are ``GeneratedDataset``'s and the shards' bytes. Rows come in Ray Data's order (by block, not
necessarily by index unless ``DataContext.execution_options.preserve_order`` is set): ``index`` says which sample
a row is. Writing shards with the manifest, resume and checksums is ``gankit sample --engine ray``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gankit.labels import LabelSpec, resolve
from gankit.sampling.dataset import grid_batch
from gankit.sampling.job import BATCH, SHARD_SIZE, N, SampleJob
from gankit.sampling.ray_engine import import_ray, opened


class _Batches:
    """The ``map_batches`` class: a batch of grid rows (first, count) -> their samples' rows."""

    def __init__(self, job: SampleJob, labels: LabelSpec | None) -> None:
        self.job, self.labels = job, labels
        self.lane, backend = opened(job, labels)
        self.shape, self.classes = backend.config.image_shape, backend.num_classes

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = np.empty((int(rows["count"].sum()), *self.shape), dtype=np.uint8)
        indices, labels, at = [], [], 0
        for first, count in zip(rows["first"].tolist(), rows["count"].tolist()):
            self.lane.fill(self.job.seed, first, images[at : at + count])
            indices.append(np.arange(first, first + count, dtype=np.int64))
            if self.labels is not None:
                labels.append(self.labels.label_array(self.job.seed, first, count, self.classes))
            at += count
        columns = {"index": np.concatenate(indices), "image": images}
        return columns if self.labels is None else {**columns, "label": np.concatenate(labels)}


def dataset(
    model: str | Path | None = None,
    n: int = N,
    seed: int = 0,
    start: int = 0,
    labels: LabelSpec | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    batch_size: int = BATCH,
    shard_size: int = SHARD_SIZE,
    device: str = "cpu",
    workers: int | None = None,
) -> Any:
    """Samples start .. start+n-1 of ``seed`` as a ``ray.data.Dataset`` with columns ``index`` (int64), ``image``
    ((C, H, W) uint8 tensors) and, for a class-conditional generator, ``label`` (int64; ``labels`` as in
    ``gankit sample``, balanced when None). ``backend``/``precision`` as ``gankit sample``'s (``auto`` resolved
    once, here); ``batch_size``/``shard_size`` give its batches (the same ones give the same bytes); ``workers``:
    the actors (None: from one up to what the cluster has). Uses the running Ray, or starts a local one."""
    from gankit.backends.resolve import open_backend

    ray = import_ray()
    chosen = open_backend(model, backend, precision, device, batch_size, log=lambda message: None)
    labels = resolve(labels, chosen.num_classes)  # once, here: every actor takes them as they are
    job = SampleJob(
        Path("."), n, model, seed, start, chosen.name, chosen.precision, batch_size, device=device, labels=labels
    )
    grid, k = [], 0
    while (batch := grid_batch(k, start, n, batch_size, shard_size)) is not None:
        grid.append({"first": batch[0], "count": batch[1]})
        k += 1
    pool = ray.data.ActorPoolStrategy(size=workers) if workers else ray.data.ActorPoolStrategy(min_size=1)
    return ray.data.from_items(grid).map_batches(
        _Batches,
        fn_constructor_args=(job, labels),
        batch_size=1,
        batch_format="numpy",
        compute=pool,
        num_cpus=1,
        num_gpus=1 if chosen.device_type == "cuda" else 0,
    )
