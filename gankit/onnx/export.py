"""Export a Generator: build the ONNX graph, check its parity, and only then land it under its name.

The graph is written to a temporary file beside ``out`` (``gankit.onnx.build``), checked against a
float64 reference (``gankit.onnx.validate``) and renamed to ``out`` only when it passes; a failed
export is deleted and its report kept as ``NAME.parity.failed.json``. The ``gankit export`` command (any
checkpoint, read through ``gankit.models``) is ``gankit.export``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gankit.errors import ExportError
from gankit.io import sha256_of
from gankit.model import Generator
from gankit.onnx.build import build_onnx
from gankit.onnx.graph import DEFAULT_OPSET
from gankit.onnx.parity import ParityReport
from gankit.onnx.quantize import Int8Options
from gankit.onnx.validate import check_export, report_path_for


@dataclass
class ExportResult:
    path: Path
    report_path: Path
    report: ParityReport


def export_generator(
    generator: Generator,
    source: Path,
    out: Path,
    precision: str = "fp32",
    output: str = "float",
    opset: int = DEFAULT_OPSET,
    log=print,
    int8: Int8Options | None = None,
) -> ExportResult:
    """Export ``generator`` (read from the file ``source``, whose sha256 the graph records) to ``out``,
    validated; see the module doc. ``int8``: quantization options when precision is int8."""
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
