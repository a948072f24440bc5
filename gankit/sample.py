"""Sampling to a file: images of a seed's index range, as a PNG grid or a uint8 .npy array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gankit.backends import create_backend
from gankit.checkpoint import atomic_path, load_generator
from gankit.errors import SamplingError
from gankit.images import save_grid


def sample_to_file(
    model: str | Path | None, out: str | Path, n: int, seed: int = 0, start: int = 0, device: str = "auto"
) -> Path:
    """Write samples start .. start+n-1 of ``seed`` to ``out`` (.png grid, or .npy uint8 (n, C, H, W))."""
    if n <= 0:
        raise SamplingError(f"--n must be positive, got {n}")
    out = Path(out)
    if out.suffix not in (".png", ".npy"):
        raise SamplingError(f"{out}: output must end in .png (grid) or .npy (uint8 array)")
    backend = create_backend("eager", load_generator(model), device=device)
    images = backend.generate_seeded(seed, start, n, output="uint8").cpu()
    try:
        if out.suffix == ".png":
            return save_grid(images, out)
        with atomic_path(out) as tmp, open(tmp, "wb") as handle:
            np.save(handle, images.numpy())
    except OSError as exc:
        raise SamplingError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    return out
