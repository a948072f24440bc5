"""Any model argument -> what gankit runs: the one loader every command uses (``load``, a ``LoadedModel``).

- A gankit checkpoint (``.safetensors`` whose metadata says ``gankit.generator``): read as it is.
- A state dict from elsewhere: a ``.safetensors`` file, or a ``torch.save`` file (``.pt``, ``.pth``, any
  other name) read with ``torch.load(weights_only=True)`` only, so nothing in it ever runs. A file that asks
  to run code or to build objects other than tensors is refused with one line; a whole pickled module
  (``torch.save(model)``) is recognised by its ``torch.nn.modules`` classes and refused with how to save its
  ``state_dict()`` instead. Converted with ``gankit.models.state_dict`` and the ``ImportOptions``.
- ``.onnx``: an ``OnnxGraph`` (a gankit export, or a generator graph made elsewhere), for the ONNX backends.

A conversion says so through ``log`` ("converted G.pth (...) on the fly; ..."); ``import_file`` saves the
result as a gankit checkpoint so that later runs skip it.

A gankit checkpoint and an ONNX graph are read without torch (safetensors' NumPy view, the onnx package): the
Generator, and torch with it, is built only when a torch path asks for it (``LoadedModel.generator``).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open

from gankit.checkpoint import (
    FORMAT,
    describe_generator,
    generator_arrays,
    generator_digest,
    model_path,
    read_generator_arrays,
    require_file,
    save_generator,
    weights_digest,
)
from gankit.config import SEED_IMAGE_SHAPE, GeneratorConfig, OnnxGeneratorConfig
from gankit.errors import CheckpointError, ConfigError, ConversionError
from gankit.io import sha256_of
from gankit.models.options import ONNX_OPTIONS, STATE_DICT_OPTIONS, ImportOptions

if TYPE_CHECKING:  # torch and onnx are imported only when a file of their kind is read
    import torch

    from gankit.model import Generator
    from gankit.onnx.graph import OnnxGraph

FLAGS = {field.name: "--" + field.name.replace("_", "-") for field in fields(ImportOptions)}  # as the CLI spells them
SAVE_STATE_DICT = "torch.save(generator.state_dict(), 'G.pth')"


@dataclass
class Converted:
    """A generator converted from a foreign file: the Generator, the file's kind and what was found in it."""

    generator: Generator
    kind: str
    summary: str

    def notice(self, path: Path) -> str:
        what = f"{self.kind}: {self.summary}"
        return f"converted {path.name} ({what}) on the fly; save it with gankit import to skip this"


def is_gankit_checkpoint(path: Path) -> bool:
    """True for a ``.safetensors`` file whose metadata says it is a gankit generator."""
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="np") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return False  # read_generator_file or read_tensors then says what is wrong with it


def _refuse_options(path: Path, options: ImportOptions, allowed: tuple[str, ...], why: str) -> None:
    extra = [FLAGS[name] for name in options.given() if name not in allowed]
    if extra:
        raise ConfigError(f"{path.name} {why}: {', '.join(extra)} does not apply to it")


