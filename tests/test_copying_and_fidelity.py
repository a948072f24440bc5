"""Label fidelity, class-mix reference FID and the copying check (gankit.quality.metrics), on real digits
with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.data import load_bundled
from gankit.quality.metrics import class_mix_fid, copying_share, features, label_fidelity, quality, real_halves


def test_label_fidelity_by_hand() -> None:
    predicted = np.array([0, 0, 1, 2, 2, 2])
    labels = np.array([0, 1, 1, 2, 2, 0])
    per_class = label_fidelity(predicted, labels)
    assert per_class[:3] == [0.5, 0.5, 1.0] and all(math.isnan(v) for v in per_class[3:])


def test_label_fidelity_of_real_digits_is_the_classifiers_accuracy() -> None:
    _, second = real_halves()  # 250 of each digit, in digit order
    _, predicted = features(second)
    per_class = label_fidelity(predicted, np.repeat(np.arange(10), 250))
    assert len(per_class) == 10 and min(per_class) > 0.85 and np.mean(per_class) > 0.95


def test_class_mix_fid_grows_with_the_imbalance() -> None:
    first, second = real_halves()
    real, other = features(first), features(second)
    floor = quality(real, other).fid
    halves = (real[0], other[0])
    balanced = class_mix_fid([0.1] * 10, halves=halves)
    skewed = class_mix_fid([0.01, 0.26, 0.05, 0.11, 0.09, 0.08, 0.03, 0.15, 0.04, 0.18], halves=halves)
    one_digit = class_mix_fid([0, 1] + [0] * 8, halves=halves)
    # balanced: the second half drawn with replacement, so a little above the floor (duplicates)
    assert floor < balanced < 2 * floor
    assert 20 * floor < skewed < one_digit
    assert class_mix_fid([0.1] * 10, seed=1, halves=halves) != balanced  # the draw depends on the seed
    assert class_mix_fid([0.1] * 10) == balanced  # the halves' features computed inside: the same


def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training 2,000, held-out 500, 'generated' 500) real digits, disjoint, every digit equally (the
    bundled file is sorted by digit, so slices of it are not); each in digit order."""
    images, labels = load_bundled()
    by_digit = [(labels == d).nonzero().flatten() for d in range(10)]
    pick = lambda a, b: images[torch.cat([i[a:b] for i in by_digit])]  # noqa: E731
    return pick(0, 200), pick(200, 250), pick(250, 300)


def _digits(count_each: int) -> torch.Tensor:
    return torch.arange(10).repeat_interleave(count_each)


def test_a_generator_that_copies_is_caught() -> None:
    training, held_out, _ = _split()
    copies = training[torch.randperm(2000, generator=torch.Generator().manual_seed(0))[:500]]
    for generated in (copies, (copies.float() / 127.5 - 1 + 0.02 * torch.randn(copies.shape)).clamp(-1, 1)):
        check = copying_share(generated, training, held_out)
        assert check.share == 1.0 and check.generated_median < 0.2 * check.held_out_median


@pytest.mark.parametrize("per_digit", [False, True])
@pytest.mark.parametrize("with_held_out", [True, False])
def test_new_real_digits_score_about_the_quantile(with_held_out: bool, per_digit: bool) -> None:
    """Digits that were never trained on are what a non-copying generator makes: share ~ the quantile.
    Sampling error: the share of 500 is Binomial(500, 0.05), sd 0.0097; the threshold is itself a 5 %
    quantile of 500 held-out (or 2,000 leave-one-out) distances, adding at most another 0.0097: 3 sd of
    the sum is 0.041."""
    training, held_out, generated = _split()
    labels = (_digits(200), _digits(50)) if per_digit else None
    check = copying_share(generated, training, held_out if with_held_out else None, labels=labels)
    assert check.expected == 0.05 and abs(check.share - 0.05) < 0.041
    assert len(check.thresholds) == (10 if per_digit else 1)
    assert 0.8 < check.generated_median / check.held_out_median < 1.25


def test_per_digit_thresholds_do_not_mistake_a_digit_mix_for_copying() -> None:
    """'Generated' = new real 1s only: 1s lie close to their neighbours, so one threshold for all digits
    calls many of them copies; per-digit thresholds judge them as 1s and find about the quantile.
    The 500 ones of the bundled digits: 200 train, 50 held out, 250 'generated' (Binomial(250, 0.05):
    sd 0.014; with the threshold's own error, 3 sd < 0.06)."""
    training, held_out, _ = _split()
    images, labels = load_bundled()
    ones = images[(labels == 1).nonzero().flatten()[250:500]]
    pooled = copying_share(ones, training, held_out)
    per_digit = copying_share(ones, training, held_out, labels=(_digits(200), _digits(50)))
    assert pooled.share > 0.3 and abs(per_digit.share - 0.05) < 0.06
    assert per_digit.thresholds[1] < per_digit.thresholds[8]
