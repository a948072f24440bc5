"""The GAN training loop: the seed's algorithm, checkpointed so that nothing is lost.

Per step: D minimises BCE(D(x), 1) + BCE(D(G(z)), 0); G minimises BCE(D(G(z)), 1) (non-saturating).
All randomness (shuffling and z) comes from one CPU ``torch.Generator`` whose state is saved with the
models and optimizers after every step that is checkpointed, so ``resume`` continues exactly.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import signal
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from gankit.checkpoint import load_state, save_generator, save_state
from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from gankit.data import load_images
from gankit.device import resolve_device
from gankit.errors import CheckpointError, ConfigError, TrainingError
from gankit.io import atomic_path
from gankit.model import Discriminator, Generator
from gankit.noise import noise
from gankit.pixels import from_uint8, plot_losses, save_grid

GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "train_state.pt"
GRID_SEED = 0
GRID_SIZE = 64


@dataclass
class TrainResult:
    generator_path: Path
    state_path: Path
    epochs_done: int
    interrupted: bool
    last_losses: tuple[float, float] | None


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    values = dict(values)
    values["generator"] = GeneratorConfig(**values["generator"])
    values["discriminator"] = DiscriminatorConfig(**values["discriminator"])
    values["betas"] = tuple(values["betas"])
    return TrainConfig(**values)


class _StopRequest:
    """Turns the first Ctrl-C into a flag checked between steps; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Holds the models, optimizers and progress of one run in ``out_dir``."""

    def __init__(self, config: TrainConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        images = load_images(config.data, config.data_dir)
        generator_config = GeneratorConfig(
            latent_dim=config.generator.latent_dim,
            hidden=config.generator.hidden,
            image_shape=tuple(images.shape[1:]),
            slope=config.generator.slope,
        )
        discriminator_config = DiscriminatorConfig(
            hidden=config.discriminator.hidden,
            image_shape=generator_config.image_shape,
            slope=config.discriminator.slope,
        )
        self.config.generator, self.config.discriminator = generator_config, discriminator_config
        self.data = from_uint8(images).to(self.device)
        torch.manual_seed(config.seed)
        self.generator = Generator(generator_config).to(self.device)
        self.discriminator = Discriminator(discriminator_config).to(self.device)
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False) if config.ema > 0 else None
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=config.betas)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.loss = nn.BCEWithLogitsLoss()
        self.epoch = 0
        self.step = 0
        self.perm = torch.randperm(len(self.data), generator=self.rng)
        self.history: list[tuple[int, int, float, float]] = []
        self.grid_noise = noise(GRID_SEED, 0, GRID_SIZE, generator_config.latent_dim).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data) / self.config.batch_size)

    @property
    def sampling_generator(self) -> Generator:
        """The weights a user samples from: the EMA copy when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def train_step(self) -> tuple[float, float]:
        """One D update then one G update on the next batch; returns (d_loss, g_loss)."""
        bs = self.config.batch_size
        index = self.perm[self.step * bs : (self.step + 1) * bs]
        real = self.data[index.to(self.device)]
        z = torch.randn(len(index), self.config.generator.latent_dim, generator=self.rng).to(self.device)
        ones = torch.ones(len(index), 1, device=self.device)
        zeros = torch.zeros(len(index), 1, device=self.device)

        fake = self.generator(z)
        d_loss = self.loss(self.discriminator(real), ones) + self.loss(self.discriminator(fake.detach()), zeros)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        g_loss = self.loss(self.discriminator(fake), ones)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.ema_generator is not None:
            with torch.no_grad():
                for ema_p, p in zip(self.ema_generator.parameters(), self.generator.parameters()):
                    ema_p.lerp_(p, 1.0 - self.config.ema)
        return d_loss.item(), g_loss.item()

    def state(self) -> dict[str, Any]:
        return {
            "format": "gankit.train_state",
            "config": json.dumps(config_to_dict(self.config)),
            "generator": self.generator.state_dict(),
            "ema_generator": self.ema_generator.state_dict() if self.ema_generator is not None else {},
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "epoch": self.epoch,
            "step": self.step,
            "perm": self.perm,
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 4),
        }

    def load(self, state: dict[str, Any]) -> None:
        path = self.out_dir / STATE_FILE
        try:
            self.generator.load_state_dict(state["generator"])
            if self.ema_generator is not None:
                self.ema_generator.load_state_dict(state["ema_generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.rng.set_state(state["rng"])
            self.epoch, self.step, self.perm = int(state["epoch"]), int(state["step"]), state["perm"]
            self.history = [(int(a), int(b), float(c), float(d)) for a, b, c, d in state["history"].tolist()]
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            # load_state_dict's message spans many lines; the CLI prints one.
            raise CheckpointError(f"{path}: does not fit this run's models: {' '.join(str(exc).split())}") from exc
        if len(self.perm) != len(self.data):
            raise CheckpointError(
                f"{path}: saved for {len(self.perm)} training images, but {self.config.data} now holds "
                f"{len(self.data)}; resume with the same data or start a new run"
            )

    def checkpoint(self) -> None:
        """Write generator, training state and loss log, each atomically."""
        save_state(self.out_dir / STATE_FILE, self.state())
        training = {
            "data": self.config.data,
            "epochs": self.epoch,
            "step_in_epoch": self.step,
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "lr": self.config.lr,
            "betas": list(self.config.betas),
            "ema": self.config.ema,
        }
        save_generator(self.out_dir / GENERATOR_FILE, self.sampling_generator, training)
        with atomic_path(self.out_dir / "losses.csv") as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["global_step", "epoch", "d_loss", "g_loss"])
            writer.writerows(self.history)

    def save_epoch_grid(self) -> Path:
        with torch.no_grad():
            images = self.sampling_generator.eval()(self.grid_noise)
        self.sampling_generator.train()
        return save_grid(images, self.out_dir / "samples" / f"epoch_{self.epoch:04d}.png", nrow=8)

    def run(self, progress: bool = True) -> TrainResult:
        """Train until ``config.epochs``; Ctrl-C checkpoints and returns with ``interrupted=True``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        total = self.config.epochs * self.steps_per_epoch
        done = self.epoch * self.steps_per_epoch + self.step
        interrupted = False
        with _StopRequest() as stop, tqdm(total=total, initial=done, disable=not progress, unit="step") as bar:
            while self.epoch < self.config.epochs and not interrupted:
                while self.step < self.steps_per_epoch:
                    d_loss, g_loss = self.train_step()
                    if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
                        raise TrainingError(
                            f"loss became non-finite at epoch {self.epoch + 1}, step {self.step + 1} "
                            f"(D={d_loss}, G={g_loss}); the last good checkpoint in {self.out_dir} is kept. "
                            "Try a lower --lr."
                        )
                    self.history.append((len(self.history), self.epoch, d_loss, g_loss))
                    self.step += 1
                    bar.update(1)
                    bar.set_postfix(epoch=self.epoch + 1, D=f"{d_loss:.3f}", G=f"{g_loss:.3f}")
                    if stop.requested:
                        interrupted = True
                        break
                if self.step == self.steps_per_epoch:
                    self.epoch, self.step = self.epoch + 1, 0
                    self.perm = torch.randperm(len(self.data), generator=self.rng)
                    self.save_epoch_grid()
                self.checkpoint()
        if self.history:
            _, _, d, g = zip(*self.history)
            plot_losses(list(range(len(d))), list(d), list(g), self.out_dir / "losses.png")
        last = (self.history[-1][2], self.history[-1][3]) if self.history else None
        return TrainResult(self.out_dir / GENERATOR_FILE, self.out_dir / STATE_FILE, self.epoch, interrupted, last)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> TrainResult:
    """Start a new run in ``out_dir``."""
    return Trainer(config, out_dir).run(progress=progress)


def resume(out_dir: str | Path, epochs: int | None = None, progress: bool = True) -> TrainResult:
    """Continue the run saved in ``out_dir`` (optionally to a new total of ``epochs``)."""
    path = Path(out_dir) / STATE_FILE
    state = load_state(path)
    try:
        config = config_from_dict(json.loads(state["config"]))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: the saved training config is missing or invalid: {exc}") from exc
    if epochs is not None:
        config = replace(config, epochs=epochs)  # replace() validates the new total
    trainer = Trainer(config, out_dir)
    trainer.load(state)
    return trainer.run(progress=progress)
