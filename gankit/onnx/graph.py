"""An ONNX generator file as gankit runs it: input and output names, latent size, image shape, output range.

A gankit export states its generator config, precision and output type in its metadata
(``gankit.onnx.build``). A generator exported elsewhere is read from its graph: one float32 input
[batch, latent] (batch dynamic) and one float32 output [batch, C, H, W], [batch, H, W] or flat
[batch, C*H*W]; the names are the graph's own. What such a graph cannot say comes from the caller: the
image shape of a flat output (default 1x28x28 when it holds 784 values) and the output range, (-1, 1)
(default) or (0, 1), which the backends map to gankit's [-1, 1] as 2y - 1.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gankit.config import SEED_IMAGE_SHAPE, GeneratorConfig, OnnxGeneratorConfig
from gankit.errors import ConfigError, ConversionError, ExportError

if TYPE_CHECKING:  # onnx (about 0.5 s to import) is loaded when a file is parsed, not for these names
    import onnx

FLOAT = 1  # onnx.TensorProto.FLOAT
# What a gankit export can be (``gankit.onnx.build``), as its metadata names it.
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUTS = ("float", "uint8")
DEFAULT_OPSET = 20


@dataclass(frozen=True)
class OnnxGraph:
    """path; input_name/output_name; config: the export's GeneratorConfig, or what a foreign graph says
    (OnnxGeneratorConfig); precision ("fp32", "fp16", "int8"; a foreign graph: "fp32", its float32 I/O);
    output: "float" or "uint8"; metadata: the file's metadata_props; label_name: the int64 [batch] label input
    of a class-conditional export ("label"), None otherwise."""

    path: Path
    input_name: str
    output_name: str
    config: GeneratorConfig | OnnxGeneratorConfig
    precision: str
    output: str
    metadata: dict[str, str]
    label_name: str | None = None

    @property
    def foreign(self) -> bool:
        return isinstance(self.config, OnnxGeneratorConfig)

    @property
    def output_range(self) -> tuple[float, float]:
        return self.config.output_range if self.foreign else (-1.0, 1.0)


def load_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """The model without its external data (enough for names, shapes and metadata); ExportError if unreadable."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    if path.stat().st_size == 0:
        raise ExportError(f"{path}: the file is empty (0 bytes)")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a file that is not ONNX
        raise ExportError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The gankit metadata_props of an exported model (ExportError if it is not a gankit export)."""
    props = {p.key: p.value for p in load_onnx(path).metadata_props}
    if "gankit_config" not in props:
        raise ExportError(f"{path}: not a gankit export (no gankit_config in its metadata)")
    return props


def read_graph(
    path: str | os.PathLike[str],
    image_shape: tuple[int, int, int] | None = None,
    output_range: tuple[float, float] | None = None,
) -> OnnxGraph:
    """Read ``path`` (a gankit export or a foreign generator graph); see the module docstring.

    image_shape and output_range: for a foreign graph only (a gankit export states both; ConfigError if given)."""
    path = Path(path)
    model = load_onnx(path)
    props = {p.key: p.value for p in model.metadata_props}
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    config = GeneratorConfig.from_json(props["gankit_config"]) if "gankit_config" in props else None
    wanted = 2 if config is not None and config.num_classes else 1
    if len(inputs) != wanted or len(graph.output) != 1:
        what = "two inputs (z, label)" if wanted == 2 else "one input (z)"
        raise ConversionError(
            f"{path.name} has inputs {[v.name for v in inputs]} and outputs {[v.name for v in graph.output]}: a "
            f"generator graph has {what} and one output (the images)"
        )
    names = inputs[0].name, graph.output[0].name
    if config is not None:
        given = [flag for flag, value in (("image shape", image_shape), ("output range", output_range)) if value]
        if given:
            raise ConfigError(f"{path.name} is a gankit export: its metadata states its {' and '.join(given)}")
        label = inputs[1].name if wanted == 2 else None
        return OnnxGraph(path, *names, config, props["gankit_precision"], props["gankit_output"], props, label)
    latent = _input_size(path.name, inputs[0])
    shape = _image_shape(path.name, graph.output[0], image_shape)
    flops = sum(
        2 * math.prod(_dims(t))
        for node in graph.node
        if "MatMul" in node.op_type or "Gemm" in node.op_type
        for t in graph.initializer
        if t.name in node.input and len(t.dims) == 2
    )
    parameters = sum(math.prod(t.dims) for t in graph.initializer if len(t.dims) >= 1)
    config = OnnxGeneratorConfig(latent, shape, output_range or (-1.0, 1.0), flops, parameters)
    return OnnxGraph(path, *names, config, "fp32", "float", props)


def _dims(tensor: onnx.TensorProto) -> tuple[int, ...]:
    return tuple(tensor.dims)


def _shape(value: onnx.ValueInfoProto) -> tuple[int, list[int | str | None]]:
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
    return tensor.elem_type, dims


def _input_size(name: str, value: onnx.ValueInfoProto) -> int:
    import onnx

    elem, dims = _shape(value)
    if elem != FLOAT or len(dims) != 2 or not isinstance(dims[1], int) or dims[1] <= 0:
        raise ConversionError(
            f"{name}: input '{value.name}' is {onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else '?'} "
            f"{dims}; gankit runs generator graphs with one float32 input [batch, latent]"
        )
    if isinstance(dims[0], int) and dims[0] > 0:
        raise ConversionError(
            f"{name}: input '{value.name}' has a fixed batch of {dims[0]}; export it with a dynamic batch axis "
            f"(torch.onnx.export(..., dynamic_axes={{'{value.name}': {{0: 'batch'}}}}) or dynamic_shapes)"
        )
    return dims[1]


def _image_shape(name: str, value: onnx.ValueInfoProto, given: tuple[int, int, int] | None) -> tuple[int, int, int]:
    import onnx

    elem, dims = _shape(value)
    if elem != FLOAT or not 2 <= len(dims) <= 4:
        raise ConversionError(
            f"{name}: output '{value.name}' is {onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else '?'} "
            f"{dims}; gankit takes a float32 output of images [batch, C, H, W], [batch, H, W] or [batch, C*H*W]"
        )
    known = all(isinstance(d, int) and d > 0 for d in dims[1:])
    found = tuple(dims[1:]) if len(dims) == 4 else (1, *dims[1:]) if len(dims) == 3 else None
    if given is not None:
        if known and (math.prod(given) != math.prod(dims[1:]) or (found and found != tuple(given))):
            raise ConfigError(f"{name}: output '{value.name}' is {dims}, which image shape {given} does not fit")
        return tuple(given)
    if known and found:
        return found
    if known and dims[1] == math.prod(SEED_IMAGE_SHAPE):
        return SEED_IMAGE_SHAPE
    raise ConfigError(f"{name}: output '{value.name}' is {dims}: give its image shape with --image-shape C,H,W")


def graph_record(graph: OnnxGraph) -> dict[str, Any]:
    """What ``graph_from_record`` needs to give a gankit export's ``OnnxGraph`` again without parsing the file."""
    if graph.foreign:
        raise ExportError(f"{graph.path.name} is not a gankit export: read it with read_graph")
    names = {"input_name": graph.input_name, "output_name": graph.output_name, "label_name": graph.label_name}
    return {**names, "metadata": graph.metadata}


def graph_from_record(path: str | os.PathLike[str], record: dict[str, Any]) -> OnnxGraph:
    """The ``OnnxGraph`` of the gankit export ``path`` from its ``graph_record`` (KeyError or ConfigError when the
    record is not one)."""
    props = record["metadata"]
    config = GeneratorConfig.from_json(props["gankit_config"])
    names = record["input_name"], record["output_name"]
    return OnnxGraph(
        Path(path), *names, config, props["gankit_precision"], props["gankit_output"], props, record["label_name"]
    )


def describe_graph(graph: OnnxGraph) -> dict[str, object]:
    """What ``gankit info MODEL.onnx`` prints: the metadata of an export, decoded, or a foreign graph's interface."""
    if not graph.foreign:
        decoded: dict[str, object] = {**graph.metadata, "gankit_config": json.loads(graph.metadata["gankit_config"])}
        if "gankit_int8" in graph.metadata:
            decoded["gankit_int8"] = json.loads(graph.metadata["gankit_int8"])
        return decoded
    return {
        "path": str(graph.path),
        "kind": "ONNX generator made elsewhere",
        "input": graph.input_name,
        "output": graph.output_name,
        **json.loads(graph.config.to_json())["onnx_graph"],
        "metadata": graph.metadata,
    }
