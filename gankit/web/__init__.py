"""``gankit export --format web DIR``: a static folder that generates in the browser, offline, from any server.

The folder::

    index.html            the page (grid, digit picker, regenerate/next, time per batch, PNG download)
    gankit.js             the page's script, with the noise contract in JavaScript (bit for bit gankit.noise)
    generator.onnx        the generator (gankit.export.export_onnx, uint8 image output) and its parity report
    generator.parity.json
    gankit.json           the generator config, the noise contract, the label rule, the runtime's version
    ort/                  onnxruntime-web's WASM runtime (gankit.web.runtime: a pinned, verified npm release)

The page reads ``?seed=&start=&n=&digit=`` and, when a batch is done, sets ``window.gankitResult`` to
``{indices, labels, pixels}`` (indices as decimal strings, labels null for an unconditional generator, pixels
the n x C x H x W uint8 values in sample order) or ``{error: message}``; docs/browser.md is the user's page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from gankit.checkpoint import model_path
from gankit.errors import ExportError
from gankit.export import export_onnx
from gankit.io import write_json
from gankit.models import load
from gankit.noise import NOISE_NAME, NOISE_VERSION
from gankit.version import __version__
from gankit.web.runtime import ORT_WEB_VERSION, copy_runtime

STATIC = Path(__file__).parent / "static"
MODEL_FILE = "generator.onnx"
CONTRACT_FILE = "gankit.json"
RUNTIME_DIR = "ort"
LABEL_RULE = "digit D: every sample D; no digit: balanced, sample i of seed s gets (i + s) mod num_classes"
PAGE = "index.html"  # moved into place last: a served folder never shows a page whose files are missing


def export_web(
    model: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the static web folder of ``model`` (None, 'unconditional', 'conditional' or a checkpoint path, as
    ``gankit.checkpoint.model_path`` reads it) to ``out_dir``; returns ``out_dir``.

    A non-empty ``out_dir`` is refused unless ``force`` (then gankit's files in it are replaced, others kept).
    The folder is built beside ``out_dir`` and its files renamed into place only when the ONNX export passed
    its parity check and the runtime files were verified, so a failed or interrupted export leaves ``out_dir``
    as it was (an interrupted rename step leaves a mix of two complete exports' files; rerun to finish).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file; the web export writes a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} is not empty; choose an empty folder or pass --force to replace the export in it")
    source = load(model_path(model), None, log)
    generator = source.generator()
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise ExportError(
            f"cannot write to {out_dir.parent} ({exc.strerror or exc}); choose a writable folder"
        ) from exc

    def staged_log(message: str) -> None:  # name the files where they will be, not in the staging folder
        log(message.replace(str(stage), str(out_dir)))

    try:
        copy_runtime(stage / RUNTIME_DIR, staged_log)
        result = export_onnx(generator, source, stage / MODEL_FILE, output="uint8", log=staged_log)
        config = generator.config
        write_json(
            stage / CONTRACT_FILE,
            {
                "format": "gankit.web",
                "gankit_version": __version__,
                "model": MODEL_FILE,
                "inputs": ["z", "label"] if config.num_classes else ["z"],
                "output": "image",
                "output_dtype": "uint8",
                "config": asdict(config),
                "noise": {"name": NOISE_NAME, "version": NOISE_VERSION},
                "labels": LABEL_RULE,
                "source": source.path.name,
                "source_sha256": source.sha256,
                "parity": result.report_path.name,
                "onnxruntime_web": ORT_WEB_VERSION,
            },
        )
        for name in ("gankit.js", PAGE):
            shutil.copyfile(STATIC / name, stage / name)
        files = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
        out_dir.mkdir(exist_ok=True)
        for relative in sorted(files, key=lambda p: p.name == PAGE):
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / relative, out_dir / relative)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"wrote {out_dir}: serve it (python -m http.server -d {out_dir}) and open index.html")
    return out_dir
