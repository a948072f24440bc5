"""Each CPU low-precision path keeps the bundled (trained) generator's quality: MNIST-FID within 5 % of
eager fp32's on the same 2,500 seeds, and every digit at least half as common (``gankit.backends.autoselect``'s rule,
the one ``--precision auto`` applies). Measured: all within 0.7 % (benchmarks/results/cpu-paths-*.md)."""

from __future__ import annotations

import pytest

from gankit.backends import autoselect
from gankit.checkpoint import load_generator
from gankit.cpu import cpu_info

HAS_BF16 = cpu_info().has_bf16
PATHS = [
    pytest.param("onnxruntime", "int8", id="onnxruntime-int8"),
    pytest.param("onnxruntime", "fp32", id="onnxruntime-fp32"),
    pytest.param("openvino", "fp32", id="openvino-fp32"),
    # eager bf16 runs (emulated) on any CPU, so its quality is checked everywhere
    pytest.param("eager", "bf16", id="eager-bf16"),
    pytest.param(
        "openvino",
        "bf16",
        id="openvino-bf16",
        marks=pytest.mark.skipif(not HAS_BF16, reason="no native bf16 on this CPU: OpenVINO bf16 refuses to run"),
    ),
]


@pytest.fixture(scope="module")
def generator():
    return load_generator()


@pytest.fixture(scope="module")
def reference(generator):
    return autoselect._seeded_images("eager", generator, "fp32")


@pytest.mark.parametrize(("backend", "precision"), PATHS)
def test_quality_cost_within_tolerance(generator, reference, backend: str, precision: str) -> None:
    images = autoselect._seeded_images(backend, generator, precision)
    measured = autoselect._quality(images, reference)
    assert autoselect.quality_ok(measured), measured
    assert abs(measured["fid"] / measured["fid_fp32"] - 1) <= 0.02, measured  # measured <= 0.7 %: 2 % is margin
    bound = {"fp32": 0.01, "bf16": 0.5, "int8": 1.5}[precision]  # mean grey levels from eager fp32
    assert measured["mean_levels"] <= bound, measured
