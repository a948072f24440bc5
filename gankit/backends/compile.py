"""torch.compile (inductor) as the framework's own fast path, CPU or GPU.

Modes: ``default``, ``max-autotune`` and ``reduce-overhead`` (CUDA graphs on a GPU). The compiled
function only ever sees one batch shape (the bucket): a smaller batch is padded up to it and a
larger one is split, so sampling never recompiles. ``warmup()`` compiles and reports the time apart.
"""

from __future__ import annotations

import copy
import time

import torch

from gankit.backends import REGISTRY
from gankit.backends.base import COMPILE_MODES, Backend
from gankit.device import TORCH_DTYPES, matmul_precision, resolve_device
from gankit.errors import BackendError
from gankit.model import Generator


class CompileBackend(Backend):
    name = "compile"
    precisions = REGISTRY["compile"].precisions

    def __init__(
        self,
        generator: Generator,
        precision: str = "fp32",
        device: str = "auto",
        mode: str = "default",
        batch_size: int = 4096,
    ) -> None:
        if mode not in COMPILE_MODES:
            raise BackendError(f"unknown torch.compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
        if batch_size <= 0:
            raise BackendError(f"batch size must be positive, got {batch_size}")
        self.config = generator.config
        self.device = resolve_device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        self.mode = mode
        self.bucket = batch_size
        self.model = copy.deepcopy(generator).to(self.device, self.dtype).eval()  # the caller's stays as it is
        # Each backend compiles its own copy of the model; dynamo counts those as recompiles of one
        # forward, and its default limit (8) is soon reached by a benchmark's many backends.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4096)
        self._compiled = torch.compile(self.model, mode=mode, dynamic=False, fullgraph=True)
        self.warmup_seconds: float | None = None

    def warmup(self) -> float:
        """Compile for the bucket shape (and run twice, as CUDA graphs record on a later call); seconds taken."""
        if self.warmup_seconds is None:
            begin = time.perf_counter()
            z = torch.zeros(self.bucket, self.config.latent_dim)
            labels = torch.zeros(self.bucket, dtype=torch.int64) if self.num_classes else None
            for _ in range(3):
                self.generate_float(z, labels, _warm=True)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.warmup_seconds = time.perf_counter() - begin
        return self.warmup_seconds

    @torch.inference_mode()
    def _run_bucket(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        count = z.shape[0]
        padded = torch.zeros(self.bucket, z.shape[1], device=self.device, dtype=self.dtype)
        padded[:count] = z.to(self.device, self.dtype)
        extra = ()
        if labels is not None:  # padding rows take label 0: any valid label, their images are dropped
            extra = (torch.zeros(self.bucket, device=self.device, dtype=torch.int64),)
            extra[0][:count] = labels.to(self.device)
        with matmul_precision(self.precision):
            images = self._compiled(padded, *extra)
        # CUDA-graph outputs are overwritten by the next replay: copy out what we keep.
        return images[:count].float() if self.mode != "reduce-overhead" else images[:count].float().clone()

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None, _warm: bool = False) -> torch.Tensor:
        self.check_labels(labels, z.shape[0])
        if not _warm:
            self.warmup()
        pieces = z.split(self.bucket)
        parts = labels.split(self.bucket) if labels is not None else [None] * len(pieces)
        chunks = [self._run_bucket(chunk, part) for chunk, part in zip(pieces, parts)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def describe(self) -> str:
        return f"compile/{self.mode} ({self.precision}, {self.device}, bucket {self.bucket})"
