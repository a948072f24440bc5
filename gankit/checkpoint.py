"""Safe on-disk formats.

- Generator: one ``.safetensors`` file; its metadata header holds ``format`` = ``gankit.generator``,
  the generator config (JSON), the gankit version and the training metadata (JSON).
- Training state (discriminator, optimizers, RNG, progress): a ``torch.save`` file of tensors and
  plain containers, read back with ``torch.load(weights_only=True)`` so no pickle code ever runs.

Every write goes to a temporary file in the same folder and is renamed into place, so a crash never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gankit.config import GeneratorConfig
from gankit.errors import CheckpointError, ConfigError
from gankit.io import atomic_path, sha256_of
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.version import __version__

FORMAT = "gankit.generator"
PRETRAINED = Path(__file__).parent / "pretrained" / "generator.safetensors"
PRETRAINED_CONDITIONAL = Path(__file__).parent / "pretrained" / "generator_conditional.safetensors"
# Names a model argument may give instead of a path (a file of that name in the working folder wins).
BUNDLED = {"unconditional": PRETRAINED, "conditional": PRETRAINED_CONDITIONAL}


def model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """A model argument as a path: None is the bundled generator, the name of a bundled generator (``BUNDLED``)
    its file, anything else a path. Every command and API resolves its model argument here."""
    if model is None:
        return PRETRAINED
    text = os.fspath(model)
    return BUNDLED[text] if text in BUNDLED and not Path(text).exists() else Path(text)


def require_file(path: str | os.PathLike[str], what: str = "checkpoint") -> Path:
    """``path`` when it is a regular file; CheckpointError saying what it is otherwise (missing, a folder, a FIFO
    or a device: nothing gankit reads a model from)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{path}: no such {what} file")
    kind = "a folder" if path.is_dir() else "not a regular file (a pipe, socket or device)"
    raise CheckpointError(f"{path}: {kind}; give a {what} file")


def save_generator(path: str | os.PathLike[str], generator: Generator, training: dict[str, Any] | None = None) -> Path:
    """Write ``generator`` (weights as float32) and its config to ``path`` atomically."""
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in generator.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "gankit_version": __version__,
        "config": generator.config.to_json(),
        "training": json.dumps(training or {}, sort_keys=True),
        "noise": NOISE_NAME,  # the noise its training grids and quality numbers were made with
    }
    with atomic_path(path, durable=True) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_generator_file(
    path: str | os.PathLike[str],
) -> tuple[GeneratorConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Read and check a generator file: (config, float32 tensors, raw metadata). Raises CheckpointError."""
    path = require_file(path, "checkpoint")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a gankit generator (metadata 'format' is {metadata.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        config = GeneratorConfig.from_json(metadata["config"])
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{path}: missing or invalid generator config in metadata: {exc}") from exc
    try:
        with torch.device("meta"):  # the shapes the config claims, without allocating them
            expected = Generator(config).state_dict()
    except (RuntimeError, ValueError, OverflowError) as exc:  # sizes whose byte count overflows
        raise CheckpointError(f"{path}: its config ({config.describe()}) claims layers no model can have") from exc
    if set(tensors) != set(expected):
        raise CheckpointError(f"{path}: tensor names {sorted(tensors)} do not match the config's {sorted(expected)}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}, the config needs {tuple(expected[name].shape)}"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{path}: tensor {name} is {tensor.dtype}, not floating-point weights")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or inf values")
    return config, tensors, metadata


def load_generator(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator file (default: the bundled pretrained one), in eval mode, on ``device``."""
    config, tensors, _ = read_generator_file(model_path(path))
    generator = Generator(config)
    generator.load_state_dict(tensors)
    return generator.to(device).eval()


def generator_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``gankit info`` prints: config, parameter count, metadata and checksum."""
    config, _, metadata = read_generator_file(path)
    try:
        training = json.loads(metadata.get("training", "{}"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: metadata 'training' is not valid JSON: {exc}") from exc
    return {
        "path": str(path),
        "sha256": sha256_of(path),
        "config": json.loads(config.to_json()),
        "parameters": config.parameter_count,
        "flops_per_sample": config.flops_per_sample,
        "gankit_version": metadata.get("gankit_version"),
        "noise": metadata.get("noise", "philox4x32-10/tl.randn/v1 (saved before noise versions)"),
        "training": training,
    }


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts only) atomically."""
    with atomic_path(path, durable=True) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training-state file without unpickling code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such training-state file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt or foreign files
        if isinstance(exc, pickle.UnpicklingError):  # weights_only refused what the pickle asked for
            reason = "it holds something other than tensors and plain containers; refused, nothing was run"
        else:  # the first line only: some of torch's messages span many lines, and the CLI prints one
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or ['no detail'])[0]}"
        raise CheckpointError(
            f"{path}: not a readable gankit training state (truncated, corrupt or foreign): {reason}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != "gankit.train_state":
        found = f"a dict with 'format' {state.get('format')!r}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a gankit training state (holds {found})")
    return state
