"""``gankit demo``: the whole pipeline on the bundled data, small enough for 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

from gankit.config import TrainConfig
from gankit.sample import SampleJob, sample
from gankit.train import train


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_demo(out: Path, epochs: int = 3) -> None:
    """Train briefly, then sample the bundled pretrained generator; every file lands under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _step(f"1. train {epochs} epochs on the bundled 5,000 MNIST digits (CPU is fine)")
    result = train(TrainConfig(epochs=epochs), out / "train")
    print(
        f"generator: {result.generator_path}; grids: {out / 'train' / 'samples'}; losses: {out / 'train' / 'losses.png'}"
    )

    _step("2. sample 64 digits from the bundled pretrained generator")
    result = sample(SampleJob(out / "pretrained_grid.png", n=64, format="grid", backend="eager"))
    print(f"grid: {result.out}")
    print(f"\ndemo finished: everything is under {out}")
