"""PyTorch -> ONNX graph, in fp32, fp16 or int8, with float or uint8 image output (building only).

The exported graph: input ``z`` [batch, latent_dim] float32 and, for a class-conditional generator
(``num_classes`` = K > 0, recorded in ``gankit_config``), input ``label`` [batch] int64 in [0, K): a Gather of
row ``label[b]`` of ``class_bias`` (K, hidden[0]) is added to layer 1's Gemm output, before its activation;
output ``image`` [batch, C, H, W]:
float32 in [-1, 1] (``--output float``) or uint8 in 0..255 (``--output uint8``: (x + 1) * 127.5,
rounded, clipped, cast, all in the graph). fp16 keeps float32 I/O and casts inside (weights and
compute in fp16), so it is a drop-in replacement; int8 is onnxruntime's quantization of the fp32
graph, by default dynamic (int8 weights per channel, activations quantized at run time), with the
options of ``gankit.onnx.quantize.Int8Options``. ``metadata_props`` carry the gankit version, the generator
config, precision, output, opset, the source checkpoint's sha256 and, for int8, the options.

``build_onnx`` writes and checks the graph (``onnx.checker`` full check); ``gankit.export.export_onnx`` runs the
parity gate (``gankit.onnx.validate``) before a file lands under its name.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import onnx
import torch
from torch import nn

from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.graph import DEFAULT_OPSET, OUTPUTS, PRECISIONS
from gankit.onnx.quantize import Int8Options, quantize
from gankit.pixels import to_uint8
from gankit.version import __version__

EXAMPLE_BATCH = 2  # >= 2, or the exporter may specialise the batch dimension to 1


class _Exportable(nn.Module):
    """The generator with the graph's I/O contract: float32 z [, int64 label] in; float32 or uint8 image out."""

    def __init__(self, generator: Generator, precision: str, output: str) -> None:
        super().__init__()
        self.generator = generator.half() if precision == "fp16" else generator.float()
        self.half = precision == "fp16"
        self.uint8 = output == "uint8"

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        extra = () if label is None else (label,)
        images = self.generator(z.half() if self.half else z, *extra).float()
        return to_uint8(images) if self.uint8 else images


def _metadata(
    config: GeneratorConfig, precision: str, output: str, opset: int, source_sha: str, int8: Int8Options | None
) -> dict[str, str]:
    extra = {"gankit_int8": (int8 or Int8Options()).to_json()} if precision == "int8" else {}
    return {
        **extra,
        "gankit_version": __version__,
        "gankit_config": config.to_json(),
        "gankit_precision": precision,
        "gankit_output": output,
        "gankit_opset": str(opset),
        "gankit_source_sha256": source_sha,
        "gankit_noise": NOISE_NAME,  # int8 static calibration and every seed -> image claim assume this noise
    }


def _torch_export(module: nn.Module, config: GeneratorConfig, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch")
    examples: tuple[torch.Tensor, ...] = (torch.zeros(EXAMPLE_BATCH, config.latent_dim),)
    names = ["z"]
    if config.num_classes:  # labels 0, 1: distinct rows, so the exporter cannot fold the Gather away
        examples += (torch.arange(EXAMPLE_BATCH, dtype=torch.int64) % config.num_classes,)
        names.append("label")
    with warnings_quiet():
        program = torch.onnx.export(
            module,
            examples,
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=names,
            output_names=["image"],
            dynamic_shapes=tuple({0: batch} for _ in examples),
            verbose=False,
        )
        program.save(str(path), external_data=False)


@contextlib.contextmanager
def warnings_quiet():
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def build_onnx(
    generator: Generator,
    path: Path,
    precision: str,
    output: str,
    opset: int,
    source_sha: str,
    int8: Int8Options | None = None,
) -> None:
    """Write the ONNX graph of ``generator`` to ``path`` (no validation); ``int8``: options when precision is int8."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if output not in OUTPUTS:
        raise ExportError(f"unknown output {output!r}; choose from {', '.join(OUTPUTS)}")
    source = Generator(generator.config)
    source.load_state_dict(generator.state_dict())
    source.eval()
    graph_precision = "fp32" if precision == "int8" else precision
    try:
        if precision == "int8":
            float_path = path.with_name(path.name + ".fp32")
            try:
                _torch_export(_Exportable(source, "fp32", output), generator.config, float_path, opset)
                quantize(float_path, path, int8 or Int8Options(), generator.config)
            finally:
                float_path.unlink(missing_ok=True)
        else:
            _torch_export(_Exportable(source, graph_precision, output), generator.config, path, opset)
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many kinds; all mean "this export failed"
        raise ExportError(f"ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    model = onnx.load(str(path))
    made = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    if made != opset:
        raise ExportError(
            f"the exporter wrote opset {made}, not the --opset {opset} asked for: it cannot convert this graph to "
            f"opset {opset}; pick another (default {DEFAULT_OPSET}; opsets 15 to {onnx.defs.onnx_opset_version()} "
            "were seen to work with torch 2.14)"
        )
    for key, value in _metadata(generator.config, precision, output, opset, source_sha, int8).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the export: {str(exc).splitlines()[0]}") from exc


def temporary_export(
    generator: Generator, precision: str, int8: Int8Options | None = None
) -> tuple[tempfile.TemporaryDirectory, Path]:
    """Export ``generator`` (float output, default opset, unvalidated) into a fresh temporary folder.

    Returns the folder (deleted when it is garbage-collected: keep it as long as the model is used) and the path."""
    folder = tempfile.TemporaryDirectory(prefix="gankit-onnx-")
    path = Path(folder.name) / "generator.onnx"
    build_onnx(generator, path, precision, "float", DEFAULT_OPSET, "", int8=int8)
    return folder, path
