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


def plot_losses(steps: list[int], d_losses: list[float], g_losses: list[float], path: str | Path) -> Path:
    """Discriminator and generator loss per training step -> PNG."""
    # A bare Figure, not pyplot: no global backend switch under a caller's notebook or GUI.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(steps, d_losses, label="D loss", linewidth=0.8)
    ax.plot(steps, g_losses, label="G loss", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("BCE loss")
    ax.set_title("GAN training losses")
    ax.legend()
    ax.grid(alpha=0.3)
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
