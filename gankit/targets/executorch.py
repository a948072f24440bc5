"""ExecuTorch: a generator as a ``.pte`` program with the XNNPACK delegate, for phones and edge devices.

``build_program`` exports the generator (``gankit.targets.export_program``, batch at most ``MAX_BATCH``: ExecuTorch
plans its memory for the upper bound) and lowers it with ``to_edge_transform_and_lower`` and the
``XnnpackPartitioner``. ``gankit.targets.artifact_metadata`` travels as constant methods of the program (each a
method of that name returning the string). ``load_program`` runs one through ``executorch.runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.model import Generator
from gankit.onnx.build import warnings_quiet
from gankit.onnx.parity import ExportResult, land_checked
from gankit.targets import artifact_metadata, export_program, fp32_check
from gankit.version import package_version

SUFFIX = ".pte"
MAX_BATCH = 4096  # the program's batch bound; larger batches are split by its callers


def build_program(generator: Generator, path: Path, source_sha: str = "") -> None:
    """Lower ``generator`` to the ExecuTorch program ``path`` (XNNPACK delegate, fp32)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = export_program(generator, MAX_BATCH)
    with warnings_quiet():
        lowered = to_edge_transform_and_lower(
            program, partitioner=[XnnpackPartitioner()], constant_methods=artifact_metadata(generator, source_sha)
        ).to_executorch()
    path.write_bytes(lowered.buffer)


@dataclass
class Program:
    """A loaded gankit ``.pte``: ``config``, ``metadata``, and the call z (B <= MAX_BATCH, latent) float32
    [, labels (B,) int64] -> images (B, C, H, W) float32 on the CPU."""

    path: Path
    config: GeneratorConfig
    metadata: dict[str, str]
    method: Any

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.shape[0] > MAX_BATCH:
            raise ExportError(f"{self.path.name} takes batches of at most {MAX_BATCH}; got {z.shape[0]}")
        inputs = [z.to("cpu", torch.float32).contiguous()]
        if labels is not None:
            inputs.append(labels.to("cpu", torch.int64).contiguous())
        return self.method.execute(inputs)[0]


def load_program(path: str | Path) -> Program:
    """Load a ``.pte`` written by ``build_program`` through ``executorch.runtime``; ExportError when it is not one."""
    from executorch.runtime import Runtime

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ExecuTorch program")
    try:
        program = Runtime.get().load_program(path)
        names = set(program.method_names)
        metadata = {name: program.load_method(name).execute([])[0] for name in names if name.startswith("gankit_")}
        method = program.load_method("forward")
    except Exception as exc:  # the runtime raises RuntimeError/ValueError for a file that is not a program
        first = (str(exc).strip().splitlines() or ["no detail"])[0]
        raise ExportError(f"{path}: not a loadable ExecuTorch program ({type(exc).__name__}: {first})") from exc
    if "gankit_config" not in metadata:
        raise ExportError(f"{path}: not a gankit export (no gankit_config method in the program)")
    return Program(path, GeneratorConfig.from_json(metadata["gankit_config"]), metadata, method)


def program_runner(path: Path):
    """The parity check's view of a program: NumPy z [, labels] -> NumPy images."""
    program = load_program(path)

    def run(z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        given = None if labels is None else torch.from_numpy(labels)
        return program(torch.from_numpy(z), given).numpy()

    return run


def export_executorch(generator: Generator, out: Path, source_sha: str, log=print) -> ExportResult:
    """Export ``generator`` to the program ``out`` (.pte), parity-checked through ``executorch.runtime``
    (``gankit.onnx.parity.land_checked``)."""
    log(f"lowering to ExecuTorch (XNNPACK) -> {out}...")
    versions = {"executorch": package_version("executorch")}
    return land_checked(
        out, lambda tmp: build_program(generator, tmp, source_sha), fp32_check(generator, program_runner, versions, log)
    )
