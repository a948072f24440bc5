"""A class-conditional generator through every path: the same image for (seed, index, label) on every backend
and in the exported ONNX graph, labels files beside ``gankit sample``'s shards, resume, GeneratedDataset.

Tolerance (fp32 backends), as in tests/test_imported_backends.py and tests/test_backend_openvino.py: the parity
rule of ``gankit.onnx.parity``: each backend's images are held, against the generator's own float64 images, to
3x the error PyTorch's own fp32 forward has on the same z and labels (never below 8 fp32 epsilons). uint8
shards: within one level of the float64 reference rounded (fp32 values a few ulps apart round differently only
next to a half level, tests/test_backend_triton.py).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gankit import GeneratedDataset
from gankit.backends import create_backend
from gankit.checkpoint import save_generator
from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.export import export, validate
from gankit.labels import BALANCED, LabelError, LabelSpec
from gankit.model import Generator
from gankit.noise import noise
from gankit.onnx.graph import read_graph
from gankit.onnx.parity import FP32_FLOOR, FP32_HEADROOM
from gankit.pixels import grid, to_uint8

ROOT = Path(__file__).resolve().parents[1]
CONDITIONAL = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10), num_classes=10)
BACKENDS = ("eager", "compile", "onnxruntime", "openvino", "triton")
QUIET = {"log": lambda line: None}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def conditional() -> Generator:
    torch.manual_seed(2024)
    return Generator(CONDITIONAL).eval()


@pytest.fixture
def model_file(tmp_path: Path, conditional: Generator) -> Path:
    return save_generator(tmp_path / "conditional.safetensors", conditional)


def reference(generator: Generator, z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(float64 images of ``generator`` on z and labels; the parity rule's fp32 tolerance on them)."""
    with torch.no_grad():
        exact = copy.deepcopy(generator).double()(z.double(), labels)
        own = generator(z, labels).double()
    return exact, max(FP32_FLOOR, FP32_HEADROOM * (own - exact).abs().max().item())


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_gives_the_image_of_seed_index_and_label(conditional: Generator, name: str) -> None:
    backend = create_backend(name, conditional, device="cpu")
    z = noise(5, 3, 30, CONDITIONAL.latent_dim)
    for spec in (BALANCED, LabelSpec("digit", 7)):
        exact, tolerance = reference(conditional, z, spec.labels(5, 3, 30, 10))
        images = backend.generate_seeded(5, 3, 30, labels=spec)
        assert (images.double() - exact).abs().max().item() <= tolerance, (name, spec)
    # None is balanced; the label changes the image of the same z
    assert torch.equal(backend.generate_seeded(5, 3, 30), backend.generate_seeded(5, 3, 30, labels=BALANCED))
    sevens, twos = (backend.generate_seeded(5, 3, 30, labels=LabelSpec("digit", d)) for d in (7, 2))
    assert (sevens - twos).abs().amax(dim=(1, 2, 3)).min().item() > 100 * tolerance


@pytest.mark.parametrize("name", ["eager", "onnxruntime"])
def test_labels_must_fit_the_generator(conditional: Generator, small_generator: Generator, name: str) -> None:
    backend = create_backend(name, conditional, device="cpu")
    z = noise(0, 0, 4, CONDITIONAL.latent_dim)
    with pytest.raises(LabelError, match="conditional on 10 classes"):
        backend.generate(z)
    with pytest.raises(LabelError, match="in 0..9"):
        backend.generate(z, labels=torch.tensor([0, 1, 2, 10]))
    with pytest.raises(LabelError, match="out of range"):
        backend.generate_seeded(0, 0, 4, labels=LabelSpec("digit", 10))
    plain = create_backend(name, small_generator, device="cpu")
    with pytest.raises(LabelError, match="unconditional"):
        plain.generate_seeded(0, 0, 4, labels=LabelSpec("digit", 1))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_export_takes_a_label_input_and_passes_parity_with_labels(
    tmp_path: Path, model_file: Path, precision: str
) -> None:
    result = export(model_file, tmp_path / f"c-{precision}.onnx", precision=precision, **QUIET)
    model = onnx.load(str(result.path))
    inputs = {value.name: value.type.tensor_type for value in model.graph.input}
    assert inputs["label"].elem_type == onnx.TensorProto.INT64 and len(inputs["label"].shape.dim) == 1
    assert json.loads(read_graph(result.path).metadata["gankit_config"])["num_classes"] == 10
    assert read_graph(result.path).label_name == "label"
    assert result.report.passed and all(case.seed >= result.report.seed for case in result.report.cases)


