"""Training: finite losses and files, resume = uninterrupted (bitwise), Ctrl-C, NaN handling, bad resumes."""

from __future__ import annotations

import copy
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
from gankit.cli import main
from gankit.config import TrainConfig
from gankit.data import load_bundled
from gankit.errors import CheckpointError, ConfigError, DataError, TrainingError
from gankit.model import Generator
from gankit.noise import noise
from gankit.quality.metrics import features, quality, real_halves
from gankit.train import BEST_FILE, GENERATOR_FILE, STATE_FILE, Trainer, resume, train
from gankit.training.plots import plot_losses
from gankit.training.presets import build_config

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
    assert rows[0] == [
        "global_step",
        "epoch",
        "d_loss",
        "g_loss",
        "augment_p",
        "mnist_fid",
        "min_digit_share",
        "precision",
        "recall",
        "label_fidelity",
    ]
    assert all(r[4] == "0.0" and r[5:] == [""] * 5 for r in rows[1:])  # no augmentation, no measurement
    assert len(rows) == 1 + 2 * STEPS_PER_EPOCH
    assert [int(r[0]) for r in rows[1:]] == list(range(2 * STEPS_PER_EPOCH))
    assert [int(r[1]) for r in rows[1:]] == [0] * STEPS_PER_EPOCH + [1] * STEPS_PER_EPOCH
    losses = [float(v) for r in rows[1:] for v in r[2:4]]
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
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    result = train(_config(tiny_data, 2), tmp_path, progress=False)
    assert result.interrupted and result.epochs_done == 1
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
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


# ---- the recipe options -------------------------------------------------------------------------------------

SMALL_NETS = {"g_hidden": (32, 48), "d_hidden": (40, 24)}  # every option on, yet a fraction of a second an epoch
ALL_OPTIONS = {
    "betas": (0.5, 0.999),
    "ema": 0.9,
    "d_lr": 3e-4,
    "label_smoothing": 0.1,
    "augment": {"translate": 1.0, "cutout": 6.0, "ink": 0.5},
    "augment_p": 0.2,
    "ada_target": 0.3,
    "r1": 1.0,
    "r1_every": 3,
    "lecam": 0.3,
    "pack": 2,
    "minibatch_std": 4,
    "d_dropout": 0.2,
    "eval_every": 1,
    "eval_samples": 100,
    "keep_best": True,
    **SMALL_NETS,
}


LABELLED = {"batch_size": 500}  # the labelled bundled digits: 5,000, 10 steps an epoch
KINDS = {
    "unconditional": {},
    "latent-labels": {"latent_labels": 10, "aux_weight": 0.5, **LABELLED},
    "conditional": {"num_classes": 10, "aux_weight": 0.5, **LABELLED},
}


def _recipe(data: Path | str, epochs: int, kind: str, **changes: object) -> TrainConfig:
    options = {**ALL_OPTIONS, **KINDS[kind], **changes}
    base = {"data": str(data), "epochs": epochs, "batch_size": BATCH, "seed": 3, "device": "cpu"}
    return build_config("seed", **{**base, **options})


