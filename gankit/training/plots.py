"""The training run's picture: losses per step, and the quality measured while training, as one PNG."""

from __future__ import annotations

from pathlib import Path

from gankit.io import atomic_path


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
