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

import functools
from dataclasses import dataclass

import numpy as np
import torch

from gankit.data import load_bundled
from gankit.pixels import from_uint8
from gankit.quality import HALF
from gankit.quality.classifier import load_classifier

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


DISTANCE_BLOCK_BYTES = 64 << 20  # one block of a distance matrix: any number of samples in bounded memory


def _row_blocks(rows: int, columns: int) -> range:
    """Starts of row blocks of a (rows, columns) float64 distance matrix, each at most DISTANCE_BLOCK_BYTES."""
    return range(0, rows, max(1, DISTANCE_BLOCK_BYTES // (8 * max(columns, 1))))


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    step = _row_blocks(len(x), len(x)).step
    # +1: the point itself is at distance 0
    return torch.cat([torch.cdist(x[i : i + step], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), step)])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEAREST) -> tuple[float, float]:
    """The (fake, real) distances a block of fake rows at a time: memory bounded whatever the number of samples."""
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    real_radii, fake_radii = _knn_radii(r, k), _knn_radii(f, k)
    inside_real = torch.zeros(len(f), dtype=torch.bool)
    inside_fake = torch.zeros(len(r), dtype=torch.bool)
    blocks = _row_blocks(len(f), len(r))
    for i in blocks:
        cross = torch.cdist(f[i : i + blocks.step], r)  # (fake block, real)
        inside_real[i : i + blocks.step] = (cross <= real_radii[None, :]).any(1)
        inside_fake |= (cross <= fake_radii[i : i + blocks.step, None]).any(0)
    return inside_real.double().mean().item(), inside_fake.double().mean().item()


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


def label_fidelity(predicted: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> list[float]:
    """Per-class accuracy on generated digits: entry c is the share of samples generated with label c that
    the digit classifier reads as c (NaN for a label never asked for). predicted, labels: (N,) int."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    return [
        float((predicted[labels == c] == c).mean()) if (labels == c).any() else float("nan") for c in range(num_classes)
    ]


def class_mix_fid(shares: list[float], seed: int = 0, halves: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """MNIST-FID of real digits drawn with the given digit shares (10 numbers summing to 1) against the
    first real half: the part of a generator's FID that its digit mix alone explains.

    2,500 digits of the second half (250 of each) are drawn with replacement, round(share * 2500) of
    each digit (the rounding remainder to the largest share), so a perfect generator with this digit
    mix scores about this. ``halves``: the two halves' features (``features(real_halves()[i])[0]``),
    if already at hand; a draw of digits is a draw of their feature rows.
    """
    if halves is None:
        first, second = real_halves()
        halves = (features(first)[0], features(second)[0])
    second_labels = np.repeat(np.arange(10), HALF // 10)  # real_halves puts the second half in digit order
    counts = np.rint(np.asarray(shares) * HALF).astype(int)
    counts[int(np.argmax(shares))] += HALF - counts.sum()
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(np.flatnonzero(second_labels == d), size=counts[d], replace=True) for d in range(10)]
    )
    return frechet_distance(halves[0], halves[1][chosen])


@dataclass
class CopyCheck:
    """share: generated samples closer to their nearest training digit than the threshold; expected: that
    share for a generator that does not copy (the quantile); thresholds: the ``quantile`` of held-out real
    digits' nearest-training-digit distances (pixels, L2 on [-1, 1] images), one, or one per digit."""

    share: float
    expected: float
    thresholds: list[float]
    generated_median: float
    held_out_median: float


def _nearest_distances(queries: torch.Tensor, references: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """L2 distance of each query row to its nearest reference row; (Q, D), (R, D) float32 -> (Q,)."""
    nearest = []
    for start in range(0, len(queries), 1000):
        distances = torch.cdist(queries[start : start + 1000], references)
        if exclude_self:
            rows = torch.arange(distances.shape[0])
            distances[rows, rows + start] = float("inf")
        nearest.append(distances.min(1).values)
    return torch.cat(nearest)


def copying_share(
    generated: torch.Tensor,
    training: torch.Tensor,
    held_out: torch.Tensor | None = None,
    quantile: float = 0.05,
    labels: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    predicted: np.ndarray | None = None,
) -> CopyCheck:
    """Does a generator copy its training digits? Images (N, C, H, W) in [-1, 1] or uint8.

    Pixel space, not classifier features: a copy is a near-duplicate of a training image, while the
    classifier is trained to ignore style, so two different 7s sit close in its features. The reference
    is how close *real* digits that were not trained on come to their nearest training digit: the
    ``quantile`` of those distances is the threshold, so a generator that does not copy puts about
    ``quantile`` of its samples under it, and a copier many more. Without ``held_out`` the training
    digits stand in for held-out ones, each against all the others (leave-one-out): a real digit's
    distance to N - 1 training digits is distributed as a held-out digit's to N, up to that one.

    ``labels`` = (training labels (N,), held-out labels or None) makes the threshold per digit, each
    generated sample judged by its digit as the classifier reads it: nearest-neighbour distances differ
    by digit (1s sit far closer together than 8s), so a generator that over-makes 1s would otherwise
    look like a copier. ``predicted``: the classifier's digit of each generated sample (``features(generated)[1]``),
    if already at hand.
    """

    def flat(images: torch.Tensor) -> torch.Tensor:
        images = from_uint8(images) if images.dtype == torch.uint8 else images
        return images.flatten(1).float()

    train = flat(training)
    if held_out is None:
        reference = _nearest_distances(train, train, exclude_self=True)
    else:
        reference = _nearest_distances(flat(held_out), train)
    nearest = _nearest_distances(flat(generated), train)
    if labels is None:
        thresholds = [float(torch.quantile(reference.double(), quantile))]
        limit = torch.full_like(nearest, thresholds[0])
    else:
        reference_labels = labels[0] if held_out is None else labels[1]
        thresholds = [float(torch.quantile(reference[reference_labels == d].double(), quantile)) for d in range(10)]
        digits = torch.from_numpy(features(generated)[1] if predicted is None else np.asarray(predicted))
        limit = torch.tensor(thresholds, dtype=nearest.dtype)[digits]
    return CopyCheck(
        share=float((nearest < limit).double().mean()),
        expected=quantile,
        thresholds=thresholds,
        generated_median=float(nearest.median()),
        held_out_median=float(reference.median()),
    )


@functools.cache
def real_features() -> tuple[np.ndarray, np.ndarray]:
    """Features and predicted digits of the first real half (``real_halves()[0]``): what every generated set is
    scored against, made once a process."""
    return features(real_halves()[0])


def score(images: torch.Tensor) -> tuple[Quality, tuple[np.ndarray, np.ndarray]]:
    """The one sample-quality scorer of gankit eval, the training monitor, auto-select and the benchmarks:
    ``images`` (N, 1, 28, 28) (HALF seeded samples, to compare with the floor) against the first real half.
    Returns the Quality and the images' (features, predicted digits), for the measures that need them."""
    fake = features(images)
    return quality(real_features(), fake), fake
