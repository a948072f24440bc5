"""PyTorch -> ONNX, in fp32, fp16 or int8, with float or uint8 image output, validated before it lands.

The exported graph: input ``z`` [batch, latent_dim] float32; output ``image`` [batch, C, H, W]:
float32 in [-1, 1] (``--output float``) or uint8 in 0..255 (``--output uint8``: (x + 1) * 127.5,
rounded, clipped, cast, all in the graph). fp16 keeps float32 I/O and casts inside (weights and
compute in fp16), so it is a drop-in replacement; int8 is onnxruntime's quantization of the fp32
graph, by default dynamic (int8 weights per channel, activations quantized at run time), with the
options of ``gankit.quantize.Int8Options``. ``metadata_props`` carry the gankit version, the generator
config, precision, output, opset, the source checkpoint's sha256 and, for int8, the options.

An export is written to a temporary file, checked (``onnx.checker`` full check, then parity against a
float64 reference, see ``gankit.parity``) and only then renamed to its name; a failed one is deleted
and its report kept as ``NAME.parity.failed.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from gankit.checkpoint import PRETRAINED, load_generator, sha256_of
from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.model import Generator
from gankit.parity import ParityReport, check_parity, format_report, raise_if_failed, write_report
from gankit.quantize import Int8Options, quantize
from gankit.version import __version__

PRECISIONS = ("fp32", "fp16", "int8")
OUTPUTS = ("float", "uint8")
DEFAULT_OPSET = 20
EXAMPLE_BATCH = 2  # >= 2, or the exporter may specialise the batch dimension to 1


class _Exportable(nn.Module):
    """The generator with the graph's I/O contract: float32 z in; float32 or uint8 image out."""

    def __init__(self, generator: Generator, precision: str, output: str) -> None:
        super().__init__()
        self.generator = generator.half() if precision == "fp16" else generator.float()
        self.half = precision == "fp16"
        self.uint8 = output == "uint8"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.generator(z.half() if self.half else z).float()
        if self.uint8:
            return torch.clamp(torch.round((images + 1.0) * 127.5), 0.0, 255.0).to(torch.uint8)
        return images


@dataclass
class ExportResult:
    path: Path
    report_path: Path
    report: ParityReport


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
    }


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The gankit metadata_props of an exported model (ExportError if it is not a gankit export)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a file that is not ONNX
        raise ExportError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if "gankit_config" not in props:
        raise ExportError(f"{path}: not a gankit export (no gankit_config in its metadata)")
    return props


