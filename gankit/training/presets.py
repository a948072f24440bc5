"""Named training recipes, and the one place that turns flat option names into a TrainConfig.

``seed`` is the seed's recipe (the TrainConfig defaults). The others are the measured recipes of the
bundled generators (``gankit/pretrained/TRAINING.md``, ablation in ``gankit/pretrained/QUALITY.md``).
Options given explicitly override the preset's.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from gankit.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
}
DESCRIPTIONS = {
    "seed": "the seed's recipe (Adam 2e-4, betas 0.9/0.999, batch 64, nothing else)",
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
