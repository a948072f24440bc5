"""Differentiable augmentation for an MLP discriminator, and the adaptive probability that drives it.

D sees every image, real and fake, through ``augment`` in both the D and the G step (DiffAugment, Zhao
et al. 2020), so G's gradient flows through the augmentation and G is not pushed to make augmented
digits. An MLP D is not translation-equivariant (the conv recipes' translation of 1/8 of the side at
p = 1 collapsed training here), so the ops are small and keep the background: every pixel an op moves
in or erases is exactly -1, the background of images in [-1, 1].

- ``translate=m``: shift by a whole number of pixels in [-m, m] along each axis (fill -1).
- ``cutout=m``: set an m x m square to -1 (its centre anywhere on the image; clipped at the edges).
- ``ink=m``: fade the strokes: x -> (x + 1) * s - 1 with s uniform in [1 - m, 1] (the background stays -1).

Each op is applied to each sample independently with probability p. ``AdaptiveP`` moves p as
StyleGAN2-ADA does (Karras et al. 2020): every ``ADA_INTERVAL`` D steps, r_t = E[sign(D(real))] over
those steps, and p += sign(r_t - target) * (images seen in them) / ``ADA_IMAGES``, clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from gankit.config import AUGMENT_OPS, check_augment, parse_augment

__all__ = ["OPS", "AdaptiveP", "augment", "check_augment", "parse_augment"]

ADA_INTERVAL = 4
# StyleGAN2-ADA lets p move by 1 in 500k images over runs of ~25M; runs here see ~1M images in all
# (5,000 digits x 200 epochs), so 100k lets p settle in the first tenth of a run.
ADA_IMAGES = 100_000
BACKGROUND = -1.0


def _translate(x: torch.Tensor, magnitude: float, apply: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    m = int(magnitude)
    batch, channels, height, width = x.shape
    shift = (torch.randint(-m, m + 1, (2, batch), generator=rng) * apply).to(x.device)
    padded = torch.nn.functional.pad(x, (m, m, m, m), value=BACKGROUND).flatten(2)  # (B, C, (H+2m)(W+2m))
    rows = (torch.arange(height, device=x.device) + m)[None, :] - shift[0][:, None]  # (B, H)
    cols = (torch.arange(width, device=x.device) + m)[None, :] - shift[1][:, None]  # (B, W)
    source = (rows[:, :, None] * (width + 2 * m) + cols[:, None, :]).flatten(1)  # (B, H*W)
    # gather, not advanced indexing: its backward is a scatter-add, ~10x faster here than index_put's
    moved = padded.gather(2, source[:, None, :].expand(batch, channels, height * width))
    return moved.view_as(x)


def _cutout(x: torch.Tensor, magnitude: float, apply: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    m = int(magnitude)
    batch, _, height, width = x.shape
    centre_y = torch.randint(0, height, (batch,), generator=rng)
    centre_x = torch.randint(0, width, (batch,), generator=rng)
    top, left = centre_y - m // 2, centre_x - m // 2
    rows, cols = torch.arange(height), torch.arange(width)
    inside_y = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + m)  # (B, H)
    inside_x = (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + m)  # (B, W)
    erase = (inside_y[:, :, None] & inside_x[:, None, :] & apply[:, None, None])[:, None].to(x.device)
    return torch.where(erase, torch.full_like(x, BACKGROUND), x)


def _ink(x: torch.Tensor, magnitude: float, apply: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    scale = 1.0 - magnitude * torch.rand(x.shape[0], generator=rng)
    scale = scale.to(x.device, x.dtype)[:, None, None, None]
    faded = (x + 1.0) * scale - 1.0
    return torch.where(apply.to(x.device)[:, None, None, None], faded, x)


AugmentOp = Callable[[torch.Tensor, float, torch.Tensor, torch.Generator], torch.Tensor]
_FUNCTIONS: dict[str, AugmentOp] = {"translate": _translate, "cutout": _cutout, "ink": _ink}
# name -> (op, default magnitude, check of a magnitude, what the magnitude means); the spec part lives in
# gankit.config (AUGMENT_OPS), which checks a TrainConfig's augmentations without importing torch code.
OPS: dict[str, tuple[AugmentOp, float, Callable[[float], bool], str]] = {
    name: (_FUNCTIONS[name], *spec) for name, spec in AUGMENT_OPS.items()
}


def augment(x: torch.Tensor, ops: Mapping[str, float], p: float, rng: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) float in [-1, 1] -> same shape and dtype, differentiable with respect to x.

    Each op in ``ops`` (in order) is applied to each sample with probability ``p``; every random draw
    comes from ``rng`` (a CPU generator), the same number of draws whatever p is.
    """
    for name, magnitude in ops.items():
        apply = torch.rand(x.shape[0], generator=rng) < p
        x = OPS[name][0](x, magnitude, apply, rng)
    return x


class AdaptiveP:
    """The augmentation probability p; with ``target`` > 0 it follows D's overfitting (see the module doc).

    Its state (p and the running sums) is plain floats, saved with the training state.
    """

    def __init__(self, p: float, target: float) -> None:
        self.p, self.target = float(p), float(target)
        self.sign_sum, self.logits, self.images, self.steps = 0.0, 0, 0, 0

    def observe(self, real_logits: torch.Tensor, images: int) -> None:
        """Record D's logits (N, 1) on the ``images`` augmented real images of one D step (N < images when
        packing); adjust p every ADA_INTERVAL steps. A fixed p (target 0) ignores this."""
        if not self.target:
            return
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.logits += real_logits.numel()
        self.images += images
        self.steps += 1
        if self.steps % ADA_INTERVAL == 0:
            r_t = self.sign_sum / self.logits
            direction = (r_t > self.target) - (r_t < self.target)
            self.p = min(1.0, max(0.0, self.p + direction * self.images / ADA_IMAGES))
            self.sign_sum, self.logits, self.images = 0.0, 0, 0

    def state(self) -> dict[str, float | int]:
        names = ("p", "sign_sum", "logits", "images", "steps")
        return {name: getattr(self, name) for name in names}

    def load(self, state: Mapping[str, float | int]) -> None:
        self.p, self.sign_sum = float(state["p"]), float(state["sign_sum"])
        self.logits, self.images, self.steps = int(state["logits"]), int(state["images"]), int(state["steps"])
