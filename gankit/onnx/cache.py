"""A Generator's ONNX export, made once per machine and kept.

``cached_export(generator, precision, int8)`` is the float-output ONNX export that the onnxruntime and OpenVINO
backends run for a Generator. Exporting (torch.export and onnxscript, plus quantization for int8) takes seconds
and imports much of torch, so it is done once: the file is kept in ``$GANKIT_CACHE_DIR/onnx/`` under a key
made of everything it depends on (the generator's config and weights, the export options, and the gankit,
torch, onnx, onnxscript, onnxruntime and noise versions) and written atomically (a crash, or a second process
exporting the same model, never leaves half a file under a key). Where the cache cannot be written, the export
goes to a temporary folder that lives as long as its user holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from gankit.io import cache_dir
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.build import DEFAULT_OPSET, build_onnx, temporary_export
from gankit.onnx.quantize import Int8Options
from gankit.version import __version__, package_version

FOLDER = "onnx"


def _key(parts: dict) -> str:
    versions = {name: package_version(name) for name in ("torch", "onnx", "onnxscript", "onnxruntime")}
    payload = {**parts, "gankit": __version__, "noise": NOISE_NAME, **versions}  # static int8 calibrates on the noise
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def generator_digest(generator: Generator) -> str:
    """sha256 of a generator's config and weights (all an export depends on): the same model, the same digest."""
    digest = hashlib.sha256(generator.config.to_json().encode())
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().float().numpy()))
    return digest.hexdigest()


def publish(target: Path, make) -> tuple[tempfile.TemporaryDirectory | None, Path]:
    """``make(path)`` writes a file: land it at ``target`` atomically, or in a temporary folder where the cache
    is unwritable."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".making-", dir=target.parent))
    except OSError:
        folder = tempfile.TemporaryDirectory(prefix="gankit-onnx-")
        path = Path(folder.name) / target.name
        make(path)
        return folder, path
    try:
        made = scratch / target.name  # a real .onnx name: the exporter and the quantizer see what they expect
        make(made)
        os.replace(made, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None, target


def cached_export(
    generator: Generator, precision: str, int8: Int8Options | None = None
) -> tuple[tempfile.TemporaryDirectory | None, Path]:
    """The float-output export of ``generator`` at ``precision`` (default opset, unvalidated, as ``temporary_export``).

    Returns (None, the cached file), or (a temporary folder to keep alive, the file in it) when the cache is
    unwritable."""
    int8 = (int8 or Int8Options()) if precision == "int8" else None
    options = {"precision": precision, "output": "float", "opset": DEFAULT_OPSET, "int8": int8 and int8.to_json()}
    target = cache_dir() / FOLDER / f"{_key({'generator': generator_digest(generator), **options})}.onnx"
    if target.is_file():
        return None, target
    try:
        return publish(target, lambda path: build_onnx(generator, path, precision, "float", DEFAULT_OPSET, "", int8))
    except OSError:
        return temporary_export(generator, precision, int8=int8)
