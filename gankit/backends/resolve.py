"""From what a user asked (a model file, a backend name or ``auto``, a precision or ``auto``) to a running backend.

The model file may be of any kind ``gankit.models.load`` reads: a gankit checkpoint, a state dict from
elsewhere (converted once, here, with the ``ImportOptions``), or an ONNX file (a gankit export or a generator
graph made elsewhere, for the ONNX backends); or a compiled export (``.pt2``, ``.pte``: ``PACKAGE_BACKENDS``).
It is read once (a ``gankit.models.LoadedModel``) and handed to the backend: onnxruntime or OpenVINO on a cached
export, with ``--device auto`` or ``cpu``, open without importing torch. The backend keeps it as its ``source``:
the file is hashed once a job (``ModelFile.sha256``), whoever asks.

``open_backend`` is the one place that resolves ``--backend auto`` and ``--precision auto`` and says what it
picked and why. On a GPU: the whole-generator Triton kernel where it runs, else torch.compile. On a CPU the
choice is measured once per machine and model and cached (``gankit.backends.autoselect``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gankit.backends import Backend, backend_class, backend_names, create_backend
from gankit.checkpoint import model_path
from gankit.device import on_gpu
from gankit.errors import BackendError
from gankit.models import ImportOptions, LoadedModel, ModelFile, load

T = TypeVar("T")
ONNX_BACKENDS = ("onnxruntime", "openvino")
PACKAGE_BACKENDS = {".pt2": "aoti", ".pte": "executorch"}  # compiled exports, each run by its own backend


def _here(compute: Callable[[], T]) -> T:
    return compute()


def _has(name: str, precision: str) -> bool:
    cls = backend_class(name)
    return cls.unavailable_reason() is None and precision in cls.precisions


def _auto_backend(model: LoadedModel, precision: str, on_gpu: bool) -> tuple[str, str]:
    """(backend name, why) for ``--backend auto`` at a fixed precision."""
    if model.kind == "onnx":
        return "onnxruntime", "the model is an ONNX file"
    if on_gpu:
        if "triton" in backend_names() and _has("triton", precision):
            return "triton", "CUDA device found: the fused whole-generator Triton kernel is the fastest path there"
        return "compile", "CUDA device found, Triton unavailable: torch.compile is the next fastest"
    from gankit.backends.autoselect import choose_cpu_backend

    return choose_cpu_backend(model, model.sha256, precision)


def _auto_path(model: LoadedModel, backend: str, on_gpu: bool) -> tuple[str, str, str]:
    """(backend, precision, why) for ``--precision auto``."""
    if model.kind == "onnx":
        raise BackendError("--precision auto needs a generator checkpoint; an ONNX export has its precision fixed")
    if on_gpu:
        name = backend if backend != "auto" else _auto_backend(model, "fp32", on_gpu)[0]
        return name, "fp32", "on a GPU, --precision auto keeps fp32 (the low-precision choice is measured on CPUs)"
    from gankit.backends.autoselect import choose_cpu_path

    name, precision, why = choose_cpu_path(model, model.sha256)
    if backend not in ("auto", name):
        raise BackendError(f"--precision auto picks a backend too ({name} {precision}); use it with --backend auto")
    return name, precision, why


def open_backend(
    model: str | Path | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "auto",
    batch_size: int = 4096,
    compile_mode: str = "default",
    log: Callable[[str], None] = print,
    share: Callable[[Callable[[], Any]], Any] = _here,
    import_options: ImportOptions | None = None,
) -> Backend:
    """Build the backend for ``model`` (default: the bundled generator), resolving ``auto`` and saying why.

    ``share(compute)``: runs a measured choice; under torchrun, rank 0 computes it and every rank gets
    the same answer (``gankit.sampling.ranks.Ranks.share``), so ranks never calibrate on their own.
    ``import_options``: what a foreign file cannot say (``gankit.models.ImportOptions``; the seed's defaults).
    """
    path = model_path(model)
    if path.suffix in PACKAGE_BACKENDS:
        name = PACKAGE_BACKENDS[path.suffix]
        if backend not in ("auto", name) or precision not in ("auto", "fp32"):
            raise BackendError(f"{path} is an {name} export (fp32): it runs on --backend {name} or auto, in fp32")
        return _opened(create_backend(name, path, precision="fp32", device=device), ModelFile(path))
    gpu = functools.cache(lambda: on_gpu(device))
    if device not in ("auto", "cpu"):
        gpu()  # a device named: it must exist (DeviceError, one line) before anything is loaded
    if precision == "tf32" and not gpu():
        raise BackendError("--precision tf32 is a GPU mode (TF32 tensor cores); a CPU runs fp32: use --precision fp32")
    loaded = load(path, import_options, log)
    name = backend
    if precision == "auto":
        name, precision, why = share(lambda: _auto_path(loaded, backend, gpu()))
        log(f"precision auto -> {name} {precision} ({why})")
    if name == "auto":
        name, why = share(lambda: _auto_backend(loaded, precision, gpu()))
        log(f"backend auto -> {name} ({why})")
    if loaded.kind == "onnx" and name not in ONNX_BACKENDS:
        raise BackendError(
            f"{path} is an ONNX model: it runs on --backend {', '.join(ONNX_BACKENDS)} or auto, not {name!r}"
        )
    options: dict[str, Any] = {"device": device}
    if name == "compile":
        options.update(mode=compile_mode, batch_size=batch_size)
    return _opened(create_backend(name, loaded, precision=precision, **options), loaded)


def _opened(backend: Backend, source: ModelFile) -> Backend:
    backend.source = source
    return backend
