"""Training: finite losses and files, resume = uninterrupted (bitwise), Ctrl-C, NaN handling, bad resumes."""

from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.checkpoint import load_generator, load_state, read_generator_file, save_state
from gankit.config import TrainConfig
from gankit.data import load_bundled
from gankit.errors import CheckpointError, ConfigError, TrainingError
from gankit.model import Generator
from gankit.pixels import plot_losses
from gankit.train import GENERATOR_FILE, STATE_FILE, Trainer, resume, train

IMAGES = 200
BATCH = 64
STEPS_PER_EPOCH = math.ceil(IMAGES / BATCH)  # 4, the last batch short


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=load_bundled()[0][:IMAGES, 0].numpy())
    return path


def _config(data: Path, epochs: int, **changes: object) -> TrainConfig:
    return TrainConfig(data=str(data), epochs=epochs, batch_size=BATCH, seed=3, device="cpu", **changes)


@pytest.fixture(scope="module")
def straight_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs without interruption: the reference the resumed runs must equal."""
    out = tmp_path_factory.mktemp("straight")
    result = train(_config(tiny_data, 2), out, progress=False)
    assert result.epochs_done == 2 and not result.interrupted
    return out


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return read_generator_file(out / GENERATOR_FILE)[1]


def _assert_same_run(a: Path, b: Path) -> None:
    state_a, state_b = load_state(a / STATE_FILE), load_state(b / STATE_FILE)
    assert torch.equal(state_a["history"], state_b["history"])
    assert (a / "losses.csv").read_bytes() == (b / "losses.csv").read_bytes()
    weights_a, weights_b = _weights(a), _weights(b)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    for name, tensor in state_a["discriminator"].items():
        assert torch.equal(tensor, state_b["discriminator"][name]), name
    assert torch.equal(state_a["rng"], state_b["rng"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_gives_finite_losses_checkpoint_grids_and_loss_files(tiny_data: Path, straight_run: Path) -> None:
    out = straight_run
    with open(out / "losses.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["global_step", "epoch", "d_loss", "g_loss"]
    assert len(rows) == 1 + 2 * STEPS_PER_EPOCH
    assert [int(r[0]) for r in rows[1:]] == list(range(2 * STEPS_PER_EPOCH))
    assert [int(r[1]) for r in rows[1:]] == [0] * STEPS_PER_EPOCH + [1] * STEPS_PER_EPOCH
    losses = [float(v) for r in rows[1:] for v in r[2:]]
    assert all(math.isfinite(v) and v > 0 for v in losses)

    generator = load_generator(out / GENERATOR_FILE)
    assert generator.config.image_shape == (1, 28, 28) and generator.config.latent_dim == 100
    torch.manual_seed(3)
    initial = Generator()
    assert not torch.equal(generator.layers[0].weight, initial.layers[0].weight)  # it trained
    _, _, metadata = read_generator_file(out / GENERATOR_FILE)
    training = json.loads(metadata["training"])
    assert (training["epochs"], training["step_in_epoch"], training["seed"], training["data"]) == (
        2,
        0,
        3,
        str(tiny_data),
    )

    state = load_state(out / STATE_FILE)
    assert (state["epoch"], state["step"]) == (2, 0)

    for epoch in (1, 2):
        with Image.open(out / "samples" / f"epoch_{epoch:04d}.png") as grid:
            assert grid.format == "PNG" and grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 of 28px + 2px padding
    with Image.open(out / "losses.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100


def test_resume_equals_uninterrupted(tiny_data: Path, straight_run: Path, tmp_path: Path) -> None:
    first = train(_config(tiny_data, 1), tmp_path, progress=False)
    assert first.epochs_done == 1 and not first.interrupted
    assert not (tmp_path / "samples" / "epoch_0002.png").exists()
    second = resume(tmp_path, epochs=2, progress=False)
    assert second.epochs_done == 2 and not second.interrupted
    _assert_same_run(straight_run, tmp_path)
    assert (tmp_path / "samples" / "epoch_0002.png").read_bytes() == (
        straight_run / "samples" / "epoch_0002.png"
    ).read_bytes()


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Press Ctrl-C (a real SIGINT to this process) once, right after the given number of steps."""
    original = Trainer.train_step
    count = 0

    def step_then_maybe_interrupt(self: Trainer) -> tuple[float, float]:
        nonlocal count
        losses = original(self)
        count += 1
        if count == steps:
            signal.raise_signal(signal.SIGINT)
        return losses

    monkeypatch.setattr(Trainer, "train_step", step_then_maybe_interrupt)


