"""Safe on-disk formats.

- Generator: one ``.safetensors`` file; its metadata header holds ``format`` = ``gankit.generator``,
  the generator config (JSON), the gankit version and the training metadata (JSON).
- Training state (discriminator, optimizers, RNG, progress): a ``torch.save`` file of tensors and
  plain containers, read back with ``torch.load(weights_only=True)`` so no pickle code ever runs.

Every write goes to a temporary file in the same folder and is renamed into place, so a crash never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from gankit.config import GeneratorConfig
from gankit.errors import CheckpointError, ConfigError
from gankit.io import atomic_path, sha256_of
from gankit.noise import NOISE_NAME
from gankit.version import __version__

if TYPE_CHECKING:  # a generator file's config, weights and metadata are read without torch
    import torch

    from gankit.model import Generator

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
    arrays = generator_arrays(generator)
    metadata = {
        "format": FORMAT,
        "gankit_version": __version__,
        "config": generator.config.to_json(),
        "training": json.dumps(training or {}, sort_keys=True),
        "noise": NOISE_NAME,  # the noise its training grids and quality numbers were made with
    }
    with atomic_path(path, durable=True) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)  # the same bytes as safetensors.torch writes
    return Path(path)


def state_shapes(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of ``gankit.model.Generator(config)``: its Linear layers, and the
    (num_classes, hidden[0]) class-bias table of a class-conditional one."""
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (fan_in, fan_out) in enumerate(config.layer_sizes):
        shapes[f"layers.{index}.weight"], shapes[f"layers.{index}.bias"] = (fan_out, fan_in), (fan_out,)
    if config.num_classes:
        shapes["class_bias"] = (config.num_classes, config.hidden[0])
    return shapes


def weights_digest(config: GeneratorConfig, weights: dict[str, Any]) -> str:
    """sha256 of a generator's config and float32 weights (name -> array or tensor): all an export depends on, so
    the same model has the same digest whether it comes from a file or from memory."""
    digest = hashlib.sha256(config.to_json().encode())
    for name, weight in sorted(weights.items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(np.asarray(weight, dtype=np.float32)))
    return digest.hexdigest()


def generator_arrays(generator: Generator) -> dict[str, np.ndarray]:
    """A Generator's state dict as float32 arrays on the CPU: the names and values ``read_generator_arrays`` gives
    for its file."""
    return {name: t.detach().cpu().float().contiguous().numpy() for name, t in generator.state_dict().items()}


def generator_digest(generator: Generator) -> str:
    """``weights_digest`` of a Generator in memory (its state dict, on the CPU, as float32)."""
    return weights_digest(generator.config, generator_arrays(generator))


def read_generator_arrays(
    path: str | os.PathLike[str],
) -> tuple[GeneratorConfig, dict[str, np.ndarray], dict[str, str]]:
    """Read and check a generator file without torch: (config, weight arrays, raw metadata). The shapes the
    config claims are compared before anything the size of the model is allocated. Raises CheckpointError."""
    path = require_file(path, "checkpoint")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise CheckpointError(
                    f"{path}: not a gankit generator (metadata 'format' is {metadata.get('format')!r}, expected "
                    f"{FORMAT!r})"
                )
            try:
                config = GeneratorConfig.from_json(metadata["config"])
            except (KeyError, ConfigError) as exc:
                raise CheckpointError(f"{path}: missing or invalid generator config in metadata: {exc}") from exc
            expected = state_shapes(config)  # only numbers: a config claiming a huge model allocates nothing
            names = sorted(handle.keys())
            if set(names) != set(expected):
                raise CheckpointError(f"{path}: tensor names {names} do not match the config's {sorted(expected)}")
            for name in names:
                shape = tuple(handle.get_slice(name).get_shape())
                if shape != expected[name]:
                    raise CheckpointError(f"{path}: tensor {name} has shape {shape}, the config needs {expected[name]}")
            arrays = {name: handle.get_tensor(name) for name in names}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise CheckpointError(f"{path}: tensor {name} is {array.dtype}, not floating-point weights")
        if not np.isfinite(array).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or inf values")
    return config, arrays, metadata


def read_generator_file(
    path: str | os.PathLike[str],
) -> tuple[GeneratorConfig, dict[str, torch.Tensor], dict[str, str]]:
    """``read_generator_arrays`` with the weights as float32 tensors."""
    import torch

    config, arrays, metadata = read_generator_arrays(path)
    return config, {name: torch.from_numpy(array).float() for name, array in arrays.items()}, metadata


def load_generator(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator file (default: the bundled pretrained one), in eval mode, on ``device``."""
    from gankit.model import Generator

    config, tensors, _ = read_generator_file(model_path(path))
    generator = Generator(config)
    generator.load_state_dict(tensors)
    return generator.to(device).eval()


def generator_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``gankit info`` prints: config, parameter count, metadata and checksum."""
    config, _, metadata = read_generator_arrays(path)
    return describe_generator(path, config, metadata)


def describe_generator(
    path: str | os.PathLike[str], config: GeneratorConfig, metadata: dict[str, str]
) -> dict[str, Any]:
    """``generator_info`` of a file already read (its config and raw metadata)."""
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
    import torch

    with atomic_path(path, durable=True) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training-state file without unpickling code (``weights_only=True``)."""
    import torch

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
