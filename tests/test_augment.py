"""Differentiable augmentation and adaptive p: gradients reach G, the background stays -1, p follows D."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.training.augment import ADA_IMAGES, ADA_INTERVAL, OPS, AdaptiveP, augment, check_augment, parse_augment


def _digits(batch: int = 16) -> torch.Tensor:
    """Random 'digits': background -1, a 10x10 block of ink values in (-1, 1] in the middle."""
    torch.manual_seed(0)
    images = torch.full((batch, 1, 28, 28), -1.0)
    images[:, :, 9:19, 9:19] = torch.rand(batch, 1, 10, 10) * 1.9 - 0.9
    return images


@pytest.mark.parametrize("op", list(OPS))
def test_gradient_reaches_the_generator_through_every_op(op: str) -> None:
    """A linear 'generator' -> augment (p = 1) -> a loss: its weight gets a non-zero, finite gradient."""
    torch.manual_seed(1)
    weight = torch.randn(8, 784, requires_grad=True)
    images = torch.tanh(torch.randn(16, 8) @ weight).view(16, 1, 28, 28)
    out = augment(images, check_augment({op: None}), 1.0, torch.Generator().manual_seed(2))
    out.square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_translate_moves_the_ink_by_whole_pixels_and_fills_with_background() -> None:
    images = _digits()
    out = augment(images, {"translate": 2.0}, 1.0, torch.Generator().manual_seed(3))
    moved = 0
    for before, after in zip(images[:, 0], out[:, 0]):
        # find the shift: the ink block's top-left corner moved by (dy, dx), |dy|, |dx| <= 2
        ink = (after > -1).nonzero()
        dy, dx = (ink.min(0).values - torch.tensor([9, 9])).tolist()
        assert abs(dy) <= 2 and abs(dx) <= 2
        expected = torch.full_like(before, -1.0)
        expected[9 + dy : 19 + dy, 9 + dx : 19 + dx] = before[9:19, 9:19]
        assert torch.equal(after, expected)  # exact: values moved, background shifted in is exactly -1
        moved += (dy, dx) != (0, 0)
    assert moved >= 12  # p = 1: 24 of the 25 shifts move the image


def test_translate_keeps_minus_one_where_it_shifts_in_at_the_border() -> None:
    """An image full of ink: shifted, the rows and columns that come in from outside are exactly -1."""
    images = torch.full((32, 1, 28, 28), 0.5)
    out = augment(images, {"translate": 3.0}, 1.0, torch.Generator().manual_seed(4))
    assert set(out.unique().tolist()) <= {-1.0, 0.5}
    background = (out == -1).flatten(1).sum(1)
    # a shift (dy, dx) brings in 28 * (|dy| + |dx|) - |dy| * |dx| background pixels: between 0 and 28 * 6 - 9
    assert background.max() <= 28 * 6 - 9 and (background > 0).sum() >= 28


def test_cutout_erases_a_square_to_background_and_nothing_else() -> None:
    images = torch.full((32, 1, 28, 28), 0.25)
    out = augment(images, {"cutout": 6.0}, 1.0, torch.Generator().manual_seed(5))
    assert set(out.unique().tolist()) <= {-1.0, 0.25}
    for image in out[:, 0]:
        erased = (image == -1).nonzero()
        rows, cols = erased[:, 0].unique(), erased[:, 1].unique()
        assert len(rows) <= 6 and len(cols) <= 6 and len(erased) == len(rows) * len(cols)  # one clipped square
    assert (out == -1).flatten(1).sum(1).max() == 36


def test_ink_fades_strokes_and_keeps_the_background() -> None:
    images = _digits()
    out = augment(images, {"ink": 0.5}, 1.0, torch.Generator().manual_seed(6))
    assert torch.equal(out[images == -1], images[images == -1])  # background exactly -1
    scale = (out + 1) / (images + 1)  # per image one factor in [0.5, 1]
    for s, mask in zip(scale, images > -1):
        values = s[mask]
        assert values.min() >= 0.5 - 1e-6 and values.max() <= 1 + 1e-6
        torch.testing.assert_close(values, values.mean().expand_as(values), rtol=0, atol=1e-5)


def test_p_zero_is_the_identity_and_p_sets_the_share_augmented() -> None:
    images = _digits(400)
    ops = {"translate": 1.0, "cutout": 8.0, "ink": 0.5}
    assert torch.equal(augment(images, ops, 0.0, torch.Generator().manual_seed(7)), images)
    out = augment(images, {"ink": 0.5}, 0.3, torch.Generator().manual_seed(7))
    changed = (out != images).flatten(1).any(1).double().mean().item()
    # Binomial(400, 0.3): sd = sqrt(0.3 * 0.7 / 400) = 0.023; 4 sd either side
    assert abs(changed - 0.3) < 4 * 0.023


def test_same_generator_state_same_augmentation() -> None:
    images = _digits()
    ops = check_augment({"translate": 2, "cutout": 4})
    a = augment(images, ops, 0.5, torch.Generator().manual_seed(8))
    b = augment(images, ops, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, images)


def test_adaptive_p_rises_when_d_overfits_a_tiny_set_and_falls_when_it_does_not() -> None:
    """Train a small D to tell 8 real digits from noise: it overfits (sign(D(real)) -> +1), so p must rise;
    on logits of mixed sign (r_t = 0 < 0.6) p must fall back to 0."""
    torch.manual_seed(9)
    real = _digits(8)
    nn = torch.nn
    d = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-3)
    ada = AdaptiveP(0.0, target=0.6)
    rng = torch.Generator().manual_seed(10)
    history = []
    for _ in range(200):
        real_logits = d(augment(real, {"translate": 1.0}, ada.p, rng))
        fake_logits = d(torch.rand(8, 1, 28, 28) * 2 - 1)
        loss = torch.nn.functional.softplus(-real_logits).mean() + torch.nn.functional.softplus(fake_logits).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ada.observe(real_logits, len(real))
        history.append(ada.p)
    # once D calls every real image real, each interval adds 8 * 4 / ADA_IMAGES
    assert history[-1] > history[len(history) // 2] > 0
    assert history[-1] == pytest.approx(len(history) // ADA_INTERVAL * 8 * ADA_INTERVAL / ADA_IMAGES, rel=0.2)
    mixed = torch.tensor([[1.0], [-1.0]] * 4)
    p = ada.p
    for _ in range(ADA_INTERVAL):
        ada.observe(mixed, 8)
    assert ada.p == pytest.approx(p - 8 * ADA_INTERVAL / ADA_IMAGES)


def test_adaptive_p_is_clipped_and_a_fixed_p_never_moves() -> None:
    high = AdaptiveP(1.0, target=0.6)
    for _ in range(ADA_INTERVAL):
        high.observe(torch.ones(64, 1), 64)
    assert high.p == 1.0
    fixed = AdaptiveP(0.3, target=0.0)
    for _ in range(5 * ADA_INTERVAL):
        fixed.observe(torch.ones(64, 1), 64)
    assert fixed.p == 0.3


def test_adaptive_p_state_round_trip_continues_identically() -> None:
    logits = [torch.randn(16, 1, generator=torch.Generator().manual_seed(i)) + 0.5 for i in range(11)]
    straight = AdaptiveP(0.1, target=0.2)
    for x in logits:
        straight.observe(x, 16)
    first = AdaptiveP(0.1, target=0.2)
    for x in logits[:6]:  # stop in the middle of an interval: the partial sums are state too
        first.observe(x, 16)
    second = AdaptiveP(0.1, target=0.2)
    second.load(first.state())
    for x in logits[6:]:
        second.observe(x, 16)
    assert second.state() == straight.state()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"rotate": None}, "unknown augmentation 'rotate'"),
        ({"translate": 1.5}, "translate=1.5"),
        ({"translate": 0}, "translate=0"),
        ({"cutout": 40}, "cutout=40"),
        ({"ink": 0}, "ink=0"),
        ({"ink": "a lot"}, "ink='a lot'"),
    ],
)
def test_bad_augmentations_raise_config_error(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_augment(spec)


def test_parse_augment_fills_defaults() -> None:
    assert parse_augment("translate=2, cutout,ink=0.25") == {"translate": 2.0, "cutout": 8.0, "ink": 0.25}
    assert parse_augment("") == {}
    with pytest.raises(ConfigError, match="must be a number"):
        parse_augment("translate=two")
