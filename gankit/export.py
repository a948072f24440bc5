"""``gankit export`` and ``gankit validate``: the one export module of every format, and an ONNX file's parity
checked again against its source.

Formats (``FORMATS``; ``export_format`` infers one from ``--out``'s suffix): ``onnx`` (``export_onnx``: the graph of
``gankit.onnx.build``, run through onnxruntime by ``gankit.onnx.validate``), ``aoti`` (an AOTInductor ``.pt2``,
``gankit.targets.aoti``), ``executorch`` (a ``.pte`` with the XNNPACK delegate, ``gankit.targets.executorch``) and
``web`` (a static folder around ``export_onnx``'s uint8 graph, ``gankit.web``). Every file lands through
``gankit.onnx.parity.land_checked``: built into a temporary file beside ``out``, held to the parity check
against float64, renamed to ``out`` only when it passed. Its report, and ``validate``'s, lands through
``land_report`` there, the one writer of parity reports (``report_path``: ``NAME.parity.json`` beside NAME.onnx,
``NAME.pt2.parity.json`` beside NAME.pt2, ...; ``.parity.failed.json`` for a check that failed).

Choosing a format and a path imports no torch (``gankit export --help``); building and checking an export imports
it inside the functions that do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.checkpoint import PRETRAINED
from gankit.checkpoint import model_path as checkpoint_path  # validate() has a model_path argument
from gankit.errors import ExportError
from gankit.io import check_writable, refuse_overwrite, sha256_of
from gankit.models import ImportOptions, load
from gankit.onnx.graph import DEFAULT_OPSET, read_metadata

if TYPE_CHECKING:
    from gankit.model import Generator
    from gankit.models import ModelFile
    from gankit.onnx.parity import ExportResult, ParityReport
    from gankit.onnx.quantize import Int8Options

FORMATS = ("onnx", "aoti", "executorch", "web")
SUFFIXES = {"onnx": ".onnx", "aoti": ".pt2", "executorch": ".pte", "web": ""}  # web: a folder
DEFAULT_OUT = {  # in the working folder: a default never lands on the shipped exports of a checkout
    "onnx": "generator.onnx",
    "aoti": "generator.pt2",
    "executorch": "generator.pte",
    "web": "generator-web",
}


def export_format(out: str | os.PathLike[str] | None, format: str | None = None) -> tuple[str, Path]:
    """(format, out path) of an export: ``format`` when given (``out``'s suffix must agree), else the one of
    ``out``'s suffix (.onnx, .pt2, .pte; none: a folder, web); onnx when neither is given. ``out`` defaults to
    ``DEFAULT_OUT[format]``."""
    if format is not None and format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    if out is None:
        format = format or "onnx"
        return format, Path(DEFAULT_OUT[format])
    out = Path(out)
    by_suffix = {suffix: name for name, suffix in SUFFIXES.items()}
    if out.suffix not in by_suffix:
        raise ExportError(f"--out must end in .onnx, .pt2 or .pte, or name a folder for --format web (got {out})")
    inferred = by_suffix[out.suffix]
    if format is not None and format != inferred:
        wanted = f"end in {SUFFIXES[format]}" if SUFFIXES[format] else "name a folder (no suffix)"
        raise ExportError(f"--format {format}: --out must {wanted} (got {out})")
    if inferred != "web" and out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in {out.suffix}")
    return inferred, out


def export_onnx(
    generator: Generator,
    source: ModelFile,
    out: Path,
    precision: str = "fp32",
    output: str = "float",
    opset: int = DEFAULT_OPSET,
    log=print,
    int8: Int8Options | None = None,
) -> ExportResult:
    """Export ``generator`` (read from the file ``source``, whose sha256 the graph records) to the ONNX file
    ``out`` through ``land_checked``; ``int8``: quantization options when precision is int8."""
    from gankit.onnx.build import build_onnx
    from gankit.onnx.parity import land_checked
    from gankit.onnx.quantize import Int8Options
    from gankit.onnx.validate import check_graph

    def build(tmp: Path) -> None:
        build_onnx(generator, tmp, precision, output, opset, source.sha256, int8)
        what = f"int8 {(int8 or Int8Options()).label}" if precision == "int8" else precision
        log(f"exported {source.path} -> {out} ({what}, {output} output, opset {opset}); checking parity...")

    def check(tmp: Path, name: str) -> ParityReport:
        return check_graph(tmp, generator, log=log, name=name, source=str(source.path))

    return land_checked(out, build, check)


def refuse_options_for_web(
    precision: str = "fp32",
    output: str = "float",
    opset: int | None = None,
    int8: Int8Options | None = None,
    import_options: ImportOptions | None = None,
) -> None:
    """ExportError unless the ONNX graph's options and the import options are their defaults: the web folder
    (``gankit.web.export_web``) is fp32 with float output of a gankit checkpoint, or of a state dict that needs
    no import options."""
    if (precision, output, opset, int8) != ("fp32", "float", None, None) or (
        import_options is not None and import_options != ImportOptions()
    ):
        raise ExportError(
            "--format web exports fp32 with float output of a gankit checkpoint (or a state dict that needs "
            "no import options); --precision, --output, --opset, --int8-* and the import options are not for it"
        )


def export(
    checkpoint: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    precision: str = "fp32",
    output: str = "float",
    opset: int | None = None,
    log=print,
    int8: Int8Options | None = None,
    import_options: ImportOptions | None = None,
    format: str | None = None,
    force: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` (default: the bundled generator) to ``out`` in ``format`` (default: from ``out``'s
    suffix, see ``export_format``; the web folder is ``gankit.web.export_web``), validated; see the module doc.
    An existing ``out`` is replaced only with ``force`` (``gankit.io.refuse_overwrite``).

    ``checkpoint``: any checkpoint ``gankit.models.load_model`` reads (a foreign state dict is converted
    with ``import_options``). ``precision``, ``output``, ``opset`` and ``int8`` are the ONNX graph's options (the
    other formats are fp32 with float output); ``int8``: quantization options when precision is int8 (default:
    ``Int8Options()``)."""
    if int8 is not None and precision != "int8":
        raise ExportError("int8 options were given, but the precision is not int8 (add --precision int8)")
    format, out = export_format(out, format)
    if format == "web":
        raise ExportError("the web folder is written by gankit.web.export_web (gankit export --format web)")
    if format != "onnx" and (precision, output, opset, int8) != ("fp32", "float", None, None):
        raise ExportError(
            f"--format {format} exports fp32 with float output; --precision, --output, --opset and --int8-* are "
            "options of --format onnx"
        )
    refuse_overwrite(out, force, f"an {format} export")
    check_writable(out)
    source = checkpoint_path(checkpoint)
    if format != "onnx" and source.suffix == ".onnx":
        raise ExportError(
            f"{source} is an ONNX graph: --format {format} is built from a generator's weights; give its checkpoint"
        )
    loaded = load(source, import_options, log)
    generator = loaded.generator()
    if format == "aoti":
        from gankit.targets.aoti import export_aoti

        return export_aoti(generator, out, loaded.sha256, log=log)
    if format == "executorch":
        from gankit.targets.executorch import export_executorch

        return export_executorch(generator, out, loaded.sha256, log=log)
    opset = DEFAULT_OPSET if opset is None else opset
    return export_onnx(generator, loaded, out, precision, output, opset, log, int8)


def validate(
    model_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    log=print,
    name: str | None = None,
    seed: int | None = None,
    import_options: ImportOptions | None = None,
) -> ParityReport:
    """Re-run the parity check of an exported ONNX model against its source checkpoint; land the report beside it
    (``gankit.onnx.parity.land_report``: a passing check removes the model's failed report).

    Without ``checkpoint`` the bundled generator is used when it is the model's recorded source.
    ``seed``: the base seed of the parity inputs (fresh when None; the report records it).
    ``import_options``: for a foreign checkpoint, what its file cannot say (as given to the export).
    Raises ExportError (with the worst case against its tolerance) when parity fails.
    """
    model_path = Path(model_path)
    props = read_metadata(model_path)
    source = checkpoint_path(checkpoint)
    if checkpoint is None and sha256_of(PRETRAINED) != props.get("gankit_source_sha256"):
        raise ExportError(
            f"{model_path} was not exported from the bundled generator: pass its checkpoint with --checkpoint"
        )
    from gankit.onnx.parity import land_report
    from gankit.onnx.validate import check_graph

    loaded = load(source, import_options, log)  # a gankit checkpoint's weights are read without torch
    report = check_graph(model_path, loaded, threads, log, name, seed, str(source))
    land_report(report, model_path)
    return report