def test_ctrl_c_mid_epoch_saves_and_resume_equals_uninterrupted(
    tiny_data: Path, straight_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = STEPS_PER_EPOCH + 2  # in the middle of the second epoch
    _interrupt_after(monkeypatch, done)
    result = train(_config(tiny_data, 2), tmp_path, progress=False)
    assert result.interrupted and result.epochs_done == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    state = load_state(tmp_path / STATE_FILE)
    assert (state["epoch"], state["step"]) == (1, 2) and len(state["history"]) == done
    training = json.loads(read_generator_file(tmp_path / GENERATOR_FILE)[2]["training"])
    assert (training["epochs"], training["step_in_epoch"]) == (1, 2)
    assert len((tmp_path / "losses.csv").read_text().splitlines()) == 1 + done

    final = resume(tmp_path, progress=False)  # the saved total: 2 epochs
    assert final.epochs_done == 2 and not final.interrupted
    _assert_same_run(straight_run, tmp_path)


def test_ctrl_c_on_the_last_step_of_an_epoch(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_after(monkeypatch, STEPS_PER_EPOCH)
    result = train(_config(tiny_data, 3), tmp_path, progress=False)
    assert result.interrupted and result.epochs_done == 1
    assert (tmp_path / "samples" / "epoch_0001.png").is_file()
    state = load_state(tmp_path / STATE_FILE)
    assert (state["epoch"], state["step"]) == (1, 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises_and_keeps_the_last_good_checkpoint(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: float
) -> None:
    train(_config(tiny_data, 1), tmp_path, progress=False)
    before = _snapshot(tmp_path)
    assert {GENERATOR_FILE, STATE_FILE, "losses.csv", "losses.png"} <= set(before)
    original = Trainer.train_step
    steps = 0

    def step_then_diverge(self: Trainer) -> tuple[float, float]:
        nonlocal steps
        d_loss, g_loss = original(self)
        steps += 1
        return (d_loss, bad) if steps == 2 else (d_loss, g_loss)

    monkeypatch.setattr(Trainer, "train_step", step_then_diverge)
    with pytest.raises(TrainingError, match="non-finite at epoch 2, step 2") as info:
        resume(tmp_path, epochs=2, progress=False)
    assert "last good checkpoint" in str(info.value) and "--lr" in str(info.value)
    assert _snapshot(tmp_path) == before


def test_ema_generator_is_the_one_saved(tiny_data: Path, tmp_path: Path) -> None:
    train(_config(tiny_data, 1, ema=0.9), tmp_path, progress=False)
    state = load_state(tmp_path / STATE_FILE)
    saved = _weights(tmp_path)
    assert all(torch.equal(saved[name], t) for name, t in state["ema_generator"].items())
    assert not torch.equal(saved["layers.0.weight"], state["generator"]["layers.0.weight"])


def test_resume_without_a_run_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such training-state file"):
        resume(tmp_path / "nothing here", progress=False)


def test_resume_with_changed_data_raises(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    data.write_bytes(tiny_data.read_bytes())
    train(_config(data, 1), tmp_path / "run", progress=False)
    np.savez(data, images=load_bundled()[0][:150, 0].numpy())
    with pytest.raises(CheckpointError, match="saved for 200 training images.* now holds 150"):
        resume(tmp_path / "run", epochs=2, progress=False)


def test_resume_rejects_invalid_epochs(tiny_data: Path, straight_run: Path) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        resume(straight_run, epochs=0, progress=False)


def test_resume_of_a_state_without_config_raises(tmp_path: Path) -> None:
    save_state(tmp_path / STATE_FILE, {"format": "gankit.train_state", "epoch": 1})
    with pytest.raises(CheckpointError, match="saved training config is missing or invalid"):
        resume(tmp_path, progress=False)


@pytest.mark.parametrize("damage", ["generator_shape", "no_history", "rng_type"])
def test_resume_of_a_state_that_does_not_fit_raises(straight_run: Path, tmp_path: Path, damage: str) -> None:
    state = load_state(straight_run / STATE_FILE)
    if damage == "generator_shape":
        state["generator"]["layers.0.weight"] = torch.zeros(3, 3)
    elif damage == "no_history":
        del state["history"]
    else:
        state["rng"] = "not a generator state"
    save_state(tmp_path / STATE_FILE, state)
    with pytest.raises(CheckpointError, match="does not fit this run's models") as info:
        resume(tmp_path, epochs=3, progress=False)
    assert str(info.value).startswith(str(tmp_path / STATE_FILE)) and "\n" not in str(info.value)


def test_loss_plot_leaves_the_callers_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot_losses([0, 1, 2], [1.4, 1.2, 1.0], [0.7, 0.9, 1.1], tmp_path / "losses.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.format == "PNG"
