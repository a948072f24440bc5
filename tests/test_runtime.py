"""gankit.runtime: the one home of onnxruntime sessions and OpenVINO compiled models, graphs fed by their names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import SMALL_CONFIG

from gankit.backends import create_backend
from gankit.errors import BackendError
from gankit.labels import LabelError, from_options
from gankit.model import Generator
from gankit.onnx.build import temporary_export
from gankit.onnx.validate import graph_runner
from gankit.runtime import compile_openvino, onnxruntime_session
from gankit.sampling.lanes import open_lanes

GANKIT = Path(__file__).resolve().parents[1] / "gankit"
RENAMED = {"z": "noise_in", "label": "digit_in", "image": "pixels_out"}


def test_sessions_are_made_in_one_module():
    """Threads, spinning, precision hints and error wrapping are decided once: no other module makes a session."""
    makers = {
        name: sorted(str(p.relative_to(GANKIT)) for p in GANKIT.rglob("*.py") if f"{name}(" in p.read_text())
        for name in ("InferenceSession", "compile_model")
    }
    assert makers == {"InferenceSession": ["runtime.py"], "compile_model": ["runtime.py"]}


def test_unloadable_graph_is_one_line(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx graph at all")
    with pytest.raises(BackendError) as info:
        onnxruntime_session(bad)
    message = str(info.value)
    assert "broken.onnx" in message and "\n" not in message
    with pytest.raises(BackendError, match="broken.onnx"):
        compile_openvino(bad, "fp32", {})


def _renamed(path: Path, out: Path) -> Path:
    """The export at ``path`` with its inputs and output renamed (metadata kept): whoever feeds it by assumed
    names or by position fails or swaps them."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.input[:] = [RENAMED.get(name, name) for name in node.input]
        node.output[:] = [RENAMED.get(name, name) for name in node.output]
    for value in [*model.graph.input, *model.graph.output]:
        value.name = RENAMED.get(value.name, value.name)
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def conditional_exports(tmp_path_factory):
    torch.manual_seed(99)
    generator = Generator(dataclasses.replace(SMALL_CONFIG, num_classes=3)).eval()
    keep, path = temporary_export(generator, "fp32")
    renamed = _renamed(path, tmp_path_factory.mktemp("renamed") / "generator.onnx")
    yield path, renamed
    keep.cleanup()


def test_every_caller_feeds_by_the_graph_names(conditional_exports):
    """The same graph under other names gives the same images through the parity runner, both backends and the
    sampling lanes of both runtimes (z drawn with seed 5, labels 0, 1, 2, ...)."""
    original, renamed = conditional_exports
    z = np.random.default_rng(5).standard_normal((6, SMALL_CONFIG.latent_dim), dtype=np.float32)
    labels = np.arange(6, dtype=np.int64) % 3
    expected = graph_runner(original)(z, labels)
    assert np.array_equal(graph_runner(renamed)(z, labels), expected)
    for name in ("onnxruntime", "openvino"):
        backend = create_backend(name, renamed)
        assert backend.graph.input_name == "noise_in" and backend.graph.label_name == "digit_in"
        np.testing.assert_allclose(backend.run_numpy(z, labels), expected, rtol=0, atol=1e-5)  # fp32 kernels differ
        lane = open_lanes(backend, labels=from_options(digit=1))[0]
        with pytest.raises(LabelError, match="resolved spec"):  # lanes take the job's resolved labels, never None
            open_lanes(backend)
        out = torch.empty((4, *SMALL_CONFIG.image_shape), dtype=torch.float32)
        lane.fill(3, 0, out)
        reference = create_backend(name, original)
        want = reference.generate_seeded(3, 0, 4, labels=from_options(digit=1))
        assert torch.equal(out, want), name
