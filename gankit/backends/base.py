"""The one small interface every sampling backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from gankit.config import GeneratorConfig, OnnxGeneratorConfig
from gankit.errors import BackendError, NonFiniteError
from gankit.labels import LabelSpec, check_labels, num_classes_of, resolve
from gankit.noise import noise
from gankit.pixels import check_finite, to_uint8

if TYPE_CHECKING:  # the runtime backends (onnxruntime, OpenVINO) build and run without torch
    import torch

    from gankit.models import ModelFile

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")
COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")  # torch.compile's, for the compile backend


def check_latent_batch(z: object, latent_dim: int, model_name: str) -> None:
    """BackendError unless ``z`` (a tensor or an array) is (batch, latent_dim) float32."""
    shape, dtype = tuple(z.shape), str(z.dtype).replace("torch.", "")
    if len(shape) != 2 or shape[1] != latent_dim or dtype != "float32":
        wanted = f"[batch, {latent_dim}] float32"
        raise BackendError(f"{model_name} takes z of shape {wanted}; got {list(shape)} {dtype}")


class Backend(ABC):
    """Maps latent vectors (or a seed and an index range) to images.

    Subclasses set ``name`` and ``precisions``, build their runtime in ``__init__`` and implement
    ``generate_float``. ``config`` describes the generator (an ONNX graph made elsewhere: what its graph
    says, ``OnnxGeneratorConfig``); ``device`` is where outputs land.

    A class-conditional generator (``config.num_classes`` = K > 0) takes ``labels`` beside z: an int64 (B,)
    tensor in [0, K) for ``generate``/``generate_float``, a ``gankit.labels.LabelSpec`` for the seeded calls
    (None: balanced), which gives sample i its label as a function of (seed, i). An unconditional one takes none.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    # Takes a ``gankit.models.LoadedModel`` as it is (a runtime backend: a cached export needs no Generator);
    # the others are given its Generator (``gankit.backends.create_backend``).
    takes_loaded: ClassVar[bool] = False

    config: GeneratorConfig | OnnxGeneratorConfig
    device: torch.device
    precision: str
    # The model file it runs, as ``gankit.backends.resolve.open_backend`` read it (None when built directly): what
    # a job records and keys its measurements by, hashed once (``ModelFile.sha256``).
    source: ModelFile | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run here, else one line saying why not and what to do (by default: the
        package ``gankit.backends.REGISTRY`` says it needs)."""
        from gankit.backends import REGISTRY

        return REGISTRY[cls.name].missing()

    @property
    def num_classes(self) -> int:
        """K for a class-conditional generator, 0 for an unconditional one."""
        return num_classes_of(self.config)

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        """LabelError unless ``labels`` fit this generator: (batch,) int64 in [0, K) when conditional, else None."""
        check_labels(labels, batch, self.num_classes, f"backend {self.name!r}")

    def seeded_labels(self, spec: LabelSpec | None, seed: int, start: int, count: int) -> torch.Tensor | None:
        """The labels (count,) int64 of samples start .. start+count-1 of ``seed`` under the resolved ``spec``
        (``gankit.labels.resolve``: None for an unconditional generator), on ``noise_device``."""
        return None if spec is None else spec.labels(seed, start, count, self.num_classes).to(self.noise_device)

    @abstractmethod
    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, latent_dim) float32 [, labels (B,) int64] -> images (B, C, H, W) float32 in [-1, 1] on
        ``self.device``."""

    def generate(self, z: torch.Tensor, output: str = "float", labels: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, latent_dim) float32 [, labels (B,) int64] -> (B, C, H, W) float32 in [-1, 1], or uint8 when
        output='uint8'."""
        images = self.generate_float(z, labels)
        check_finite(images)
        return to_uint8(images) if output == "uint8" else images

    def generate_seeded(
        self, seed: int, start: int, count: int, output: str = "float", labels: LabelSpec | None = None
    ) -> torch.Tensor:
        """Images of samples start .. start+count-1 of ``seed`` (noise from ``gankit.noise``; labels from the
        spec ``labels``, None: balanced for a conditional generator)."""
        return self.generate_resolved(seed, start, count, output, resolve(labels, self.num_classes))

    def generate_resolved(
        self, seed: int, start: int, count: int, output: str, labels: LabelSpec | None
    ) -> torch.Tensor:
        """``generate_seeded`` with ``labels`` resolved already (``gankit.labels.resolve``, once a job): what a lane
        calls for each batch."""
        z = noise(seed, start, count, self.config.latent_dim, device=self.noise_device)
        try:
            return self.generate(z, output=output, labels=self.seeded_labels(labels, seed, start, count))
        except NonFiniteError as exc:  # named by its index in the seed's range, not in the batch
            raise NonFiniteError(start + exc.index) from None

    def generate_range(
        self,
        seed: int,
        start: int,
        count: int,
        batch_size: int = 4096,
        output: str = "float",
        labels: LabelSpec | None = None,
    ) -> torch.Tensor:
        """Samples start .. start+count-1 of ``seed``, ``batch_size`` at a time, gathered on the CPU.

        Returns (count, C, H, W) float32 in [-1, 1], or uint8 when output='uint8'."""
        if batch_size <= 0:
            raise BackendError(f"batch size must be positive, got {batch_size}")
        labels = resolve(labels, self.num_classes)
        chunks = [
            self.generate_resolved(seed, first, min(batch_size, start + count - first), output, labels).cpu()
            for first in range(start, start + count, batch_size)
        ]
        import torch

        if not chunks:
            dtype = torch.uint8 if output == "uint8" else torch.float32
            return torch.empty((0, *self.config.image_shape), dtype=dtype)
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    @property
    def noise_device(self) -> torch.device:
        return self.device

    @property
    def device_type(self) -> str:
        """ "cpu" or "cuda": where the outputs land (without building a torch device)."""
        return self.device.type

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.device})"
