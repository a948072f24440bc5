"""Discriminator regularisers: R1 (Mescheder et al. 2018) and LeCam (Tseng et al. 2021)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F

LECAM_DECAY = 0.99  # google/lecam-gan (stylegan2/lecam_loss.py): EMA 0.99, zero-debiased


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """E over D's outputs of ||grad_x D||^2: real_logits (N, 1) computed from real_inputs (B, ...), which
    must require grad. Returns a scalar that can itself be differentiated (create_graph).

    With packing (N = B / pack) each logit's gradient spans its pack's samples, so the sum of squares
    over all inputs divided by N is the mean squared gradient norm per D output.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.square().sum() / real_logits.numel()


class LeCam:
    """R = E[ReLU(D(x) - ema_fake)^2] + E[ReLU(ema_real - D(G(z)))^2], with EMAs of D's mean outputs.

    Each call first folds the batch's mean real and fake logits into the EMAs (decay 0.99, started at
    0 and zero-debiased: ema / (1 - 0.99^t) after t updates, as google/lecam-gan does), then returns R
    against the updated EMAs. The EMAs are state: ``state``/``load`` save and restore them exactly.
    """

    def __init__(self) -> None:
        self.real, self.fake, self.updates = 0.0, 0.0, 0

    def __call__(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """real_logits (N, 1), fake_logits (M, 1) -> scalar penalty (differentiable in both)."""
        self.real = LECAM_DECAY * self.real + (1 - LECAM_DECAY) * float(real_logits.detach().mean())
        self.fake = LECAM_DECAY * self.fake + (1 - LECAM_DECAY) * float(fake_logits.detach().mean())
        self.updates += 1
        ema_real, ema_fake = self.debiased
        return F.relu(real_logits - ema_fake).square().mean() + F.relu(ema_real - fake_logits).square().mean()

    @property
    def debiased(self) -> tuple[float, float]:
        """(EMA of D's mean real logit, EMA of D's mean fake logit), zero-debiased."""
        correction = 1 - LECAM_DECAY**self.updates
        return self.real / correction, self.fake / correction

    def state(self) -> dict[str, float | int]:
        return {"real": self.real, "fake": self.fake, "updates": self.updates}

    def load(self, state: Mapping[str, float | int]) -> None:
        self.real, self.fake, self.updates = float(state["real"]), float(state["fake"]), int(state["updates"])