def _refusal(path: Path, exc: pickle.UnpicklingError) -> str:
    """The one line for a torch.save file that weights_only refused: a whole module, or code/other objects."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))  # scans, runs nothing
    except Exception:  # the legacy (non-zip) format: the error names the first global it met
        names = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if not names:  # nothing asked for: the bytes are no pickle at all (random, truncated, another format)
            return f"{path}: not a readable torch.save file (truncated, corrupt or not a checkpoint)"
    if any(name.startswith("torch.nn.modules.") for name in names):
        return (
            f"{path}: a whole pickled module (torch.save(model)), which only loads by running code; refused, nothing "
            f"of it was run. Where its class is defined, load it and save its weights: {SAVE_STATE_DICT}"
        )
    found = ", ".join(names[:4]) or "objects weights_only does not allow"
    return (
        f"{path}: asks to run code or build objects other than tensors when loaded ({found}); refused, nothing of "
        f"it was run. gankit reads state dicts (a whole model: where its class is defined, {SAVE_STATE_DICT})"
    )


def _torch_load(path: Path) -> object:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_refusal(path, exc)) from None
    except Exception as exc:  # torch raises many unrelated types for truncated or foreign files
        first = (str(exc).strip().splitlines() or ["no detail"])[0].split(". ")[0]  # torch's first sentence
        raise CheckpointError(
            f"{path}: not a readable torch.save file (truncated or corrupt?): {type(exc).__name__}: {first}"
        ) from exc


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(tensor name -> tensor, kind) of a state-dict file; CheckpointError with one line for anything else."""
    import torch

    from gankit.models.state_dict import natural_key

    require_file(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                tensors = {name: handle.get_tensor(name) for name in sorted(handle.keys(), key=natural_key)}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
        kind = "safetensors state dict"
    else:
        loaded = _torch_load(path)
        if not isinstance(loaded, dict):
            raise CheckpointError(
                f"{path}: holds a Python {type(loaded).__name__}, not a state dict (tensor names -> tensors): "
                f"{SAVE_STATE_DICT}"
            )
        nested = [str(key) for key, value in loaded.items() if isinstance(value, dict)]
        if nested:
            raise CheckpointError(
                f"{path}: holds dicts under {', '.join(nested)} (a training checkpoint?), not one generator's state "
                f"dict: save the generator's alone, e.g. torch.save(checkpoint[{nested[0]!r}], 'G.pth')"
            )
        for key, value in loaded.items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(
                    f"{path}: key {key!r} holds a Python {type(value).__name__}, not a tensor: a state dict maps "
                    f"names to tensors ({SAVE_STATE_DICT})"
                )
        tensors, kind = dict(loaded), "torch.save state dict"
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors, kind


def convert(path: Path, options: ImportOptions) -> Converted:
    """A foreign state-dict file -> Generator (float32, eval mode), with the activations and image shape of
    ``options`` (the seed's where not given)."""
    from gankit.models.chain import build_generator, summary
    from gankit.models.state_dict import linears_from_state_dict

    _refuse_options(path, options, STATE_DICT_OPTIONS, "is a state dict (its output range is its activation's)")
    tensors, kind = read_tensors(path)
    try:
        linears = linears_from_state_dict(tensors, options.resolved_bn_eps)
        generator = build_generator(
            linears,
            options.hidden_slopes(len(linears) - 1),
            options.resolved_output_act,
            options.image_shape or SEED_IMAGE_SHAPE,
        )
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from None
    return Converted(generator, kind, summary(linears, generator.config))


@dataclass(eq=False)
class ModelFile:
    """A model file as given: its path, and its sha256, computed once, on first use (a job hashes its model
    once: the manifest, ``--backend auto``'s cached choice and the lanes' measured split all ask this)."""

    path: Path

    @functools.cached_property
    def sha256(self) -> str:
        return sha256_of(self.path)


@dataclass(eq=False)
class LoadedModel(ModelFile):
    """A model argument, read once: ``kind`` is "gankit" (a gankit checkpoint), "foreign" (a state dict converted
    on the fly) or "onnx" (a graph, for the ONNX backends); ``config`` what it makes. A gankit checkpoint holds
    its weights as arrays (``arrays``) beside its raw ``metadata``, an ONNX file its ``graph``, both read without
    torch; ``generator()`` builds the torch module when a path needs one. ``sha256`` is the file's, computed on
    first use."""

    kind: str
    config: GeneratorConfig | OnnxGeneratorConfig
    graph: OnnxGraph | None = None
    arrays: dict[str, np.ndarray] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    converted: Converted | None = None
    _generator: Generator | None = field(default=None, repr=False)

    def _refuse_graph(self) -> None:
        if self.kind == "onnx":
            raise CheckpointError(
                f"{self.path}: an ONNX model has no weights to export or check against; give a checkpoint"
            )

    def generator(self) -> Generator:
        """The Generator (eval mode, CPU), built once; CheckpointError for an ONNX graph, which has no weights."""
        self._refuse_graph()
        if self._generator is None:
            if self.converted is not None:
                self._generator = self.converted.generator
            else:
                import torch

                from gankit.model import Generator

                generator = Generator(self.config)
                generator.load_state_dict({name: torch.from_numpy(a).float() for name, a in self.arrays.items()})
                self._generator = generator.eval()
        return self._generator

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """The weights as float32 arrays by state-dict name (a gankit checkpoint's without torch); CheckpointError
        for an ONNX graph."""
        self._refuse_graph()
        if self.arrays is None:
            return generator_arrays(self.generator())
        return {name: np.asarray(array, dtype=np.float32) for name, array in self.arrays.items()}

    def weights_digest(self) -> str:
        """``weights_digest`` of this model (a gankit checkpoint's without torch)."""
        if self.kind == "onnx":
            raise CheckpointError(f"{self.path}: an ONNX model is exported already")
        if self.arrays is not None:
            return weights_digest(self.config, self.arrays)
        return generator_digest(self.generator())

    def info(self) -> dict[str, Any]:
        """What ``gankit info`` prints: a checkpoint's config and metadata, an ONNX file's metadata or interface,
        or what a foreign checkpoint converts to."""
        if self.kind == "onnx":
            from gankit.onnx.graph import describe_graph

            return describe_graph(self.graph)
        if self.kind == "gankit":  # read already: its config and metadata, not the file again
            return describe_generator(self.path, self.config, self.metadata)
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "converted": "on the fly (gankit import saves it as a gankit checkpoint)",
            "layers": self.config.describe(),
            "config": json.loads(self.config.to_json()),
            "parameters": self.config.parameter_count,
            "flops_per_sample": self.config.flops_per_sample,
        }


