"""AOTInductor: the generator as a compiled ``.pt2`` package (``gankit.targets.aoti``), run from Python.

Accepts a path to a package written by ``gankit export --format aoti`` (its config and device come from the
package metadata), or a Generator, compiled once per machine for the asked device and kept
(``gankit.targets.cached_artifact``; compiling is a C++ build of a minute or less).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.backends.base import Backend, check_latent_batch
from gankit.device import resolve_device
from gankit.errors import BackendError, ExportError
from gankit.model import Generator


class AotiBackend(Backend):
    name = "aoti"

    def __init__(self, model: str | Path | Generator, precision: str = "fp32", device: str = "auto") -> None:
        from gankit.targets import cached_artifact
        from gankit.targets.aoti import SUFFIX, build_package, load_package

        try:
            if isinstance(model, Generator):
                target = resolve_device(device).type
                path = cached_artifact(
                    model, "aoti", SUFFIX, lambda tmp: build_package(model, tmp, "", target), device=target
                )
            else:
                path = Path(model)
            self.package = load_package(path)
        except ExportError as exc:
            raise BackendError(str(exc)) from exc
        self.path = self.package.path
        self.config = self.package.config
        self.device = self.package.device
        self.precision = precision

    @torch.inference_mode()
    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_latent_batch(z, self.config.latent_dim, self.path.name)
        self.check_labels(labels, z.shape[0])
        return self.package(z, labels)

    def describe(self) -> str:
        return f"aoti ({self.precision}, {self.device}, {self.path.name})"
