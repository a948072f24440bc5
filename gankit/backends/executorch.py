"""ExecuTorch with the XNNPACK delegate (``gankit.targets.executorch``), run through ``executorch.runtime``.

Accepts a path to a ``.pte`` written by ``gankit export --format executorch`` (its config comes from the
program's metadata methods), or a Generator, lowered once per machine and kept
(``gankit.targets.cached_artifact``). Batches above the program's bound (``MAX_BATCH``) are split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.backends.base import Backend, check_latent_batch
from gankit.errors import BackendError, ExportError
from gankit.model import Generator


class ExecuTorchBackend(Backend):
    name = "executorch"

    def __init__(self, model: str | Path | Generator, precision: str = "fp32", device: str = "auto") -> None:
        from gankit.targets import cached_artifact
        from gankit.targets.executorch import MAX_BATCH, SUFFIX, build_program, load_program

        if device not in ("auto", "cpu"):
            raise BackendError(f"backend 'executorch' runs on the CPU (XNNPACK), not on {device!r}")
        try:
            if isinstance(model, Generator):
                path = cached_artifact(model, "executorch", SUFFIX, lambda tmp: build_program(model, tmp, ""))
            else:
                path = Path(model)
            self.program = load_program(path)
        except ExportError as exc:
            raise BackendError(str(exc)) from exc
        self.path = self.program.path
        self.config = self.program.config
        self.device = torch.device("cpu")
        self.precision = precision
        self.max_batch = MAX_BATCH

    @torch.inference_mode()
    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_latent_batch(z, self.config.latent_dim, self.path.name)
        self.check_labels(labels, z.shape[0])
        pieces = z.split(self.max_batch)
        parts = labels.split(self.max_batch) if labels is not None else [None] * len(pieces)
        chunks = [self.program(piece, part) for piece, part in zip(pieces, parts)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def describe(self) -> str:
        return f"executorch ({self.precision}, XNNPACK, {self.path.name})"