def test_parity_checks_the_labels(tmp_path: Path, model_file: Path, conditional: Generator) -> None:
    """A graph whose class_bias is off by a little fails the fp32 gate: the labels' path is really compared."""
    result = export(model_file, tmp_path / "c.onnx", **QUIET)
    replayed = validate(result.path, model_file, seed=result.report.seed, **QUIET)
    assert [c.max_abs for c in replayed.cases] == [c.max_abs for c in result.report.cases]  # the seed replays
    other = copy.deepcopy(conditional)
    with torch.no_grad():
        other.class_bias[3] += 1e-3
    with pytest.raises(ExportError, match="parity check FAILED for fp32"):
        validate(result.path, save_generator(tmp_path / "other.safetensors", other), **QUIET)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gankit", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_sample_digit_writes_labels_files_and_the_images_of_that_label(
    tmp_path: Path, model_file: Path, conditional: Generator
) -> None:
    common = ["--n", "300", "--shard-size", "128", "--batch-size", "50", "--seed", "4", "--quiet"]
    for digit in ("7", "2"):
        out = tmp_path / f"d{digit}"
        result = run_cli("sample", str(model_file), "--digit", digit, "--out", str(out), *common)
        assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "d7" / "manifest.json").read_text())
    assert manifest["job"]["labels"] == {"kind": "digit", "digit": 7}
    for entry in manifest["shards"]:
        labels_file = tmp_path / "d7" / entry["labels"]["file"]
        labels = np.load(labels_file)
        assert labels.dtype == np.int64 and labels.shape == (entry["count"],) and (labels == 7).all()
        data = labels_file.read_bytes()
        assert entry["labels"]["bytes"] == len(data) and entry["labels"]["crc32"] == f"{zlib.crc32(data):08x}"
    sevens = np.concatenate([np.load(p) for p in sorted((tmp_path / "d7").glob("shard_?????.npy"))])
    twos = np.concatenate([np.load(p) for p in sorted((tmp_path / "d2").glob("shard_?????.npy"))])
    exact, _ = reference(conditional, noise(4, 0, 300, CONDITIONAL.latent_dim), torch.full((300,), 7))
    assert np.abs(sevens.astype(int) - to_uint8(exact).numpy().astype(int)).max() <= 1
    assert (sevens != twos).reshape(300, -1).any(1).all()  # the same z, another label: another image


def test_sample_balanced_is_the_default_and_resume_refuses_another_spec(tmp_path: Path, model_file: Path) -> None:
    out = tmp_path / "run"
    common = ["--n", "200", "--shard-size", "64", "--backend", "eager", "--seed", "3", "--out", str(out), "--quiet"]
    assert run_cli("sample", str(model_file), *common).returncode == 0
    assert json.loads((out / "manifest.json").read_text())["job"]["labels"] == {"kind": "balanced", "digit": None}
    labels = np.concatenate([np.load(p) for p in sorted(out.glob("shard_*.labels.npy"))])
    assert labels.tolist() == [(i + 3) % 10 for i in range(200)]
    assert run_cli("sample", str(model_file), *common, "--labels", "balanced", "--resume").returncode == 0
    refused = run_cli("sample", str(model_file), *common, "--digit", "1", "--resume")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"gankit sample: error: {out} holds a run with another labels ({{'digit': None, 'kind': 'balanced'}}, now "
        "{'kind': 'digit', 'digit': 1}); resume refuses to mix them: use the same options or another --out"
    ]


def test_unconditional_generator_refuses_digit_in_one_line(tmp_path: Path, small_generator: Generator) -> None:
    model = save_generator(tmp_path / "plain.safetensors", small_generator)
    for flags, spec in ((["--digit", "7"], "digit 7"), (["--labels", "balanced"], "balanced")):
        result = run_cli("sample", str(model), *flags, "--backend", "eager", "--out", str(tmp_path / "o.png"))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"gankit sample: error: this generator is unconditional: it takes no labels (got {spec})"
        ]


