"""Sample quality during training: gankit.quality.metrics' MNIST-FID, digit coverage and precision/recall.

The samples are fixed: indices 0 .. n-1 of noise seed 0 (``gankit.noise``), and for a conditional
generator label i % num_classes for sample i (balanced). With n = 2,500 (the default) they are the
samples ``gankit eval`` scores, so the logged FID is the number ``gankit eval`` reports for that
epoch's generator (up to float rounding of the batch split); fewer samples bias the FID upwards.
Nothing here draws from the training RNG, so measuring does not change the run.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
import torch

from gankit.config import GeneratorConfig
from gankit.errors import ConfigError
from gankit.model import Generator
from gankit.noise import noise
from gankit.quality.metrics import label_fidelity, score

EVAL_SEED = 0
CHUNK = 1000


@dataclass(frozen=True)
class EpochQuality:
    """One measurement: ``label_fidelity`` is the mean per-class accuracy (NaN when unconditional)."""

    epoch: int
    fid: float
    min_share: float
    precision: float
    recall: float
    label_fidelity: float

    def as_row(self) -> tuple[float, ...]:
        return astuple(self)


class QualityMonitor:
    """Scores a generator's fixed samples against the first half of the bundled real digits."""

    def __init__(self, config: GeneratorConfig, samples: int, device: torch.device) -> None:
        if tuple(config.image_shape) != (1, 28, 28):
            raise ConfigError(
                f"quality during training is MNIST-FID, for 1x28x28 digits; this data is {config.image_shape}"
            )
        self.z = noise(EVAL_SEED, 0, samples, config.latent_dim).to(device)
        self.num_classes = config.num_classes
        self.labels = torch.arange(samples, device=device) % config.num_classes if config.num_classes else None

    def measure(self, generator: Generator, epoch: int) -> EpochQuality:
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = torch.cat(
                [
                    generator(self.z[s : s + CHUNK], None if self.labels is None else self.labels[s : s + CHUNK]).cpu()
                    for s in range(0, len(self.z), CHUNK)
                ]
            )
        generator.train(was_training)
        scores, fake = score(images)
        fidelity = float("nan")
        if self.labels is not None:
            fidelity = float(np.nanmean(label_fidelity(fake[1], self.labels.cpu().numpy(), self.num_classes)))
        return EpochQuality(epoch, scores.fid, scores.min_share, scores.precision, scores.recall, fidelity)
