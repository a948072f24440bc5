"""Sampling backends, picked by name. Adding one touches its own file and ``_MODULES`` here."""

from __future__ import annotations

import importlib

from gankit.backends.base import PRECISIONS, Backend
from gankit.errors import BackendError

_MODULES = {
    "eager": ("gankit.backends.eager", "EagerBackend"),
    "compile": ("gankit.backends.compile", "CompileBackend"),
    "onnxruntime": ("gankit.backends.onnxruntime", "OnnxRuntimeBackend"),
    "triton": ("gankit.backends.triton", "TritonBackend"),
    "openvino": ("gankit.backends.openvino", "OpenVinoBackend"),
    "aoti": ("gankit.backends.aoti", "AotiBackend"),
    "executorch": ("gankit.backends.executorch", "ExecuTorchBackend"),
}


def backend_names() -> list[str]:
    return list(_MODULES)


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; BackendError names the choices when it is unknown."""
    if name not in _MODULES:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(_MODULES)}")
    module_name, class_name = _MODULES[name]
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(name: str, model: object, precision: str = "fp32", **options: object) -> Backend:
    """Build backend ``name`` for ``model``: a Generator, a ``gankit.models.LoadedModel`` (a backend that does not
    take it as it is gets its Generator), or a path the backend accepts."""
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        raise BackendError(f"backend {name!r} is not available here: {reason}")
    if precision not in cls.precisions:
        raise BackendError(f"backend {name!r} supports precisions {', '.join(cls.precisions)}, not {precision!r}")
    from gankit.models import LoadedModel

    if isinstance(model, LoadedModel) and not cls.takes_loaded:
        model = model.generator()
    return cls(model, precision=precision, **options)


__all__ = ["PRECISIONS", "Backend", "backend_class", "backend_names", "create_backend"]
