"""Torch only where torch runs: commands that run on onnxruntime or OpenVINO, or only read files, never import it.

Each command runs in a fresh interpreter (``sys.modules`` starts without torch) through ``gankit.cli.main``, which
reports whether torch was imported. The exports the runtimes run are made first, in the test's own cache: the
cache-filling run may import torch (it builds the export); every run after it must not. A torch backend, run the
same way, does import it: the check sees torch when it is there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gankit.checkpoint import generator_digest, load_generator, save_generator, state_shapes
from gankit.config import GeneratorConfig
from gankit.device import cuda_possible, on_gpu
from gankit.model import Generator
from gankit.models import load
from gankit.onnx.cache import cached_export, cached_graph

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "exported" / "generator.onnx"
REPORT = (
    "import sys\n"
    "from gankit.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
    "print('onnx imported:', 'onnx' in sys.modules)\n"
    "print('torch imported:', 'torch' in sys.modules, 'exit', code)\n"
)

pytestmark = pytest.mark.xdist_group("torch-free")  # one warmed cache for the module


def _run(cache: Path, *args: object, line: int = -1) -> str:
    env = {**os.environ, "GANKIT_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", REPORT, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[line]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache holding the fp32 exports of both bundled generators (what onnxruntime and OpenVINO run)."""
    cache = tmp_path_factory.mktemp("torch-free") / "cache"
    out = cache.parent
    for model in ("unconditional", "conditional"):
        _run(cache, "sample", model, "--backend", "onnxruntime", "--format", "grid", "--out", out / f"{model}.png")
    return cache


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["export", "--help"],
        ["validate", "--help"],
        ["sample", "--help"],
        ["info"],
        ["info", "conditional"],
        ["info", SHIPPED],
        ["sample", "--backend", "onnxruntime", "--format", "grid", "--out", "{out}/ort.png"],
        ["sample", "conditional", "--backend", "openvino", "--format", "grid", "--n", "100", "--out", "{out}/ov.png"],
        ["sample", SHIPPED, "--backend", "onnxruntime", "--format", "grid", "--out", "{out}/shipped.png"],
        ["sample", "--backend", "onnxruntime", "--n", "3000", "--shard-size", "1000", "--out", "{out}/ort-run"],
        ["sample", "conditional", "--backend", "openvino", "--n", "2000", "--dtype", "float16", "--out", "{out}/ov"],
    ],
    ids=lambda args: " ".join(str(a).replace(str(ROOT) + "/", "") for a in args),
)
def test_runtime_and_file_commands_never_import_torch(warm_cache: Path, tmp_path: Path, args: list) -> None:
    given = [str(a).replace("{out}", str(tmp_path)) for a in args]
    assert _run(warm_cache, *given) == "torch imported: False exit 0"
    if given[0] == "sample" and given[-1].endswith(".png"):
        assert Path(given[-1]).stat().st_size > 0


@pytest.mark.parametrize("kind", ["unconditional", "conditional"])
def test_validate_never_imports_torch(tmp_path: Path, kind: str) -> None:
    """``gankit validate`` of a gankit export against its gankit checkpoint: the float64 reference is NumPy's and the
    weights are read without torch (``gankit.onnx.parity.Reference``); the report lands, passed."""
    name = "generator.onnx" if kind == "unconditional" else "generator_conditional.onnx"
    copy = tmp_path / name
    copy.write_bytes((ROOT / "exported" / name).read_bytes())
    assert (
        _run(tmp_path / "cache", "validate", copy, "--checkpoint", kind, "--seed", 3) == "torch imported: False exit 0"
    )
    report = json.loads(copy.with_name(copy.stem + ".parity.json").read_text())
    assert report["passed"] and report["seed"] == 3 and len(report["cases"]) == 7


