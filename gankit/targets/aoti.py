"""AOTInductor: a generator as a ``.pt2`` package that runs without Python.

``build_package`` exports the generator (``gankit.targets.export_program``: dynamic batch) and compiles it with
``torch._inductor.aoti_compile_and_package`` for the CPU, or for CUDA when the device is a GPU. The package's
metadata (``aot_inductor.metadata``, read by ``get_metadata()`` in Python and by C++'s
``AOTIModelPackageLoader::get_metadata``) holds ``gankit.targets.artifact_metadata`` plus ``gankit_device``.
``load_package`` runs one from Python; ``docs/aoti/gankit_sample.cpp`` runs one from C++ with gankit's C noise.
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

SUFFIX = ".pt2"


def build_package(generator: Generator, path: Path, source_sha: str = "", device: str = "cpu") -> None:
    """Compile ``generator`` into the AOTInductor package ``path`` (ending in .pt2) for ``device`` (cpu or cuda)."""
    program = export_program(generator, device=device)
    metadata = {**artifact_metadata(generator, source_sha), "gankit_device": device}
    with warnings_quiet():
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"aot_inductor.metadata": metadata}
        )


@dataclass
class Package:
    """A loaded gankit package: ``config``, ``device`` (where its inputs go), ``metadata``, and the call
    z (B, latent) float32 [, labels (B,) int64] -> images (B, C, H, W) float32 on ``device``."""

    path: Path
    config: GeneratorConfig
    device: torch.device
    metadata: dict[str, str]
    runner: Any

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [z.to(self.device, torch.float32).contiguous()]
        if labels is not None:
            inputs.append(labels.to(self.device, torch.int64).contiguous())
        return self.runner(*inputs)


def load_package(path: str | Path) -> Package:
    """Load a ``.pt2`` written by ``build_package``; ExportError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such AOTInductor package")
    try:
        runner = torch._inductor.aoti_load_package(str(path))
        metadata = dict(runner.get_metadata())
    except Exception as exc:  # torch raises several unrelated types for a file that is not a package
        first = (str(exc).strip().splitlines() or ["no detail"])[0]
        raise ExportError(f"{path}: not a loadable AOTInductor package ({type(exc).__name__}: {first})") from exc
    if "gankit_config" not in metadata:
        raise ExportError(f"{path}: not a gankit export (no gankit_config in its package metadata)")
    device = torch.device(metadata.get("gankit_device", "cpu"))
    return Package(path, GeneratorConfig.from_json(metadata["gankit_config"]), device, metadata, runner)


def package_runner(path: Path):
    """The parity check's view of a package: NumPy z [, labels] -> NumPy images on the CPU."""
    package = load_package(path)

    def run(z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        given = None if labels is None else torch.from_numpy(labels)
        with torch.inference_mode():
            return package(torch.from_numpy(z), given).cpu().numpy()

    return run


def export_aoti(generator: Generator, out: Path, source_sha: str, device: str | None = None, log=print) -> ExportResult:
    """Export ``generator`` to the package ``out`` (.pt2) for ``device`` (default: cuda when present, else cpu),
    parity-checked (``gankit.onnx.parity.land_checked``)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    log(f"compiling an AOTInductor package for {device} -> {out} (a C++ build: this takes a while)...")
    return land_checked(
        out,
        lambda tmp: build_package(generator, tmp, source_sha, device),
        fp32_check(generator, package_runner, {"aoti_device": device}, log),
    )
