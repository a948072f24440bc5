"""Sample quality, offline: MNIST-FID, digit coverage, and k-NN precision/recall.

- **MNIST-FID**: the Fréchet distance between Gaussians fitted to real and generated features in
  the 128-d feature space of gankit's digit classifier (``gankit.quality.classifier``), not Inception's: the
  numbers are comparable with each other, not with published FIDs.
- **Floor**: the same distance between two disjoint halves of the real digits (2,500 each, 250 of
  each digit): what a perfect generator would score at this sample size. Generated sets have the same
  size (2,500) and are compared with the first half.
- **Coverage**: the share of generated samples the classifier assigns to each digit (a perfect
  generator: 10% each).
- **Precision / recall** (Kynkäänniemi et al. 2019): the share of generated samples inside the k-NN
  balls (k = 3) of the real features, and of real samples inside those of the generated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gankit.data import load_bundled
from gankit.pixels import from_uint8
from gankit.quality.classifier import load_classifier

HALF = 2500
K_NEAREST = 3


@dataclass
class Quality:
    fid: float
    coverage: list[float]
    precision: float
    recall: float

    @property
    def min_share(self) -> float:
        return min(self.coverage)


def features(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """images (N, 1, 28, 28) float in [-1, 1] or uint8 -> (features (N, 128) float64, predicted digits (N,))."""
    model, _ = load_classifier()
    if images.dtype == torch.uint8:
        images = from_uint8(images)
    with torch.no_grad():
        outputs = [model(chunk.float()) for chunk in images.split(1000)]
    feats = torch.cat([f for f, _ in outputs]).double().numpy()
    return feats, torch.cat([logits.argmax(1) for _, logits in outputs]).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D), in float64."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(cov_a cov_b) = tr sqrt(S cov_b S) with S = cov_a^(1/2): a symmetric PSD matrix, so eigh is exact.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    distances = torch.cdist(x, x)
    return distances.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEAREST) -> tuple[float, float]:
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    real_radii, fake_radii = _knn_radii(r, k), _knn_radii(f, k)
    cross = torch.cdist(f, r)  # (fake, real)
    precision = (cross <= real_radii[None, :]).any(1).double().mean().item()
    recall = (cross.T <= fake_radii[None, :]).any(1).double().mean().item()
    return precision, recall


def quality(real: tuple[np.ndarray, np.ndarray], fake: tuple[np.ndarray, np.ndarray]) -> Quality:
    """Quality of ``fake`` against ``real``; each a (features, predicted digits) pair."""
    coverage = (np.bincount(fake[1], minlength=10) / len(fake[1])).tolist()
    precision, recall = precision_recall(real[0], fake[0])
    return Quality(frechet_distance(real[0], fake[0]), coverage, precision, recall)


def real_halves() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled digits split into two disjoint halves of 2,500 (250 of each digit in each)."""
    images, labels = load_bundled()
    first, second = [], []
    for digit in range(10):
        index = (labels == digit).nonzero().flatten()
        first.append(index[::2])
        second.append(index[1::2])
    return images[torch.cat(first)], images[torch.cat(second)]