def test_a_default_grid_imports_torch_only_when_auto_picks_a_torch_backend(warm_cache: Path, tmp_path: Path) -> None:
    """``--backend auto`` reads its cached choice without importing a backend: the grid imports torch exactly
    when the choice measured on this CPU is a torch backend (whichever wins here)."""
    env = {**os.environ, "GANKIT_CACHE_DIR": str(warm_cache)}
    command = [sys.executable, "-c", REPORT, "sample", "--format", "grid", "--out"]
    first = subprocess.run([*command, tmp_path / "a.png"], cwd=ROOT, env=env, capture_output=True, text=True)
    chosen = re.search(r"backend auto -> (\w+)", first.stdout).group(1)  # measured now, or cached already
    again = _run(warm_cache, "sample", "--format", "grid", "--out", tmp_path / "b.png")
    torch_backend = chosen in ("eager", "compile", "triton")
    assert again == f"torch imported: {torch_backend} exit 0", (chosen, first.stdout)


def test_no_cuda_driver_means_no_gpu_for_torch() -> None:
    """``device auto`` skips torch only where ``cuda_possible`` is False: torch must agree there is no GPU."""
    import torch

    assert cuda_possible() or not torch.cuda.is_available()
    assert not on_gpu("cpu")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_grid_from_a_cached_export_parses_no_onnx(warm_cache: Path, tmp_path: Path, backend: str) -> None:
    """The cached export's interface is kept beside it (``gankit.onnx.cache.cached_graph``): a run reads that, and
    the onnx package (about 0.5 s to import) is never loaded; a file given by path is parsed, and onnx is seen."""
    grid = ["sample", "--backend", backend, "--format", "grid", "--out"]
    assert _run(warm_cache, *grid, tmp_path / "cached.png", line=-2) == "onnx imported: False"
    assert _run(warm_cache, "info", SHIPPED, line=-2) == "onnx imported: True"


def test_a_graph_record_gives_the_graph_read_from_the_file(tmp_path: Path) -> None:
    import onnx

    from gankit.onnx import graph as graphs

    assert graphs.FLOAT == onnx.TensorProto.FLOAT
    for path in (SHIPPED, ROOT / "exported" / "generator_conditional.onnx"):
        parsed = graphs.read_graph(path)
        assert graphs.graph_from_record(path, graphs.graph_record(parsed)) == parsed
    cached = tmp_path / "g.onnx"
    cached.write_bytes(SHIPPED.read_bytes())
    cached.with_suffix(".graph.json").write_text("{not json")  # a torn record is made again from the file
    assert cached_graph(cached) == graphs.read_graph(cached)
    assert (
        graphs.graph_from_record(cached, json.loads(cached.with_suffix(".graph.json").read_text())).label_name is None
    )


def test_a_torch_backend_is_seen_importing_it(warm_cache: Path, tmp_path: Path) -> None:
    """The twin of the check above: the same report says True where torch runs (eager)."""
    out = tmp_path / "eager.png"
    assert _run(warm_cache, "sample", "--backend", "eager", "--format", "grid", "--out", out) == (
        "torch imported: True exit 0"
    )


@pytest.mark.parametrize(
    "config",
    [GeneratorConfig(), GeneratorConfig(hidden=(8, 16, 32), image_shape=(3, 5, 7), num_classes=4)],
    ids=["seed", "deep-conditional"],
)
def test_state_shapes_are_the_generators(config: GeneratorConfig) -> None:
    """The file reader checks a checkpoint against ``state_shapes`` without building a module: they must agree."""
    assert state_shapes(config) == {name: tuple(t.shape) for name, t in Generator(config).state_dict().items()}


def test_a_checkpoint_and_its_generator_share_one_export(tmp_path: Path, private_cache: Path) -> None:
    """The export cache key of a file read without torch is the key of the same generator in memory."""
    path = save_generator(tmp_path / "g.safetensors", Generator(GeneratorConfig(hidden=(16,))).eval())
    loaded = load(path)
    assert loaded.kind == "gankit" and loaded.weights_digest() == generator_digest(load_generator(path))
    _, from_file = cached_export(loaded, "fp32")
    assert cached_export(load_generator(path), "fp32") == (None, from_file)
    for name, weight in load_generator(path).state_dict().items():
        assert np.array_equal(loaded.arrays[name], weight.numpy()), name
