"""The GAN training loop: the seed's algorithm plus the recipe options, checkpointed so nothing is lost.

Per step: D minimises BCE(D(a(x)), 1 - s) + BCE(D(a(G(z))), 0) [+ lecam * LeCam + r1 / 2 * R1 every
r1_every steps, times r1_every + aux_weight * CE(C(a(x)), y)]; G minimises BCE(D(a(G(z))), 1)
(non-saturating) [+ aux_weight * CE(C(a(G(z))), y_fake)], C being D's auxiliary classifier head. ``a`` is the
differentiable augmentation (identity when off) and s the label smoothing (0 when off); a
conditional run feeds real labels with real images and uniform random labels to G and D for fakes.
With ``latent_labels`` = K, G stays unconditional and D is conditional: a fake's label is
argmax(z[:K]), so G learns to draw digit k wherever z's largest of its first K entries is entry k
(each k has probability 1/K under z ~ N(0, I): the digits come out balanced, by construction).
Shuffling, z, labels and augmentation draw from one CPU ``torch.Generator``, D's dropout masks from a
second one on the device. Both states, the adaptive p and the LeCam EMAs are saved with the models and
optimizers after every step that is checkpointed, so ``resume`` continues exactly.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from gankit.checkpoint import load_state, save_generator, save_state
from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from gankit.data import load_training_set
from gankit.device import resolve_device
from gankit.errors import CheckpointError, ConfigError, OutputError, TrainingError
from gankit.io import atomic_path, check_writable
from gankit.limits import require_memory
from gankit.model import Discriminator, Generator
from gankit.noise import noise
from gankit.pixels import from_uint8, save_grid
from gankit.training.augment import AdaptiveP, augment
from gankit.training.monitor import EpochQuality, QualityMonitor
from gankit.training.plots import plot_losses
from gankit.training.regularizers import LeCam, r1_penalty
from gankit.training.stop import StopRequest

GENERATOR_FILE = "generator.safetensors"
BEST_FILE = "generator_best.safetensors"
STATE_FILE = "train_state.pt"
GRID_SEED = 0
GRID_SIZE = 64


class StepLog(NamedTuple):
    """One training step's line of the loss log (``losses.csv``, ``train_state.pt``'s history rows)."""

    global_step: int
    epoch: int
    d_loss: float
    g_loss: float
    augment_p: float


LOG_COLUMNS = list(StepLog._fields)
QUALITY_COLUMNS = ["mnist_fid", "min_digit_share", "precision", "recall", "label_fidelity"]


@dataclass
class TrainResult:
    generator_path: Path
    state_path: Path
    epochs_done: int
    interrupted: bool
    last_losses: tuple[float, float] | None
    best: EpochQuality | None = None
    steps_into_epoch: int = 0  # an interrupted run: the steps of the unfinished epoch it saved

    def describe(self) -> str:
        """``3 epochs`` or ``1 epoch and 2 steps``: what the saved state holds."""
        text = f"{self.epochs_done} epoch{'' if self.epochs_done == 1 else 's'}"
        if self.steps_into_epoch:
            text += f" and {self.steps_into_epoch} step{'' if self.steps_into_epoch == 1 else 's'}"
        return text


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    values = dict(values)
    values["generator"] = GeneratorConfig(**values["generator"])
    values["discriminator"] = DiscriminatorConfig(**values["discriminator"])
    values["betas"] = tuple(values["betas"])
    return TrainConfig(**values)


class Trainer:
    """Holds the models, optimizers and progress of one run in ``out_dir``."""

    def __init__(self, config: TrainConfig, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        images, labels = load_training_set(config.data, config.data_dir, config.label_classes)
        generator_config = replace(config.generator, image_shape=tuple(images.shape[1:]))
        discriminator_config = replace(
            config.discriminator,
            image_shape=generator_config.image_shape,
            num_classes=config.label_classes,
            classifier=config.aux_weight > 0,
        )
        if config.batch_size % discriminator_config.pack:
            raise ConfigError(
                f"batch size {config.batch_size} is not a multiple of the pack size {discriminator_config.pack}"
            )
        # a copy: the caller's config is left as it was given
        self.config = replace(config, generator=generator_config, discriminator=discriminator_config)
        weights = generator_config.parameter_count + sum(i * o + o for i, o in discriminator_config.layer_sizes)
        # float32 weights, gradients and Adam's two moments of both models, plus G's EMA copy: before allocating.
        require_memory("the generator and discriminator (weights, gradients, Adam)", 4 * (4 * weights + weights))
        self.data = from_uint8(images).to(self.device)
        self.labels = labels.to(self.device) if labels is not None else None
        torch.manual_seed(config.seed)
        self.generator = Generator(generator_config).to(self.device)
        self.discriminator = Discriminator(discriminator_config).to(self.device)
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False) if config.ema > 0 else None
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_lr, betas=config.betas)
        self.rng = torch.Generator().manual_seed(config.seed)
        # A stream of its own (seeds s and s + 1 give unrelated sequences), untouched by anything else.
        self.dropout_rng = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.loss = nn.BCEWithLogitsLoss()
        self.ada = AdaptiveP(config.augment_p, config.ada_target)
        self.lecam = LeCam()
        self.monitor = QualityMonitor(generator_config, config.eval_samples, self.device) if config.eval_every else None
        self.epoch = 0
        self.step = 0
        self.perm = torch.randperm(len(self.data), generator=self.rng)
        self.history: list[StepLog] = []
        self.quality: list[EpochQuality] = []
        self.best: EpochQuality | None = None
        num_classes = generator_config.num_classes
        # Conditional: a 10 x 10 grid, row r all label r (for num_classes = 10); else samples 0..63 of seed 0.
        grid_size = 10 * num_classes if num_classes else GRID_SIZE
        self.grid_noise = noise(GRID_SEED, 0, grid_size, generator_config.latent_dim).to(self.device)
        self.grid_labels = torch.arange(grid_size, device=self.device) // 10 if num_classes else None

    @property
    def steps_per_epoch(self) -> int:
        """Batches an epoch; with packing, a last short batch is cut to whole packs and dropped if none is left."""
        full, rest = divmod(len(self.data), self.config.batch_size)
        return full + (rest >= self.config.discriminator.pack)

    @property
    def sampling_generator(self) -> Generator:
        """The weights a user samples from: the EMA copy when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return augment(images, self.config.augment, self.ada.p, self.rng) if self.config.augment else images

    def train_step(self) -> tuple[float, float]:
        """One D update then one G update on the next batch; returns (d_loss, g_loss), the BCE parts."""
        config = self.config
        bs = config.batch_size
        index = self.perm[self.step * bs : (self.step + 1) * bs]
        index = index[: len(index) - len(index) % config.discriminator.pack].to(self.device)
        real = self.data[index]
        z = torch.randn(len(index), config.generator.latent_dim, generator=self.rng).to(self.device)
        real_labels = fake_labels = None
        if self.labels is not None:
            real_labels = self.labels[index]
            if config.latent_labels:
                fake_labels = z[:, : config.latent_labels].argmax(1)
            else:
                fake_labels = torch.randint(config.label_classes, (len(index),), generator=self.rng).to(self.device)

        fake = self.generator(z, None if config.latent_labels else fake_labels)
        real_in, fake_in = self._augment(real), self._augment(fake.detach())
        r1_now = config.r1 > 0 and len(self.history) % config.r1_every == 0
        if r1_now:
            real_in = real_in.detach().requires_grad_(True)
        real_logits, real_classes = self.discriminator.classify(real_in, real_labels, self.dropout_rng)
        fake_logits = self.discriminator(fake_in, fake_labels, self.dropout_rng)
        d_loss = self.loss(real_logits, torch.full_like(real_logits, 1.0 - config.label_smoothing)) + self.loss(
            fake_logits, torch.zeros_like(fake_logits)
        )
        self.ada.observe(real_logits, len(index))
        d_total = d_loss
        if config.lecam:
            d_total = d_total + config.lecam * self.lecam(real_logits, fake_logits)
        if r1_now:
            d_total = d_total + config.r1 / 2 * config.r1_every * r1_penalty(real_logits, real_in)
        if config.aux_weight:
            d_total = d_total + config.aux_weight * F.cross_entropy(real_classes, real_labels)
        self.opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        self.opt_d.step()

        logits, classes = self.discriminator.classify(self._augment(fake), fake_labels, self.dropout_rng)
        g_loss = self.loss(logits, torch.ones_like(logits))
        g_total = g_loss + config.aux_weight * F.cross_entropy(classes, fake_labels) if config.aux_weight else g_loss
        self.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        self.opt_g.step()
        if self.ema_generator is not None:
            with torch.no_grad():
                for ema_p, p in zip(self.ema_generator.parameters(), self.generator.parameters()):
                    ema_p.lerp_(p, 1.0 - config.ema)
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
            "dropout_rng": self.dropout_rng.get_state(),
            "epoch": self.epoch,
            "step": self.step,
            "perm": self.perm,
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, len(LOG_COLUMNS)),
            "ada": self.ada.state(),
            "lecam": self.lecam.state(),
            "quality": torch.tensor([q.as_row() for q in self.quality], dtype=torch.float64).reshape(
                -1, len(fields(EpochQuality))
            ),
            "best_epoch": self.best.epoch if self.best is not None else 0,
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
            # a state saved without the augment_p column has p = 0 on every step
            rows = state["history"].tolist()
            self.history = [StepLog(int(row[0]), int(row[1]), *row[2:4], *(row[4:] or [0.0])) for row in rows]
            if "dropout_rng" in state:  # states saved before the recipe options had no dropout, and no more
                self.dropout_rng.set_state(state["dropout_rng"])
                self.ada.load(state["ada"])
                self.lecam.load(state["lecam"])
                self.quality = [EpochQuality(int(row[0]), *row[1:]) for row in state["quality"].tolist()]
                best_epoch = int(state["best_epoch"])
            else:
                best_epoch = 0
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            # load_state_dict's message spans many lines; the CLI prints one.
            raise CheckpointError(f"{path}: does not fit this run's models: {' '.join(str(exc).split())}") from exc
        self.best = next((q for q in self.quality if q.epoch == best_epoch), None)
        if len(self.perm) != len(self.data):
            raise CheckpointError(
                f"{path}: saved for {len(self.perm)} training images, but {self.config.data} now holds "
                f"{len(self.data)}; resume with the same data or start a new run"
            )

    def training_metadata(self) -> dict[str, Any]:
        """What the generator file records of its making: the whole recipe, progress and last quality."""
        recipe = config_to_dict(self.config)
        del recipe["generator"], recipe["device"], recipe["data_dir"], recipe["epochs"]
        return {
            **recipe,
            "epochs": self.epoch,
            "epochs_planned": self.config.epochs,
            "step_in_epoch": self.step,
            "augment_p_now": self.ada.p,
            "quality": asdict(self.quality[-1]) if self.quality else None,
        }

    def checkpoint(self) -> None:
        """Write generator, training state and loss log, each atomically."""
        save_state(self.out_dir / STATE_FILE, self.state())
        save_generator(self.out_dir / GENERATOR_FILE, self.sampling_generator, self.training_metadata())
        measured = {q.epoch: q for q in self.quality}
        with atomic_path(self.out_dir / "losses.csv") as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(LOG_COLUMNS + QUALITY_COLUMNS)
            for i, row in enumerate(self.history):
                # a measurement sits on the last step of its epoch
                last_of_epoch = i + 1 == len(self.history) or self.history[i + 1].epoch != row.epoch
                q = measured.get(row.epoch + 1) if last_of_epoch else None
                values = q.as_row()[1:] if q else [math.nan] * len(QUALITY_COLUMNS)
                writer.writerow([*row, *("" if math.isnan(v) else v for v in values)])

    def measure_quality(self) -> EpochQuality:
        """Score the sampling generator now; with keep_best, write it to BEST_FILE if its FID is the lowest yet."""
        measured = self.monitor.measure(self.sampling_generator, self.epoch)
        self.quality.append(measured)
        if self.best is None or measured.fid < self.best.fid:
            self.best = measured
            if self.config.keep_best:
                save_generator(self.out_dir / BEST_FILE, self.sampling_generator, self.training_metadata())
        return measured

    def save_epoch_grid(self) -> Path:
        with torch.no_grad():
            images = self.sampling_generator.eval()(self.grid_noise, self.grid_labels)
        self.sampling_generator.train()
        nrow = 10 if self.grid_labels is not None else 8
        return save_grid(images, self.out_dir / "samples" / f"epoch_{self.epoch:04d}.png", nrow=nrow)

    def run(self, progress: bool = True) -> TrainResult:
        """Train until ``config.epochs``; Ctrl-C checkpoints and returns with ``interrupted=True``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        total = self.config.epochs * self.steps_per_epoch
        done = self.epoch * self.steps_per_epoch + self.step
        interrupted = False
        with (
            StopRequest() as stop,
            tqdm(total=total, initial=done, disable=True if not progress else None, unit="step") as bar,
        ):
            while self.epoch < self.config.epochs and not interrupted:
                while self.step < self.steps_per_epoch:
                    d_loss, g_loss = self.train_step()
                    if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
                        raise TrainingError(
                            f"loss became non-finite at epoch {self.epoch + 1}, step {self.step + 1} "
                            f"(D={d_loss}, G={g_loss}); the last good checkpoint in {self.out_dir} is kept. "
                            "Try a lower --lr."
                        )
                    self.history.append(StepLog(len(self.history), self.epoch, d_loss, g_loss, self.ada.p))
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
                    if self.monitor is not None and self.epoch % self.config.eval_every == 0:
                        measured = self.measure_quality()
                        share = 100 * measured.min_share
                        bar.write(f"epoch {self.epoch}: MNIST-FID {measured.fid:.2f}, min digit {share:.1f}%")
                self.checkpoint()
        if self.history:
            steps = [row.global_step for row in self.history]
            d, g = [row.d_loss for row in self.history], [row.g_loss for row in self.history]
            curves = [(q.epoch * self.steps_per_epoch, q.fid, q.min_share) for q in self.quality]
            plot_losses(steps, d, g, self.out_dir / "losses.png", quality=curves)
        last = (self.history[-1].d_loss, self.history[-1].g_loss) if self.history else None
        files = self.out_dir / GENERATOR_FILE, self.out_dir / STATE_FILE
        return TrainResult(*files, self.epoch, interrupted, last, self.best, self.step)


RUN_FILES = (GENERATOR_FILE, BEST_FILE, STATE_FILE, "losses.csv", "losses.png", "samples")


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True, force: bool = False) -> TrainResult:
    """Start a new run in ``out_dir``. A folder holding a run (finished or not) is refused unless ``force``, which
    first removes that run's files (so the folder never mixes two runs); ``resume`` continues one."""
    out = Path(out_dir)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not force:
        raise OutputError(
            f"{out} already holds a training run ({', '.join(found)}): add --resume to continue it, --force to "
            "replace it, or choose another --out"
        )
    check_writable(out)
    trainer = Trainer(config, out)
    for name in found:
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    return trainer.run(progress=progress)


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
