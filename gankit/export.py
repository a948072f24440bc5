"""``gankit export`` and ``gankit validate``: any checkpoint (read through ``gankit.imports``) to a validated ONNX
file, and a file's parity checked again against its source.

The ONNX work itself is ``gankit.onnx``: ``export.export_generator`` (build, check, land) and
``validate.check_export`` (the parity gate against a float64 reference).
"""

from __future__ import annotations

import os
from pathlib import Path

from gankit.checkpoint import PRETRAINED
from gankit.checkpoint import model_path as checkpoint_path  # validate() has a model_path argument
from gankit.errors import ExportError
from gankit.imports import ImportOptions, load_checkpoint
from gankit.io import check_writable, refuse_overwrite, sha256_of
from gankit.onnx.build import DEFAULT_OPSET, read_metadata
from gankit.onnx.export import ExportResult, export_generator
from gankit.onnx.parity import ParityReport
from gankit.onnx.quantize import Int8Options
from gankit.onnx.validate import check_export


def export(
    checkpoint: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    precision: str = "fp32",
    output: str = "float",
    opset: int = DEFAULT_OPSET,
    log=print,
    int8: Int8Options | None = None,
    import_options: ImportOptions | None = None,
    force: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` (default: the bundled generator) to ``out``, validated; see the module doc.
    An existing ``out`` is replaced only with ``force`` (``gankit.io.refuse_overwrite``).

    ``checkpoint``: any checkpoint ``gankit.imports.load_model`` reads (a foreign state dict is converted
    with ``import_options``). ``int8``: quantization options when precision is int8 (default: ``Int8Options()``)."""
    if int8 is not None and precision != "int8":
        raise ExportError("int8 options were given, but the precision is not int8 (add --precision int8)")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"--out must end in .onnx (got {out})")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in .onnx")
    refuse_overwrite(out, force, "an ONNX export")
    check_writable(out)
    source = checkpoint_path(checkpoint)
    generator = load_checkpoint(source, import_options, log)
    return export_generator(generator, source, out, precision, output, opset, log, int8)


def validate(
    model_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    log=print,
    name: str | None = None,
    seed: int | None = None,
    import_options: ImportOptions | None = None,
) -> ParityReport:
    """Re-run the parity check of an exported model against its source checkpoint; write the report.

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
    generator = load_checkpoint(source, import_options, log)
    return check_export(model_path, generator, threads, log, name, seed, str(source))
