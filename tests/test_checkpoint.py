"""Checkpoints: generator round trip, every kind of bad file -> CheckpointError, safe state files, atomic writes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gankit.checkpoint import (
    FORMAT,
    PRETRAINED,
    atomic_path,
    generator_info,
    load_generator,
    load_state,
    read_generator_file,
    save_generator,
    save_state,
)
from gankit.config import GeneratorConfig
from gankit.errors import CheckpointError
from gankit.model import Generator
from gankit.version import __version__


def _metadata(generator: Generator, **changes: str) -> dict[str, str]:
    metadata = {"format": FORMAT, "gankit_version": __version__, "config": generator.config.to_json(), "training": "{}"}
    metadata.update(changes)
    return {key: value for key, value in metadata.items() if value is not None}


def _tensors(generator: Generator) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone().contiguous() for name, t in generator.state_dict().items()}


def test_generator_round_trip(tmp_path: Path, small_generator: Generator) -> None:
    training = {"data": "mnist-5k", "epochs": 3, "betas": [0.5, 0.999]}
    path = save_generator(tmp_path / "g.safetensors", small_generator, training)
    assert path == tmp_path / "g.safetensors"
    loaded = load_generator(path)
    assert loaded.config == small_generator.config and not loaded.training
    for name, tensor in small_generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    z = torch.randn(4, small_generator.config.latent_dim)
    assert torch.equal(loaded(z), small_generator(z))

    config, tensors, metadata = read_generator_file(path)
    assert config == small_generator.config and set(tensors) == set(small_generator.state_dict())
    assert metadata["format"] == FORMAT and metadata["gankit_version"] == __version__
    assert GeneratorConfig.from_json(metadata["config"]) == small_generator.config
    assert json.loads(metadata["training"]) == training

    info = generator_info(path)
    assert info["config"] == json.loads(small_generator.config.to_json())
    assert (
        info["parameters"]
        == small_generator.config.parameter_count
        == sum(p.numel() for p in small_generator.parameters())
    )
    assert info["training"] == training and info["gankit_version"] == __version__
    assert len(info["sha256"]) == 64 and info["path"] == str(path)


def test_weights_are_stored_as_float32(tmp_path: Path, small_generator: Generator) -> None:
    path = save_generator(tmp_path / "g.safetensors", small_generator.double())
    _, tensors, _ = read_generator_file(path)
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    loaded = load_generator(path)
    for name, tensor in small_generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor.float())


def _bad_checkpoint(folder: Path, kind: str, generator: Generator) -> Path:
    path = folder / f"{kind}.safetensors"
    good = folder / "good.safetensors"
    save_generator(good, generator)
    data = good.read_bytes()
    tensors, metadata = _tensors(generator), _metadata(generator)
    if kind == "missing":
        pass
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt_header":
        path.write_bytes(data[:8] + b"\xff\xfe" * 20 + data[48:])
    elif kind == "corrupt_length":
        path.write_bytes(b"\xff" * 8 + data[8:])
    elif kind == "not_safetensors":
        path.write_text("this is a text file, not a checkpoint\n" * 20)
    elif kind == "no_metadata":
        save_file(tensors, str(path))
    elif kind == "other_format":
        save_file(tensors, str(path), metadata=_metadata(generator, format="someone.else"))
    elif kind == "no_config":
        save_file(tensors, str(path), metadata=_metadata(generator, config=None))
    elif kind == "bad_config":
        save_file(tensors, str(path), metadata=_metadata(generator, config='{"latent_dim": -1}'))
    elif kind == "shape_mismatch":
        tensors["layers.0.weight"] = torch.zeros(generator.layers[0].out_features, generator.layers[0].in_features + 1)
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "config_mismatch":  # right tensors, but the config describes another network
        other = GeneratorConfig(latent_dim=generator.config.latent_dim + 1, hidden=generator.config.hidden)
        save_file(tensors, str(path), metadata={**metadata, "config": other.to_json()})
    elif kind == "wrong_names":
        tensors = {name.replace("layers.", "net."): t for name, t in tensors.items()}
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "missing_tensor":
        del tensors["layers.2.bias"]
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "extra_tensor":
        tensors["layers.3.weight"] = torch.zeros(2, 2)
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "nan_weights":
        tensors["layers.1.bias"][3] = float("nan")
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "directory":
        path.mkdir()
    return path


BAD_CHECKPOINTS = {
    "missing": "no such checkpoint file",
    "empty": "not a readable safetensors file",
    "truncated": "not a readable safetensors file",
    "corrupt_header": "not a readable safetensors file",
    "corrupt_length": "not a readable safetensors file",
    "not_safetensors": "not a readable safetensors file",
    "no_metadata": "not a gankit generator .*'format' is None",
    "other_format": "not a gankit generator .*'someone.else'",
    "no_config": "missing or invalid generator config",
    "bad_config": "missing or invalid generator config",
    "shape_mismatch": r"tensor layers.0.weight has shape \(48, 21\), the config needs \(48, 20\)",
    "config_mismatch": "has shape",
    "wrong_names": "tensor names .*net.0.weight.* do not match .*layers.0.weight",
    "missing_tensor": "tensor names .* do not match",
    "extra_tensor": "tensor names .* do not match",
    "nan_weights": "layers.1.bias holds NaN",
    "directory": "a folder; give a checkpoint file",
}


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_raises_checkpoint_error(tmp_path: Path, small_generator: Generator, kind: str) -> None:
    path = _bad_checkpoint(tmp_path, kind, small_generator)
    for load in (load_generator, generator_info):
        with pytest.raises(CheckpointError, match=BAD_CHECKPOINTS[kind]) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message


def test_info_rejects_unparsable_training_metadata(tmp_path: Path, small_generator: Generator) -> None:
    path = tmp_path / "g.safetensors"
    save_file(_tensors(small_generator), str(path), metadata=_metadata(small_generator, training="{oops"))
    assert load_generator(path).config == small_generator.config  # weights are fine
    with pytest.raises(CheckpointError, match="'training' is not valid JSON"):
        generator_info(path)


# ----------------------------------------------------------------------------- training state


def _state() -> dict:
    return {
        "format": "gankit.train_state",
        "weights": {"w": torch.arange(6.0).reshape(2, 3)},
        "rng": torch.Generator().manual_seed(3).get_state(),
        "epoch": 2,
        "betas": (0.5, 0.999),
        "names": ["a", "b"],
        "nothing": None,
    }


def test_state_round_trip(tmp_path: Path) -> None:
    save_state(tmp_path / "s.pt", _state())
    state = load_state(tmp_path / "s.pt")
    assert torch.equal(state["weights"]["w"], _state()["weights"]["w"])
    assert torch.equal(state["rng"], _state()["rng"])
    assert (state["epoch"], state["betas"], state["names"], state["nothing"]) == (2, (0.5, 0.999), ["a", "b"], None)


class Payload:
    """A custom class: a training-state file holding one must be refused."""

    def __init__(self, marker: str) -> None:
        self.marker = marker


class CodeRunner:
    """Unpickling this would create a folder: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


