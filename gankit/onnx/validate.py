"""Run an ONNX file with onnxruntime and hold it to its source generator's float64 reference.

``check_graph`` runs the parity cases of ``gankit.onnx.parity`` through an onnxruntime session (``graph_runner``)
and, for a low-precision float graph, measures it against the fp32 export (``compare_with_fp32``); it returns the
report, logged, for ``gankit.onnx.parity.land_report`` to land (``gankit.export``: ``export_onnx``, ``validate``).
A gankit checkpoint's graph is checked without torch, except the fp32 export a low-precision float graph is
compared with, when it is not in the cache yet (torch builds it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.labels import BALANCED
from gankit.noise import noise_array
from gankit.onnx.graph import read_graph, read_metadata
from gankit.onnx.parity import ParityReport, Reference, check_parity, format_report
from gankit.pixels import LEVELS_PER_UNIT
from gankit.runtime import feeds, onnxruntime_session

if TYPE_CHECKING:
    from gankit.model import Generator
    from gankit.onnx.cache import Loaded

VS_FP32_SAMPLES = 4096


def graph_runner(path: Path, threads: int | None = None) -> Callable[..., np.ndarray]:
    """z (B, latent) float32 [, labels (B,) int64 for a class-conditional export] -> the graph's image output,
    through a CPU onnxruntime session of ``path``, fed by the graph's own names."""
    graph = read_graph(path)
    session = onnxruntime_session(path, threads)

    def run(z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return session.run([graph.output_name], feeds(graph, z, labels))[0]

    return run


def check_graph(
    model_path: Path,
    generator: Generator | Loaded,
    threads: int | None = None,
    log=print,
    name: str | None = None,
    seed: int | None = None,
    source: str = "its source",
) -> ParityReport:
    """The parity report of the ONNX file ``model_path`` against ``generator`` (its source, in memory or as loaded
    from its file; named ``source`` in errors), under ``name`` (default: the file's name); logged, not written.
    ``seed``: the base seed of the parity inputs (fresh when None; the report records it). ExportError when the
    graph's config is not the generator's."""
    reference = Reference.of(generator)  # CheckpointError first for an ONNX "checkpoint"
    props = read_metadata(model_path)
    exported = GeneratorConfig.from_json(props["gankit_config"])
    if generator.config != exported:
        raise ExportError(
            f"{model_path} ({exported.describe()}) and {source} ({generator.config.describe()}) are different "
            "generators"
        )
    run = graph_runner(model_path, threads)
    precision, output = props["gankit_precision"], props["gankit_output"]
    report = check_parity(run, reference, precision, output, name or model_path.name, seed)
    if props["gankit_precision"] != "fp32" and props["gankit_output"] == "float":
        report.vs_fp32 = compare_with_fp32(generator, run)
    log(format_report(report))
    return report


def compare_with_fp32(generator: Generator | Loaded, run: Callable[..., np.ndarray]) -> dict[str, float]:
    """Pixel-level error of a low-precision export (``run``) against the fp32 export, on the first 4,096 samples
    of seed 0 (``gankit.noise``; balanced labels, ``gankit.labels``, for a class-conditional generator)."""
    from gankit.onnx.cache import cached_export

    keep, fp32_path = cached_export(generator, "fp32")  # keep: a temporary folder to hold when the cache is unwritable
    config = generator.config
    given = (noise_array(0, 0, VS_FP32_SAMPLES, config.latent_dim),)
    if config.num_classes:
        given += (BALANCED.label_array(0, 0, VS_FP32_SAMPLES, config.num_classes),)
    low, high = run(*given), graph_runner(fp32_path)(*given)
    del keep
    diff = np.abs(low.astype(np.float64) - high.astype(np.float64)) * LEVELS_PER_UNIT
    return {"max_pixel_levels_vs_fp32": float(diff.max()), "mean_pixel_levels_vs_fp32": float(diff.mean())}
