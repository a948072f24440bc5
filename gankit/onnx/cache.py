"""ONNX files derived from a model, made once per machine and kept: a Generator's export, and a graph's uint8 twin.

``cached_export(generator, precision, int8)`` is the float-output ONNX export that the onnxruntime and OpenVINO
backends run for a Generator. Exporting (torch.export and onnxscript, plus quantization for int8) takes seconds
and imports much of torch, so it is done once: the file is kept in ``$GANKIT_CACHE_DIR/onnx/`` under a key
made of everything it depends on (the generator's config and weights, the export options, and the gankit,
torch, onnx, onnxscript, onnxruntime and noise versions) and written atomically (a crash, or a second process
exporting the same model, never leaves half a file under a key). Where the cache cannot be written, the export
goes to a temporary folder, as before the cache existed.

``uint8_twin(path)`` is the graph in ``path`` with the uint8 mapping of ``gankit.pixels.to_uint8`` appended
(Add 1, Mul 127.5, Round half to even, Clip 0..255, Cast: the ops of ``gankit export --output uint8``). Its
float part is the very graph of ``path``, so its images are that graph's float images rounded, made inside the
runtime's own call with no separate pass over them on the host (``tests/test_onnx_cache.py`` checks the
equality). Kept in the same cache, keyed by the source file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gankit.io import cache_dir, sha256_of
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.build import DEFAULT_OPSET, build_onnx, read_metadata, temporary_export
from gankit.onnx.quantize import Int8Options
from gankit.pixels import LEVELS_PER_UNIT
from gankit.version import __version__, package_version

FOLDER = "onnx"
Derived = tuple[tempfile.TemporaryDirectory | None, Path]  # (a temporary folder to keep alive, or None; the file)


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


def _publish(target: Path, make) -> Derived:
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


def cached_export(generator: Generator, precision: str, int8: Int8Options | None = None) -> Derived:
    """The float-output export of ``generator`` at ``precision`` (default opset, unvalidated, as ``temporary_export``).

    Returns (None, the cached file), or (a temporary folder to keep alive, the file in it) when the cache is
    unwritable."""
    int8 = (int8 or Int8Options()) if precision == "int8" else None
    options = {"precision": precision, "output": "float", "opset": DEFAULT_OPSET, "int8": int8 and int8.to_json()}
    target = cache_dir() / FOLDER / f"{_key({'generator': generator_digest(generator), **options})}.onnx"
    if target.is_file():
        return None, target
    try:
        return _publish(target, lambda path: build_onnx(generator, path, precision, "float", DEFAULT_OPSET, "", int8))
    except OSError:
        return temporary_export(generator, precision, int8=int8)


def _with_uint8_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (output ``image`` float32 in [-1, 1]) -> the same graph whose ``image`` is uint8 0..255."""
    graph = model.graph
    (output,) = graph.output
    float_name = f"{output.name}_float"
    for node in graph.node:
        node.output[:] = [float_name if name == output.name else name for name in node.output]
    constants = {"one": 1.0, "levels": LEVELS_PER_UNIT, "low": 0.0, "high": 255.0}
    for name, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), f"uint8_{name}"))
    graph.node.extend(
        [
            helper.make_node("Add", [float_name, "uint8_one"], ["uint8_shifted"]),
            helper.make_node("Mul", ["uint8_shifted", "uint8_levels"], ["uint8_scaled"]),
            helper.make_node("Round", ["uint8_scaled"], ["uint8_rounded"]),  # half to even, as torch.round
            helper.make_node("Clip", ["uint8_rounded", "uint8_low", "uint8_high"], ["uint8_clipped"]),
            helper.make_node("Cast", ["uint8_clipped"], [output.name], to=TensorProto.UINT8),
        ]
    )
    output.type.tensor_type.elem_type = TensorProto.UINT8
    for entry in model.metadata_props:
        if entry.key == "gankit_output":
            entry.value = "uint8"
    onnx.checker.check_model(model, full_check=True)
    return model


def uint8_twin(path: str | os.PathLike[str]) -> Derived:
    """``path`` itself when its output is uint8 already, else its cached uint8 twin (see the module docstring)."""
    path = Path(path)
    if read_metadata(path).get("gankit_output") == "uint8":
        return None, path
    target = cache_dir() / FOLDER / f"{_key({'source': sha256_of(path), 'output': 'uint8'})}-uint8.onnx"
    if target.is_file():
        return None, target
    return _publish(target, lambda made: onnx.save(_with_uint8_output(onnx.load(str(path))), str(made)))