def load(
    model: str | os.PathLike[str] | None = None,
    options: ImportOptions | None = None,
    log: Callable[[str], None] = print,
) -> LoadedModel:
    """The model argument ``model`` (None: the bundled generator; a bundled name; a file of any kind in the module
    docstring), read once. ``log`` gets the one line saying that a foreign file was converted or is run."""
    path, options = model_path(model), options or ImportOptions()
    if path.suffix == ".onnx":
        from gankit.onnx.graph import read_graph

        _refuse_options(path, options, ONNX_OPTIONS, "is an ONNX graph (its layers are inside it)")
        graph = read_graph(path, options.image_shape, options.output_range)
        if graph.foreign:
            low, high = graph.output_range
            log(
                f"running {path.name}, an ONNX generator made elsewhere: input '{graph.input_name}' "
                f"[batch, {graph.config.latent_dim}] -> output '{graph.output_name}' as {graph.config.image_shape}, "
                f"range [{low:g}, {high:g}]" + (" mapped to [-1, 1] (2y - 1)" if low == 0 else "")
            )
        return LoadedModel(path, "onnx", graph.config, graph=graph)
    if is_gankit_checkpoint(path):
        _refuse_options(path, options, (), "is a gankit generator (its config is in the file)")
        config, arrays, metadata = read_generator_arrays(path)
        return LoadedModel(path, "gankit", config, arrays=arrays, metadata=metadata)
    converted = convert(path, options)
    log(converted.notice(path))
    return LoadedModel(path, "foreign", converted.generator.config, converted=converted)


def load_model(
    path: str | os.PathLike[str], options: ImportOptions | None = None, log: Callable[[str], None] = print
) -> Generator | OnnxGraph:
    """What ``load`` reads, as the runnable thing itself: the Generator (eval mode, CPU), or the OnnxGraph."""
    loaded = load(path, options, log)
    return loaded.graph if loaded.kind == "onnx" else loaded.generator()


def load_checkpoint(
    path: str | os.PathLike[str], options: ImportOptions | None = None, log: Callable[[str], None] = print
) -> Generator:
    """The Generator of a checkpoint, for commands that need the weights (export, validate): ONNX is refused."""
    return load(path, options, log).generator()


@dataclass
class ImportResult:
    out: Path
    generator: Generator
    description: str


def import_file(
    src: str | os.PathLike[str], out: str | os.PathLike[str], options: ImportOptions | None = None
) -> ImportResult:
    """Convert ``src`` (any checkpoint ``load_model`` reads, not ONNX) and save it as a gankit checkpoint ``out``.

    ``out`` is written atomically, and only once the conversion succeeded; its metadata records the source
    (path, sha256, kind) and the options."""
    src, out, options = Path(src), Path(out), options or ImportOptions()
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors (got {out})")
    if src.suffix == ".onnx":
        raise ConfigError(
            f"{src} is an ONNX graph: gankit import converts checkpoints; sample, bench and eval run the .onnx directly"
        )
    loaded = load(src, options, log=lambda line: None)
    generator = loaded.generator()
    if loaded.kind == "gankit":
        training = json.loads(loaded.metadata.get("training", "{}"))
        description = "a gankit generator, copied"
    else:
        description = f"{loaded.converted.kind}: {loaded.converted.summary}"
        given = {name: value for name, value in asdict(options).items() if value is not None}
        training = {
            "imported": {"source": str(src), "source_sha256": loaded.sha256, "kind": description, "options": given}
        }
    save_generator(out, generator, training=training)
    return ImportResult(out, generator, description)


def model_info(
    path: str | os.PathLike[str], options: ImportOptions | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """What ``gankit info`` prints for any generator file (``LoadedModel.info``)."""
    return load(path, options, log).info()
