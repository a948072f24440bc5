"""Pixels: the grid PNG is torchvision's, pixel for pixel, without importing torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.pixels import save_grid


@pytest.mark.parametrize(("count", "channels", "nrow"), [(64, 1, None), (5, 1, None), (1, 1, None), (7, 3, 3)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_grid_equals_torchvision(tmp_path: Path, count: int, channels: int, nrow, dtype: torch.dtype) -> None:
    from torchvision.utils import save_image

    generator = torch.Generator().manual_seed(count * channels)
    if dtype == torch.uint8:
        images = torch.randint(0, 256, (count, channels, 12, 9), dtype=torch.uint8, generator=generator)
        unit = images.float() / 255.0
    else:  # beyond [-1, 1] too: both clip
        images = torch.randn((count, channels, 12, 9), generator=generator) * 0.7
        unit = (images + 1.0) / 2.0
    rows = nrow or int(np.ceil(np.sqrt(count)))
    save_image(unit.clamp(0, 1), str(tmp_path / "torchvision.png"), nrow=rows, padding=2, format="png")
    save_grid(images, tmp_path / "gankit.png", nrow=nrow)
    theirs, ours = Image.open(tmp_path / "torchvision.png"), Image.open(tmp_path / "gankit.png")
    assert ours.mode == theirs.mode and np.array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("rows", [1000, 7])
def test_to_uint8_into_is_to_uint8_bit_for_bit(rows: int) -> None:
    """Chunk by chunk (1000 = 3 x 256 + 232 rows), over [-1.2, 1.2] densely: every half-way level, the clip."""
    from gankit.pixels import to_uint8, to_uint8_into

    grid = np.linspace(-1.2, 1.2, rows * 784, dtype=np.float32)
    halves = (np.arange(rows * 784) % 511 / 255.0 - 1.0).astype(np.float32)  # (x + 1) * 127.5 on k / 2
    for images in (grid.reshape(rows, 1, 28, 28), halves.reshape(rows, 1, 28, 28)):
        out = np.full(images.shape, 77, dtype=np.uint8)
        to_uint8_into(images, out)
        assert np.array_equal(out, to_uint8(torch.from_numpy(images)).numpy())
