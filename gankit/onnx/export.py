"""``gankit export``: build the ONNX graph, check its parity, and only then land it under its name.

The graph is written to a temporary file beside ``out`` (``gankit.onnx.build``), checked against a
float64 reference (``gankit.onnx.validate``) and renamed to ``out`` only when it passes; a failed
export is deleted and its report kept as ``NAME.parity.failed.json``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gankit.checkpoint import PRETRAINED
from gankit.errors import ExportError
from gankit.imports import ImportOptions, load_checkpoint
from gankit.io import sha256_of
from gankit.onnx.build import DEFAULT_OPSET, build_onnx
from gankit.onnx.parity import ParityReport
from gankit.onnx.quantize import Int8Options
from gankit.onnx.validate import check_export, report_path_for


@dataclass
class ExportResult:
    path: Path
    report_path: Path
    report: ParityReport


def export(
    checkpoint: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    precision: str = "fp32",
    output: str = "float",
    opset: int = DEFAULT_OPSET,
    log=print,
    int8: Int8Options | None = None,
    import_options: ImportOptions | None = None,
) -> ExportResult:
    """Export ``checkpoint`` (default: the bundled generator) to ``out``, validated; see the module doc.

    ``checkpoint``: any checkpoint ``gankit.imports.load_model`` reads (a foreign state dict is converted
    with ``import_options``). ``int8``: quantization options when precision is int8 (default: ``Int8Options()``)."""
    if int8 is not None and precision != "int8":
        raise ExportError("int8 options were given, but the precision is not int8 (add --precision int8)")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"--out must end in .onnx (got {out})")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in .onnx")
    source = Path(checkpoint) if checkpoint else PRETRAINED
    generator = load_checkpoint(source, import_options, log)
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
            report = check_export(tmp, generator, log=log, name=out.name, source=str(source))
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
