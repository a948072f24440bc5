"""Pictures people look at: sample grids and loss curves (PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gankit.checkpoint import atomic_path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """images: (B, C, H, W) float in [-1, 1] or uint8 -> one PNG grid at ``path`` (written atomically)."""
    from torchvision.utils import save_image

    images = images.detach().cpu()
    images = images.float() / 255.0 if images.dtype == torch.uint8 else (images.float() + 1.0) / 2.0
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    with atomic_path(path) as tmp:
        save_image(images.clamp(0, 1), str(tmp), nrow=nrow, padding=2, format="png")
    return Path(path)


def plot_losses(
    steps: list[int],
    d_losses: list[float],
    g_losses: list[float],
    path: str | Path,
    quality: list[tuple[int, float, float]] | None = None,
) -> Path:
    """Discriminator and generator loss per training step -> PNG; with ``quality`` ((step, MNIST-FID, min
    digit share) measurements), a second panel below: FID (log scale) and the rarest digit's share."""
    # A bare Figure, not pyplot: no global backend switch under a caller's notebook or GUI.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 7 if quality else 4), dpi=100)
    axes = fig.subplots(2 if quality else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(steps, d_losses, label="D loss", linewidth=0.8)
    ax.plot(steps, g_losses, label="G loss", linewidth=0.8)
    ax.set_ylabel("BCE loss")
    ax.set_title("GAN training losses")
    ax.legend()
    ax.grid(alpha=0.3)
    if quality:
        at, fid, share = zip(*quality)
        low = axes[1]
        low.plot(at, fid, marker=".", color="tab:red", label="MNIST-FID")
        low.set_yscale("log")
        low.set_ylabel("MNIST-FID", color="tab:red")
        low.grid(alpha=0.3)
        right = low.twinx()
        right.plot(at, [100 * s for s in share], marker=".", color="tab:green", label="min digit share")
        right.set_ylabel("rarest digit, % of samples", color="tab:green")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """One uint8 image (C, H, W), C = 1 (grey) or 3 (RGB) -> a PNG of exactly those pixels."""
    from PIL import Image

    array = image.detach().cpu().numpy()
    picture = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    picture.save(path, format="png")
