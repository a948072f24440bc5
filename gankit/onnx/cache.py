"""A Generator's ONNX export, made once per machine and kept.

``cached_export(model, precision, int8)`` is the float-output ONNX export that the onnxruntime and OpenVINO
backends run for a Generator or a loaded checkpoint (``gankit.models.LoadedModel``); ``runtime_graph`` is what
they run for any model they are given. Exporting (torch.export and onnxscript, plus quantization for int8) takes seconds
and imports much of torch, so it is done once: the file is kept in ``$GANKIT_CACHE_DIR/onnx/`` under a key
made of everything it depends on (the generator's config and weights, the export options, and the gankit,
torch, onnx, onnxscript, onnxruntime and noise versions) and written atomically (a crash, or a second process
exporting the same model, never leaves half a file under a key). Where the cache cannot be written, the export
goes to a temporary folder that lives as long as its user holds it.

A gankit checkpoint's key is computed from its arrays without torch, so a run whose export is cached never
imports it; torch is imported to build an export only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gankit.checkpoint import generator_digest
from gankit.errors import ConfigError
from gankit.io import cache_dir, read_json, write_json
from gankit.noise import NOISE_NAME
from gankit.onnx.graph import DEFAULT_OPSET, OnnxGraph, graph_from_record, graph_record, read_graph
from gankit.version import __version__, package_version

if TYPE_CHECKING:
    import numpy as np

    from gankit.config import GeneratorConfig
    from gankit.model import Generator
    from gankit.onnx.quantize import Int8Options


class Loaded(Protocol):
    """What the ONNX layer needs of a read model file (``gankit.models.LoadedModel``): its config, its weights as
    arrays and their digest, read without torch where they can be (the cache key, the parity reference), and its
    Generator, built only to make an export."""

    config: GeneratorConfig

    def weight_arrays(self) -> dict[str, np.ndarray]: ...

    def weights_digest(self) -> str: ...

    def generator(self) -> Generator: ...


FOLDER = "onnx"


def _key(parts: dict) -> str:
    versions = {name: package_version(name) for name in ("torch", "onnx", "onnxscript", "onnxruntime")}
    payload = {**parts, "gankit": __version__, "noise": NOISE_NAME, **versions}  # static int8 calibrates on the noise
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


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
    model: Generator | Loaded, precision: str, int8: Int8Options | None = None
) -> tuple[tempfile.TemporaryDirectory | None, Path]:
    """The float-output export of ``model`` at ``precision`` (default opset, unvalidated, as ``temporary_export``).

    Returns (None, the cached file), or (a temporary folder to keep alive, the file in it) when the cache is
    unwritable."""
    if precision == "int8":
        from gankit.onnx.quantize import Int8Options

        int8 = int8 or Int8Options()
    else:
        int8 = None
    loaded = hasattr(model, "weights_digest")  # a Loaded: its digest without torch
    digest = model.weights_digest() if loaded else generator_digest(model)
    options = {"precision": precision, "output": "float", "opset": DEFAULT_OPSET, "int8": int8 and int8.to_json()}
    target = cache_dir() / FOLDER / f"{_key({'generator': digest, **options})}.onnx"
    if target.is_file():
        return None, target
    from gankit.onnx.build import build_onnx, temporary_export

    generator = model.generator() if loaded else model
    try:
        return publish(target, lambda path: build_onnx(generator, path, precision, "float", DEFAULT_OPSET, "", int8))
    except OSError:
        return temporary_export(generator, precision, int8=int8)


def runtime_graph(
    model: str | os.PathLike[str] | OnnxGraph | Loaded | Generator, precision: str, int8: Int8Options | None = None
) -> tuple[tempfile.TemporaryDirectory | None, OnnxGraph]:
    """The graph an ONNX runtime runs for ``model``: an ONNX file or graph as it is, a loaded ONNX model's graph,
    else (a checkpoint, a Generator) its ``cached_export`` at ``precision``. (a temporary folder to keep alive or
    None, the graph)"""
    if isinstance(model, OnnxGraph):
        return None, model
    if isinstance(model, (str, os.PathLike)):
        return None, read_graph(model)
    if getattr(model, "graph", None) is not None:  # a loaded ONNX model
        return None, model.graph
    folder, path = cached_export(model, precision, int8)
    return folder, cached_graph(path)


def cached_graph(path: Path) -> OnnxGraph:
    """The graph of the cached export ``path``, from the record kept beside it (``NAME.graph.json``, written at
    its first read): a run on a cached export then never parses the file with onnx, whose import alone takes
    about as long as the run. A missing or unreadable record is made again."""
    record = path.with_suffix(".graph.json")
    try:
        return graph_from_record(path, read_json(record))
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        pass
    graph = read_graph(path)
    with contextlib.suppress(OSError):  # an unwritable cache only costs a parse next time
        write_json(record, graph_record(graph))
    return graph