@pytest.mark.parametrize("kind", list(KINDS))
def test_resume_is_exact_with_every_option_on(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ctrl-C in the middle of epoch 2, then resume: the same losses, p, LeCam EMAs, dropout masks,
    measurements, best generator and weights as a run that was never stopped."""
    conditional = kind != "unconditional"
    data = "mnist-5k" if conditional else tiny_data
    steps = 10 if conditional else STEPS_PER_EPOCH
    straight = train(_recipe(data, 2, kind), tmp_path / "straight", progress=False)
    assert straight.epochs_done == 2

    _interrupt_after(monkeypatch, steps + 2)
    stopped = train(_recipe(data, 2, kind), tmp_path / "stopped", progress=False)
    assert stopped.interrupted and stopped.epochs_done == 1
    monkeypatch.undo()
    resumed = resume(tmp_path / "stopped", progress=False)
    assert resumed.epochs_done == 2 and not resumed.interrupted

    a, b = tmp_path / "straight", tmp_path / "stopped"
    _assert_same_run(a, b)
    state_a, state_b = load_state(a / STATE_FILE), load_state(b / STATE_FILE)
    for key in ("ada", "lecam", "best_epoch"):
        assert state_a[key] == state_b[key], key
    assert torch.equal(state_a["dropout_rng"], state_b["dropout_rng"])
    assert torch.allclose(state_a["quality"], state_b["quality"], rtol=0, atol=0, equal_nan=True)  # NaN: no labels
    best_a, best_b = read_generator_file(a / BEST_FILE), read_generator_file(b / BEST_FILE)
    assert all(torch.equal(best_a[1][k], best_b[1][k]) for k in best_a[1]) and best_a[2] == best_b[2]
    # the options did something: p moved, the LeCam EMAs were updated, each epoch was measured
    p = state_a["history"][:, 4]
    assert p.min() < p.max() and state_a["lecam"]["updates"] == 2 * steps
    assert state_a["quality"][:, 0].tolist() == [1.0, 2.0]
    if kind == "conditional":
        assert 0 <= state_a["quality"][0, 5] <= 1  # label fidelity measured
    assert read_generator_file(a / GENERATOR_FILE)[0].num_classes == (10 if kind == "conditional" else 0)
    if conditional:  # D's projection: (pack 2 x 10 classes) -> its last hidden layer (24)
        assert state_a["discriminator"]["projection.weight"].shape == (24, 20)


def test_every_option_is_in_the_generator_metadata(tiny_data: Path, tmp_path: Path) -> None:
    train(_recipe(tiny_data, 1, "unconditional"), tmp_path, progress=False)
    training = json.loads(read_generator_file(tmp_path / GENERATOR_FILE)[2]["training"])
    for name, value in ALL_OPTIONS.items():
        if name in ("pack", "minibatch_std", "d_hidden"):
            key = {"d_hidden": "hidden", "d_dropout": "dropout"}.get(name, name)
            assert training["discriminator"][key] == (list(value) if isinstance(value, tuple) else value), name
        elif name == "d_dropout":
            assert training["discriminator"]["dropout"] == value
        elif name != "g_hidden":
            assert training[name] == (list(value) if isinstance(value, tuple) else value), name
    assert training["quality"]["epoch"] == 1 and 0 < training["augment_p_now"] <= 1


def test_quality_is_logged_plotted_and_the_best_epoch_kept(tiny_data: Path, tmp_path: Path) -> None:
    config = build_config(
        "seed", data=str(tiny_data), epochs=3, batch_size=BATCH, seed=3, device="cpu", eval_every=1,
        eval_samples=200, keep_best=True, **SMALL_NETS,
    )  # fmt: skip
    result = train(config, tmp_path, progress=False)
    with open(tmp_path / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    measured = [r for r in rows if r["mnist_fid"]]
    # one measurement per epoch, on the epoch's last step
    assert [int(r["global_step"]) for r in measured] == [STEPS_PER_EPOCH * e - 1 for e in (1, 2, 3)]
    fids = [float(r["mnist_fid"]) for r in measured]
    assert all(f > 0 for f in fids) and all(0 <= float(r["min_digit_share"]) <= 0.1 for r in measured)
    assert all(r["label_fidelity"] == "" for r in measured)  # unconditional
    best_epoch = 1 + int(np.argmin(fids))
    assert result.best is not None and result.best.epoch == best_epoch and result.best.fid == min(fids)
    best = json.loads(read_generator_file(tmp_path / BEST_FILE)[2]["training"])
    assert best["epochs"] == best_epoch and best["quality"]["fid"] == min(fids)
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.size[1] == 700  # two panels (the loss-only plot is 400 px high)

    # the same samples and numbers as gankit.quality.metrics' metric on the saved generator
    generator = load_generator(tmp_path / GENERATOR_FILE)
    with torch.no_grad():
        images = generator(noise(0, 0, 200, generator.config.latent_dim))
    direct = quality(features(real_halves()[0]), features(images))
    assert float(measured[-1]["mnist_fid"]) == pytest.approx(direct.fid, rel=1e-6)
    assert float(measured[-1]["precision"]) == direct.precision


def test_latent_labels_are_the_argmax_of_the_first_latent_entries(tmp_path: Path) -> None:
    """An unconditional G, a conditional D: D is told that a fake's label is argmax(z[:10])."""
    config = build_config("seed", latent_labels=10, batch_size=500, device="cpu", **SMALL_NETS)
    trainer = Trainer(config, tmp_path)
    assert trainer.generator.config.num_classes == 0 and trainer.discriminator.config.num_classes == 10
    seen: dict[str, torch.Tensor] = {}
    generator_forward, discriminator_classify = trainer.generator.forward, trainer.discriminator.classify

    def record_z(z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is None  # G itself never sees a label
        seen["z"] = z
        return generator_forward(z)

    def record_labels(image: torch.Tensor, labels: torch.Tensor, rng: torch.Generator) -> tuple:
        seen.setdefault("labels", []).append(labels)
        return discriminator_classify(image, labels, rng)

    trainer.generator.forward, trainer.discriminator.classify = record_z, record_labels
    trainer.train_step()
    real, fake, fake_again = seen["labels"]  # the D step (real, fake), then the G step (fake)
    assert torch.equal(real, trainer.labels[trainer.perm[:500]])
    assert torch.equal(fake, seen["z"][:, :10].argmax(1)) and torch.equal(fake_again, fake)
    assert len(fake.unique()) == 10  # 500 draws: every digit (each 1/10)


def test_the_auxiliary_classifier_learns_the_real_digits_and_trains_g_on_the_fake_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = build_config("seed", latent_labels=10, aux_weight=1.0, batch_size=500, lr=1e-3, device="cpu", **SMALL_NETS)
    trainer = Trainer(config, tmp_path)
    real, labels = trainer.data[::5], trainer.labels[::5]  # 100 of each digit
    original = torch.nn.functional.cross_entropy

    def real_loss() -> float:
        with torch.no_grad():
            return original(trainer.discriminator.classify(real, labels)[1], labels).item()

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append((logits.detach(), target))
        return original(logits, target)

    monkeypatch.setattr("gankit.train.F.cross_entropy", recording)
    before = real_loss()
    for _ in range(30):
        trainer.train_step()
        trainer.step = (trainer.step + 1) % trainer.steps_per_epoch
    # D's head learnt to read real digits (measured 2.31 -> 1.66 in 30 steps); without the auxiliary loss
    # in D's objective the head would get no gradient and keep its first loss exactly
    assert real_loss() < 0.85 * before
    assert len(calls) == 60  # per step: D on real labels, then G on fake labels
    d_call, g_call = calls[-2], calls[-1]
    assert d_call[0].shape == (500, 10) and torch.equal(d_call[1], trainer.labels[trainer.perm[9 * 500 : 10 * 500]])
    assert g_call[0].shape == (500, 10) and not torch.equal(g_call[1], d_call[1])  # argmax(z[:10]), not real labels


def test_keep_best_needs_eval_and_conditional_needs_labels(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep best needs a quality measurement"):
        build_config("seed", keep_best=True)
    for labelled in ({"num_classes": 10}, {"latent_labels": 10}):
        with pytest.raises(DataError, match="only the bundled mnist-5k has labels"):
            train(build_config("seed", data=str(tiny_data), device="cpu", **labelled), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="latent labels are for an unconditional generator"):
        build_config("seed", latent_labels=10, num_classes=10)
    with pytest.raises(ConfigError, match="auxiliary classifier needs labels"):
        build_config("seed", aux_weight=1.0)
    with pytest.raises(ConfigError, match="num_classes must be at least 10"):
        train(build_config("seed", num_classes=4, device="cpu", **SMALL_NETS), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="batch size 64 is not a multiple of the pack size 3"):
        train(build_config("seed", data=str(tiny_data), pack=3, device="cpu"), tmp_path, progress=False)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"augment": {"translate": 1.0}}, "never augments"),
        ({"augment_p": 0.5}, "without augmentations"),
        ({"label_smoothing": 0.6}, "label smoothing"),
        ({"d_lr": 0.0}, "d_lr must be positive"),
        ({"r1": -1.0}, "r1, lecam and aux weights"),
        ({"aux_weight": float("inf"), "latent_labels": 10}, "r1, lecam and aux weights"),
        ({"eval_samples": 5}, "at least 10"),
        ({"minibatch_std": 1}, "group size >= 2"),
        ({"d_dropout": 1.0}, "dropout must be in"),
        ({"d_condition": "add"}, "condition must be one of"),
        ({"num_classes": -1}, "num_classes must be a whole number"),
    ],
)
def test_bad_recipe_options_raise_config_error(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config("seed", **options)


def test_cli_train_takes_every_option_and_a_preset(tiny_data: Path, tmp_path: Path) -> None:
    args = [
        "train", "--out", str(tmp_path), "--data", str(tiny_data), "--epochs", "1", "--device", "cpu",
        "--g-hidden", "32", "48", "--d-hidden", "40", "24", "--d-lr", "3e-4", "--pack", "2", "--minibatch-std", "4",
        "--d-dropout", "0.2", "--label-smoothing", "0.1", "--r1", "1", "--r1-every", "4", "--lecam", "0.3",
        "--augment", "translate,ink=0.3", "--augment-p", "0.1", "--ada-target", "0.5", "--eval-every", "1",
        "--eval-samples", "100", "--keep-best",
    ]  # fmt: skip
    assert main(args) == 0
    training = json.loads(read_generator_file(tmp_path / GENERATOR_FILE)[2]["training"])
    assert training["augment"] == {"translate": 1.0, "ink": 0.3} and training["d_lr"] == 3e-4
    assert (training["r1"], training["r1_every"], training["lecam"], training["ada_target"]) == (1.0, 4, 0.3, 0.5)
    assert training["discriminator"]["pack"] == 2 and training["discriminator"]["minibatch_std"] == 4
    assert training["betas"] == [0.9, 0.999] and (tmp_path / BEST_FILE).is_file()  # the seed preset's betas


@pytest.mark.parametrize(
    "args, message",
    [
        (["--augment", "rotate"], "unknown augmentation 'rotate'"),
        (["--keep-best"], "keep best needs a quality measurement"),
        (["--num-classes", "10"], "only the bundled mnist-5k has labels"),
    ],
)
def test_cli_train_errors_are_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["train", "--out", str(tmp_path), "--data", str(tiny_data), "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit train: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("preset", ["mnist", "mnist-conditional"])
def test_flat_options_gives_a_saved_recipe_back_as_flags(preset: str) -> None:
    """flat_options inverts build_config: the options it reads off a saved config rebuild that config, and hold
    only what differs from the seed's defaults (D's classes, derived from G's or latent labels, are no option)."""
    from dataclasses import asdict

    from gankit.training.presets import flat_options

    def saved(config: TrainConfig) -> dict:
        return json.loads(json.dumps(asdict(config)))

    for config in (build_config(preset), build_config(preset, pack=2, seed=4)):
        options = flat_options(saved(config))
        assert saved(build_config("seed", **options)) == saved(config)
        assert "d_condition" not in options  # projection: the default, so not an option given
        assert options.get("pack") == (2 if config.discriminator.pack == 2 else None)


def test_trainer_leaves_the_callers_config_as_given(tmp_path):
    """The trainer fits the model configs to the data (image shape, D's classes) in a copy of its own."""
    config = TrainConfig(epochs=1, batch_size=64, data="mnist-5k", latent_labels=10)
    given = copy.deepcopy(config)
    trainer = Trainer(config, tmp_path / "run")
    assert config == given
    assert trainer.config.discriminator.num_classes == 10 and config.discriminator.num_classes == 0


def test_train_into_a_finished_run_is_refused_and_force_replaces_it_whole(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, 2: train without --resume into a finished run once replaced its files silently and kept its old
    grids; now it is refused in one line (nothing touched), and --force leaves only the new run's files."""
    train(_config(tiny_data, 2), tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    base = ["train", "--out", str(tmp_path), "--data", str(tiny_data), "--device", "cpu", "--batch-size", "64"]
    assert main([*base, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit train: error: ") and "already holds a training run" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert main([*base, "--epochs", "1", "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_0001.png"]
    assert load_state(tmp_path / STATE_FILE)["epoch"] == 1
    assert capsys.readouterr().out.startswith("done: 1 epoch; ")


def test_an_interruption_mid_epoch_says_what_was_saved(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, 13: 'interrupted, saved: 0 epochs' after a mid-epoch save; now the steps are said too."""
    _interrupt_after(monkeypatch, 2)
    result = train(_config(tiny_data, 1), tmp_path, progress=False)
    assert result.interrupted and result.describe() == "0 epochs and 2 steps"


def test_train_quiet_and_not_a_terminal_draw_no_progress_bar(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, 13: train's bars flooded logs when stdout is not a terminal (pytest's capture is not one)."""
    base = ["train", "--data", str(tiny_data), "--device", "cpu", "--epochs", "1"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "step/s" not in captured.err and "it/s" not in captured.err and "%|" not in captured.err


def test_train_out_under_a_regular_file_is_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, 8: --out under a regular file (as on a read-only file system) was a traceback with exit 1."""
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    assert main(["train", "--out", str(out), "--data", str(tiny_data), "--device", "cpu", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit train: error: cannot write --out") and err.count("\n") == 1