def test_balanced_grid_has_a_row_a_digit(tmp_path: Path, model_file: Path, conditional: Generator) -> None:
    from PIL import Image

    out = tmp_path / "grid.png"
    assert (
        run_cli(
            "sample", str(model_file), "--n", "100", "--seed", "6", "--backend", "eager", "--out", str(out)
        ).returncode
        == 0
    )
    backend = create_backend("eager", conditional)
    images = backend.generate_range(6, 0, 100, output="uint8")
    by_digit = torch.cat([images[BALANCED.labels(6, 0, 100, 10) == d] for d in range(10)])
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), grid(by_digit, nrow=10))


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_generated_dataset_labels_equal_the_samples(tmp_path: Path, model_file: Path, backend: str) -> None:
    options = dict(seed=3, start=37, n=300, batch_size=64, shard_size=128)
    from gankit.sampling.engine import sample
    from gankit.sampling.job import SampleJob

    job = SampleJob(tmp_path / "s", model=model_file, backend=backend, labels=LabelSpec("digit", 5), **options)
    sample(job, progress=False, **QUIET)
    shards = np.concatenate([np.load(p) for p in sorted((tmp_path / "s").glob("shard_?????.npy"))])
    shard_labels = np.concatenate([np.load(p) for p in sorted((tmp_path / "s").glob("shard_*.labels.npy"))])
    dataset = GeneratedDataset(model_file, backend=backend, labels=LabelSpec("digit", 5), **options)
    batches = list(dataset)
    assert all(len(batch) == 3 for batch in batches)
    assert np.array_equal(torch.cat([b[0] for b in batches]).numpy(), shards)
    assert np.array_equal(torch.cat([b[1] for b in batches]).numpy(), shard_labels)
    assert torch.cat([b[2] for b in batches]).tolist() == list(range(37, 337))
    balanced = GeneratedDataset(model_file, backend=backend, **options)
    _, labels, indices = next(iter(balanced))
    assert labels.tolist() == [(i + 3) % 10 for i in indices.tolist()]


def test_generated_dataset_refuses_labels_for_an_unconditional_generator(tmp_path: Path, small_generator) -> None:
    model = save_generator(tmp_path / "plain.safetensors", small_generator)
    with pytest.raises(LabelError, match="unconditional"):
        GeneratedDataset(model, backend="eager", labels=BALANCED)
    assert len(next(iter(GeneratedDataset(model, backend="eager", n=10)))) == 2  # (images, indices) as before


def test_triton_per_layer_path_takes_labels_too() -> None:
    """4 Linears do not fit the whole-generator kernel: the per-layer fused kernels gather class_bias in layer 1."""
    torch.manual_seed(31)
    generator = Generator(GeneratorConfig(latent_dim=20, hidden=(48, 80, 64), image_shape=(1, 10, 10), num_classes=10))
    backend = create_backend("triton", generator.eval(), device="cpu")
    assert not backend.whole
    spec = LabelSpec("digit", 4)
    exact, tolerance = reference(generator, noise(2, 0, 40, 20), spec.labels(2, 0, 40, 10))
    assert (backend.generate_seeded(2, 0, 40, labels=spec).double() - exact).abs().max().item() <= tolerance


def test_generated_dataset_of_the_bundled_conditional_generator_by_name() -> None:
    """docs/sampling.md's example: 'conditional' names the bundled file; a digit spec gives that label to every sample,
    and the images are the bundled generator's for those labels."""
    from gankit.checkpoint import PRETRAINED_CONDITIONAL, load_generator

    batches = list(GeneratedDataset("conditional", n=20, batch_size=8, backend="eager", labels=LabelSpec("digit", 7)))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    indices = torch.cat([b[2] for b in batches])
    assert torch.equal(labels, torch.full((20,), 7)) and torch.equal(indices, torch.arange(20))
    generator = load_generator(PRETRAINED_CONDITIONAL).eval()
    with torch.no_grad():
        expected = to_uint8(generator(noise(0, 0, 20, 100), labels))
    assert (images.int() - expected.int()).abs().max() <= 1  # uint8 rounding at a level boundary
