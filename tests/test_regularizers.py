"""R1 and LeCam against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.config import DiscriminatorConfig
from gankit.model import Discriminator
from gankit.training.regularizers import LECAM_DECAY, LeCam, r1_penalty


def _tiny_discriminator(pack: int = 1) -> Discriminator:
    """D on 1x1x3 images with one hidden layer of 2: small enough to differentiate by hand."""
    d = Discriminator(DiscriminatorConfig(hidden=(2,), image_shape=(1, 1, 3), slope=0.2, pack=pack))
    with torch.no_grad():
        d.layers[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5] * pack, [0.3, 0.4, -1.0] * pack]))
        d.layers[0].bias.copy_(torch.tensor([0.1, -0.2]))
        d.layers[1].weight.copy_(torch.tensor([[2.0, -3.0]]))
        d.layers[1].bias.copy_(torch.tensor([0.7]))
    return d


def _hand_gradient(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d/dx of w2 . leaky_relu(w1 x + b1, 0.2): w1^T (w2 * slope'), slope' = 1 where the pre-activation > 0."""
    pre = w1 @ x + b1
    return w1.T @ (w2 * np.where(pre > 0, 1.0, 0.2))


def test_r1_equals_the_hand_computed_mean_squared_gradient_norm() -> None:
    d = _tiny_discriminator()
    x = torch.tensor([[[[1.0, 0.5, -1.0]]], [[[-0.5, 0.2, 0.3]]]], requires_grad=True)  # (2, 1, 1, 3)
    penalty = r1_penalty(d(x), x)
    w1 = np.array([[1.0, -2.0, 0.5], [0.3, 0.4, -1.0]])
    b1, w2 = np.array([0.1, -0.2]), np.array([2.0, -3.0])
    # sample 0: pre = (-0.4, 0.8) -> slopes (0.2, 1); sample 1: pre = (-0.8, -0.67) -> slopes (0.2, 0.2)
    grads = [_hand_gradient(w1, b1, w2, row) for row in x.detach().reshape(2, 3).double().numpy()]
    expected = np.mean([g @ g for g in grads])
    assert penalty.item() == pytest.approx(expected, rel=1e-6)  # float32 sums of a few terms
    penalty.backward()  # create_graph: the penalty itself trains D
    assert d.layers[0].weight.grad is not None and d.layers[0].weight.grad.abs().sum() > 0


def test_r1_with_packing_is_per_d_output() -> None:
    """Two samples packed into one D input: one logit, whose gradient covers both samples' pixels."""
    d = _tiny_discriminator(pack=2)
    x = torch.tensor([[[[1.0, 0.5, -1.0]]], [[[-0.5, 0.2, 0.3]]]], requires_grad=True)
    logits = d(x)
    assert logits.shape == (1, 1)
    w1 = np.array([[1.0, -2.0, 0.5] * 2, [0.3, 0.4, -1.0] * 2])
    g = _hand_gradient(w1, np.array([0.1, -0.2]), np.array([2.0, -3.0]), x.detach().reshape(6).double().numpy())
    assert r1_penalty(logits, x).item() == pytest.approx(g @ g, rel=1e-6)


def test_lecam_against_a_hand_computation() -> None:
    lecam = LeCam()
    real1, fake1 = torch.tensor([[1.0], [3.0]]), torch.tensor([[-2.0], [0.0]])
    # after one update the zero-debiased EMAs are the batch means: ema_real 2, ema_fake -1
    r = lecam(real1, fake1)
    assert lecam.debiased == pytest.approx((2.0, -1.0))
    # relu(real - (-1))^2 = 4, 16 -> mean 10; relu(2 - fake)^2 = 16, 4 -> mean 10
    assert r.item() == pytest.approx(20.0)

    real2, fake2 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [4.0]])
    r = lecam(real2, fake2)
    d = LECAM_DECAY
    ema_real = ((1 - d) * d * 2.0 + (1 - d) * 0.5) / (1 - d**2)
    ema_fake = ((1 - d) * d * -1.0 + (1 - d) * 2.5) / (1 - d**2)
    assert lecam.debiased == pytest.approx((ema_real, ema_fake))
    expected = np.mean(np.maximum(np.array([0.0, 1.0]) - ema_fake, 0) ** 2) + np.mean(
        np.maximum(ema_real - np.array([1.0, 4.0]), 0) ** 2
    )
    assert r.item() == pytest.approx(expected, rel=1e-6)


def test_lecam_gradient_and_state_round_trip() -> None:
    real = torch.tensor([[1.0], [3.0]], requires_grad=True)
    fake = torch.tensor([[-2.0], [0.0]], requires_grad=True)
    lecam = LeCam()
    lecam(real, fake).backward()
    # d/d real_i of mean(relu(real - ema_fake)^2) = 2 (real_i - ema_fake) / 2, with ema_fake = -1
    torch.testing.assert_close(real.grad, torch.tensor([[2.0], [4.0]]))
    torch.testing.assert_close(fake.grad, torch.tensor([[-4.0], [-2.0]]))
    again = LeCam()
    again.load(lecam.state())
    a, b = lecam(torch.ones(3, 1), -torch.ones(3, 1)), again(torch.ones(3, 1), -torch.ones(3, 1))
    assert a.item() == b.item() and lecam.state() == again.state()
