"""Named training recipes, and the one place that turns flat option names into a TrainConfig.

``seed`` is the seed's recipe (the TrainConfig defaults). The others are the measured recipes of the
bundled generators (``gankit/pretrained/TRAINING.md``, ablation in ``gankit/pretrained/QUALITY.md``).
Options given explicitly override the preset's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from gankit.errors import ConfigError

_COMMON = {"betas": (0.5, 0.999), "ema": 0.999, "eval_every": 10, "keep_best": True}
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
    "mnist": {**_COMMON, "epochs": 900, "latent_labels": 10, "r1": 10.0},
    "mnist-conditional": {**_COMMON, "epochs": 600, "num_classes": 10, "d_condition": "projection", "r1": 10.0},
}
DESCRIPTIONS = {
    "seed": "the seed's recipe (Adam 2e-4, betas 0.9/0.999, batch 64, nothing else)",
    "mnist": "the bundled generator's: betas 0.5/0.999, EMA 0.999, latent labels 10, R1 10, 900 epochs, "
    "quality every 10 epochs, best kept",
    "mnist-conditional": "the bundled conditional generator's: betas 0.5/0.999, EMA 0.999, 10 classes, "
    "projection D, R1 10, 600 epochs, quality every 10 epochs, best kept",
}

# flat option name -> (which config, its field name)
_GENERATOR = {"latent_dim": "latent_dim", "g_hidden": "hidden", "slope": "slope", "num_classes": "num_classes"}
_DISCRIMINATOR = {
    "d_hidden": "hidden",
    "slope": "slope",
    "num_classes": "num_classes",
    "d_condition": "condition",
    "pack": "pack",
    "minibatch_std": "minibatch_std",
    "d_dropout": "dropout",
}
_TRAIN = {f.name for f in fields(TrainConfig)} - {"generator", "discriminator"}


def build_config(preset: str = "seed", **options: Any) -> TrainConfig:
    """The preset's recipe with ``options`` (flat names; None = not given) on top, as a TrainConfig."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}}
    unknown = set(values) - _TRAIN - set(_GENERATOR) - set(_DISCRIMINATOR)
    if unknown:
        raise ConfigError(f"unknown training options: {', '.join(sorted(unknown))}")
    generator = GeneratorConfig(**{field: values[name] for name, field in _GENERATOR.items() if name in values})
    discriminator = DiscriminatorConfig(
        **{field: values[name] for name, field in _DISCRIMINATOR.items() if name in values}
    )
    train = {name: values[name] for name in _TRAIN if name in values}
    return TrainConfig(**train, generator=generator, discriminator=discriminator)


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A TrainConfig's JSON as flat option names; fields a config written by an older gankit lacks are absent."""
    flat = {name: value for name, value in config.items() if name in _TRAIN and name not in ("data_dir", "device")}
    for name, field in _GENERATOR.items():
        if field in config["generator"]:
            flat.setdefault(name, config["generator"][field])
    for name, field in _DISCRIMINATOR.items():  # num_classes and slope are G's: D's are derived from them
        if field in config["discriminator"]:
            flat.setdefault(name, config["discriminator"][field])
    return flat


def flat_options(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved TrainConfig (its JSON, as in train_state.pt) back as ``build_config``'s flat option names, those at
    the seed's defaults left out (``epochs`` always kept): the recipe a run was trained with, as flags."""
    defaults = _flatten(json.loads(json.dumps(asdict(build_config("seed")))))
    return {name: value for name, value in _flatten(saved).items() if name == "epochs" or value != defaults.get(name)}
