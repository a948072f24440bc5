"""Sampling backends, picked by name. Adding one touches its own file and ``REGISTRY`` here.

``REGISTRY`` is plain data: where each backend's class lives, the precisions it runs and the package it needs.
Choosing among backends (``--backend auto``, ``--precision auto``) reads it without importing a backend, so a
choice already measured and cached costs no torch import; ``backend_class`` imports the one that is built.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from gankit.backends.base import PRECISIONS, Backend
from gankit.errors import BackendError


@dataclass(frozen=True)
class Registered:
    """A backend as data: ``module``.``cls`` is its class; ``precisions`` what it runs; ``requires`` the package it
    cannot run without (checked with ``importlib.util.find_spec``, nothing imported) and ``install`` how to get it."""

    module: str
    cls: str
    precisions: tuple[str, ...]
    requires: str | None = None
    install: str = ""

    def missing(self) -> str | None:
        """One line when ``requires`` is not installed, else None (other conditions: the class's
        ``unavailable_reason``)."""
        if self.requires is not None and importlib.util.find_spec(self.requires) is None:
            return self.install
        return None


TORCH_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
REGISTRY = {
    "eager": Registered("gankit.backends.eager", "EagerBackend", TORCH_PRECISIONS),
    "compile": Registered("gankit.backends.compile", "CompileBackend", TORCH_PRECISIONS),
    "onnxruntime": Registered("gankit.backends.onnxruntime", "OnnxRuntimeBackend", ("fp32", "fp16", "int8")),
    "triton": Registered(
        "gankit.backends.triton",
        "TritonBackend",
        TORCH_PRECISIONS,
        "triton",
        "Triton is not installed (pip install triton)",
    ),
    "openvino": Registered(
        "gankit.backends.openvino",
        "OpenVinoBackend",
        ("fp32", "bf16"),
        "openvino",
        "OpenVINO is not installed (pip install 'gankit[openvino]' or pip install openvino)",
    ),
    "aoti": Registered("gankit.backends.aoti", "AotiBackend", ("fp32",)),
    "executorch": Registered(
        "gankit.backends.executorch",
        "ExecuTorchBackend",
        ("fp32",),
        "executorch",
        "executorch is not installed (pip install 'gankit[executorch]')",
    ),
}


def backend_names() -> list[str]:
    return list(REGISTRY)


def registered(name: str) -> Registered:
    """What ``REGISTRY`` says of ``name``; BackendError names the choices when it is unknown."""
    if name not in REGISTRY:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name`` (imported now); BackendError names the choices when it is unknown."""
    entry = registered(name)
    return getattr(importlib.import_module(entry.module), entry.cls)


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


__all__ = ["PRECISIONS", "REGISTRY", "Backend", "backend_class", "backend_names", "create_backend", "registered"]