def _bad_state(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "truncated":
        save_state(folder / "good.pt", _state())
        path.write_bytes((folder / "good.pt").read_bytes()[:300])
    elif kind == "text":
        path.write_text("hello world\n" * 30)
    elif kind == "foreign_list":
        torch.save([torch.zeros(3), 1, 2], path)
    elif kind == "foreign_dict":
        torch.save({"model": {"w": torch.zeros(3)}, "epoch": 1}, path)
    elif kind == "custom_class":
        torch.save({"format": "gankit.train_state", "payload": Payload("x")}, path)
    elif kind == "code":
        torch.save({"format": "gankit.train_state", "payload": CodeRunner(str(folder / "code_ran"))}, path)
    return path


BAD_STATES = {
    "missing": "no such training-state file",
    "empty": "not a readable gankit training state",
    "random_bytes": "not a readable gankit training state",
    "truncated": "not a readable gankit training state",
    "text": "not a readable gankit training state",
    "foreign_list": r"not a gankit training state \(holds list\)",
    "foreign_dict": r"not a gankit training state \(holds a dict with 'format' None\)",
    "custom_class": "holds something other than tensors and plain containers; refused",
    "code": "holds something other than tensors and plain containers; refused",
}


@pytest.mark.parametrize("kind", sorted(BAD_STATES))
def test_bad_state_raises_checkpoint_error(tmp_path: Path, kind: str) -> None:
    path = _bad_state(tmp_path, kind)
    with pytest.raises(CheckpointError, match=BAD_STATES[kind]) as info:
        load_state(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert not (tmp_path / "code_ran").exists()


def test_code_runner_payload_would_run_if_unpickled(tmp_path: Path) -> None:
    """The 'code' case above is a real threat: a plain unpickler does run it (so its refusal means something)."""
    path = _bad_state(tmp_path, "code")
    torch.load(path, weights_only=False)
    assert (tmp_path / "code_ran").is_dir()


# ----------------------------------------------------------------------------- atomic writes


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path, failure: BaseException) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(type(failure)):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_text("half-writ")
            raise failure
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["file.txt"]


def test_atomic_path_replaces_on_success_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _listing(target.parent) == ["file.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def _disk_full(*args: object, **kwargs: object) -> None:
    """Write part of the file, then fail as a full disk does."""
    destination = args[1]
    Path(destination).write_bytes(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_failed_generator_save_keeps_old_checkpoint(
    tmp_path: Path, small_generator: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_generator(tmp_path / "g.safetensors", small_generator)
    before = path.read_bytes()
    monkeypatch.setattr("gankit.checkpoint.save_file", _disk_full)
    with torch.no_grad():
        small_generator.layers[0].bias.add_(1.0)
    with pytest.raises(OSError, match="No space left"):
        save_generator(path, small_generator)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["g.safetensors"]


def test_failed_first_save_leaves_nothing(
    tmp_path: Path, small_generator: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gankit.checkpoint.save_file", _disk_full)
    with pytest.raises(OSError):
        save_generator(tmp_path / "g.safetensors", small_generator)
    assert _listing(tmp_path) == []


def test_failed_state_save_keeps_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_state(tmp_path / "s.pt", _state())
    before = (tmp_path / "s.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError):
        save_state(tmp_path / "s.pt", {**_state(), "epoch": 3})
    assert (tmp_path / "s.pt").read_bytes() == before
    assert _listing(tmp_path) == ["s.pt"]


# ----------------------------------------------------------------------------- the shipped generator


def test_pretrained_generator_loads_with_the_default_config() -> None:
    generator = load_generator()
    assert generator.config == GeneratorConfig()
    _, _, metadata = read_generator_file(PRETRAINED)
    assert metadata["format"] == FORMAT and json.loads(metadata["training"])
    with torch.no_grad():
        images = generator(torch.randn(4, 100))
    assert images.shape == (4, 1, 28, 28) and torch.isfinite(images).all()


def test_a_header_claiming_huge_layers_is_refused_before_allocating(tmp_path: Path) -> None:
    """Issue 22, 4: a small file whose header claims hidden [256, 25000, 25000] once built that model (3.1 GB)
    before comparing shapes; the claimed shapes are now checked on the meta device, nothing allocated."""
    small = Generator(GeneratorConfig(hidden=(8, 8, 8)))
    claim = GeneratorConfig(hidden=(256, 25000, 25000)).to_json()
    path = tmp_path / "liar.safetensors"
    tensors = {name: t.contiguous() for name, t in small.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": claim})
    with pytest.raises(CheckpointError, match="has shape .* the config needs"):
        read_generator_file(path)
    # The peak memory of a fresh process that reads it: torch's allocations are invisible to tracemalloc.
    script = (
        "import sys\n"
        "from gankit.checkpoint import read_generator_file\n"
        "try:\n    read_generator_file(sys.argv[1])\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
        # VmHWM: this process's own peak (getrusage's ru_maxrss keeps the forking parent's peak across exec)
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) * 1024)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=root, capture_output=True, text=True)
    kind, peak = done.stdout.split()
    # The claimed model alone is about 2.6 GB of float32; importing torch and reading 2 KB of tensors is far below 1 GB.
    assert kind == "CheckpointError" and int(peak) < 2**30, done.stderr


def test_integer_tensors_in_a_gankit_file_are_refused(tmp_path: Path) -> None:
    """Issue 22, 11: int64 tensors in a gankit file loaded and gave saturated images (a foreign one is refused)."""

    config = GeneratorConfig(hidden=(8,))
    tensors = {name: t.to(torch.int64).contiguous() for name, t in Generator(config).state_dict().items()}
    save_file(tensors, str(tmp_path / "int.safetensors"), metadata={"format": FORMAT, "config": config.to_json()})
    with pytest.raises(CheckpointError, match="is int64, not floating-point weights"):
        read_generator_file(tmp_path / "int.safetensors")


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_model_that_is_not_a_file_says_what_it_is(tmp_path: Path, kind: str) -> None:
    """Issue 22, 13: a folder or a FIFO given as a model said "no such checkpoint file"."""
    from gankit.models.files import read_tensors

    path = tmp_path / "m.pth"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    said = "a folder" if kind == "folder" else "not a regular file"
    with pytest.raises(CheckpointError, match=said):
        read_generator_file(path)
    with pytest.raises(CheckpointError, match=said):
        read_tensors(path)


def test_random_bytes_as_pth_are_not_called_code(tmp_path: Path) -> None:
    """Issue 22, 13: random bytes as .pth said "asks to run code"; the file is just not a checkpoint."""
    from gankit.models.files import read_tensors

    path = tmp_path / "r.pth"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="not a readable torch.save file") as caught:
        read_tensors(path)
    assert "run code" not in str(caught.value)