def _torch_export(module: nn.Module, latent_dim: int, path: Path, opset: int) -> None:
    example = torch.zeros(EXAMPLE_BATCH, latent_dim)
    with warnings_quiet():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=["z"],
            output_names=["image"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
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
                _torch_export(_Exportable(source, "fp32", output), generator.config.latent_dim, float_path, opset)
                quantize(float_path, path, int8 or Int8Options(), generator.config.latent_dim)
            finally:
                float_path.unlink(missing_ok=True)
        else:
            _torch_export(_Exportable(source, graph_precision, output), generator.config.latent_dim, path, opset)
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many kinds; all mean "this export failed"
        raise ExportError(f"ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    model = onnx.load(str(path))
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


def report_path_for(model_path: Path, failed: bool = False) -> Path:
    suffix = ".parity.failed.json" if failed else ".parity.json"
    return model_path.with_name(model_path.stem + suffix)


def validate(
    model_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    log=print,
    name: str | None = None,
) -> ParityReport:
    """Re-run the parity check of an exported model against its source checkpoint; write the report.

    Without ``checkpoint`` the bundled generator is used when it is the model's recorded source.
    Raises ExportError (with the worst case against its tolerance) when parity fails.
    """
    from gankit.backends.onnxruntime import OnnxRuntimeBackend

    model_path = Path(model_path)
    props = read_metadata(model_path)
    source = Path(checkpoint) if checkpoint else PRETRAINED
    if checkpoint is None and sha256_of(PRETRAINED) != props.get("gankit_source_sha256"):
        raise ExportError(
            f"{model_path} was not exported from the bundled generator: pass its checkpoint with --checkpoint"
        )
    generator = load_generator(source)
    if generator.config != GeneratorConfig.from_json(props["gankit_config"]):
        raise ExportError(f"{model_path} and {source} have different generator configs")
    backend = OnnxRuntimeBackend(model_path, threads=threads)
    report = check_parity(
        backend.run_numpy, generator, props["gankit_precision"], props["gankit_output"], name or model_path.name
    )
    if props["gankit_precision"] != "fp32" and props["gankit_output"] == "float":
        report.vs_fp32 = _compare_with_fp32(generator, backend)
    log(format_report(report))
    write_report(report, report_path_for(model_path, failed=not report.passed))
    if report.passed:
        report_path_for(model_path, failed=True).unlink(missing_ok=True)
    raise_if_failed(report, str(model_path))
    return report


def _compare_with_fp32(generator: Generator, backend) -> dict[str, float]:
    """Pixel-space error of a low-precision export against the fp32 export, on 4,096 standard-normal z."""
    from gankit.backends.onnxruntime import OnnxRuntimeBackend

    with tempfile.TemporaryDirectory() as folder:
        fp32_path = Path(folder) / "fp32.onnx"
        build_onnx(generator, fp32_path, "fp32", "float", DEFAULT_OPSET, "")
        fp32 = OnnxRuntimeBackend(fp32_path)
        z = torch.randn(4096, generator.config.latent_dim, generator=torch.Generator().manual_seed(0)).numpy()
        diff = abs(backend.run_numpy(z).astype("float64") - fp32.run_numpy(z).astype("float64")) * 127.5
    return {"max_pixel_levels_vs_fp32": float(diff.max()), "mean_pixel_levels_vs_fp32": float(diff.mean())}


def export(
    checkpoint: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    precision: str = "fp32",
    output: str = "float",
    opset: int = DEFAULT_OPSET,
    log=print,
    int8: Int8Options | None = None,
) -> ExportResult:
    """Export ``checkpoint`` (default: the bundled generator) to ``out``, validated; see the module doc.

    ``int8``: quantization options when precision is int8 (default: ``Int8Options()``)."""
    if int8 is not None and precision != "int8":
        raise ExportError("int8 options were given, but the precision is not int8 (add --precision int8)")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"--out must end in .onnx (got {out})")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in .onnx")
    source = Path(checkpoint) if checkpoint else PRETRAINED
    generator = load_generator(source)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"cannot write to {out.parent} ({exc.strerror or exc}); choose a writable --out") from exc
    tmp = Path(tmp_name)
    try:
        build_onnx(generator, tmp, precision, output, opset, sha256_of(source), int8)
        what = f"int8 {(int8 or Int8Options()).label}" if precision == "int8" else precision
        log(f"exported {source} -> {out} ({what}, {output} output, opset {opset}); checking parity...")
        try:
            report = validate(tmp, checkpoint=source, log=log, name=out.name)
        finally:
            for suffix in (".parity.json", ".parity.failed.json"):
                produced = report_path_for(tmp, failed=suffix.endswith("failed.json"))
                if produced.exists():
                    produced.replace(out.with_name(out.stem + suffix))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    stale = report_path_for(out, failed=True)
    stale.unlink(missing_ok=True)
    return ExportResult(out, report_path_for(out), report)


def describe(path: str | os.PathLike[str]) -> dict[str, object]:
    """The metadata of an export, decoded (for ``gankit info MODEL.onnx``)."""
    props = read_metadata(path)
    decoded = {**props, "gankit_config": json.loads(props["gankit_config"])}
    if "gankit_int8" in props:
        decoded["gankit_int8"] = json.loads(props["gankit_int8"])
    return decoded
