"""Export targets beside ONNX: an AOTInductor package (``.pt2``, ``gankit.targets.aoti``) and an ExecuTorch
program (``.pte``, ``gankit.targets.executorch``), both made from ``torch.export`` of the generator.

What every target shares lives here:
- ``export_program``: ``torch.export`` of the generator with a dynamic batch dimension (inputs ``z`` (B, latent)
  float32 and, for a class-conditional generator, ``label`` (B,) int64; output the float32 image (B, C, H, W)
  in [-1, 1]). The example batch is ``EXAMPLE_BATCH`` (>= 2, so the batch is not specialised to 1).
- ``artifact_metadata``: the strings each artifact carries (config, noise name, gankit version, source sha256).
- ``fp32_check``: the parity check of ``gankit.onnx.parity`` on an artifact (fp32 against float64, the tolerance
  derived there), for ``gankit.onnx.parity.land_checked``, which builds it beside ``out``, lands its report and renames
  it to ``out`` only when it passed.
- ``cached_artifact``: an artifact made once per machine and generator for the sampling backends.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gankit.checkpoint import generator_digest
from gankit.io import cache_dir
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.build import EXAMPLE_BATCH, warnings_quiet
from gankit.onnx.cache import publish
from gankit.onnx.parity import ParityReport, Reference, check_parity, format_report
from gankit.version import __version__, package_version

_TEMPORARY: list[tempfile.TemporaryDirectory] = []  # cache-less artifacts' folders, kept for the process
Runner = Callable[..., np.ndarray]  # z (B, latent) float32 [, labels (B,) int64] -> images (B, C, H, W) float32


def export_program(
    generator: Generator, max_batch: int | None = None, device: str = "cpu"
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``generator`` (fp32, eval, on ``device``) with a dynamic batch dimension of at most
    ``max_batch`` (unbounded when None); see the module doc for its inputs and output."""
    model = Generator(generator.config)
    model.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in generator.state_dict().items()})
    model = model.to(device)
    batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch else torch.export.Dim("batch", min=1)
    examples: tuple[torch.Tensor, ...] = (torch.zeros(EXAMPLE_BATCH, generator.config.latent_dim, device=device),)
    if generator.config.num_classes:  # distinct labels, so the class-bias gather cannot be folded away
        labels = torch.arange(EXAMPLE_BATCH, dtype=torch.int64, device=device) % generator.config.num_classes
        examples += (labels,)
    with warnings_quiet():
        return torch.export.export(model.eval(), examples, dynamic_shapes=tuple({0: batch} for _ in examples))


def artifact_metadata(generator: Generator, source_sha: str) -> dict[str, str]:
    """The strings an AOTInductor package or ExecuTorch program carries (the keys of the ONNX export's metadata)."""
    return {
        "gankit_version": __version__,
        "gankit_config": generator.config.to_json(),
        "gankit_precision": "fp32",
        "gankit_output": "float",
        "gankit_source_sha256": source_sha,
        "gankit_noise": NOISE_NAME,  # every seed -> image claim assumes this noise
    }


def fp32_check(
    generator: Generator, runner: Callable[[Path], Runner], versions: dict[str, str], log=print
) -> Callable[[Path, str], ParityReport]:
    """The check ``gankit.onnx.parity.land_checked`` runs on a built artifact: ``runner(path)`` held to ``generator``
    (fp32 against float64), the report named ``name``, ``versions`` added to its versions, and logged."""

    reference = Reference.of(generator)

    def check(path: Path, name: str) -> ParityReport:
        report = check_parity(runner(path), reference, "fp32", "float", name)
        report.versions.update(versions)
        log(format_report(report))
        return report

    return check


def cached_artifact(generator: Generator, kind: str, suffix: str, build: Callable[[Path], None], **parts) -> Path:
    """The artifact ``build(path)`` makes for ``generator``, kept in ``$GANKIT_CACHE_DIR/<kind>/`` under a key of
    the generator's config and weights, ``parts`` and the gankit and torch versions (unvalidated, as the ONNX
    backends' cached export); made in a temporary folder where the cache is unwritable."""
    payload = {"generator": generator_digest(generator), "gankit": __version__, "torch": package_version("torch")}
    key = hashlib.sha256(json.dumps({**payload, **parts}, sort_keys=True).encode()).hexdigest()[:32]
    target = cache_dir() / kind / f"{key}{suffix}"
    if target.is_file():
        return target
    folder, path = publish(target, build)
    if folder is not None:  # the runtime maps the file: keep its folder for the process
        _TEMPORARY.append(folder)
    return path
