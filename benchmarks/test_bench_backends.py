"""pytest-benchmark: the backends of ``gankit bench`` at the CPU batch sizes (GPU cases skip without CUDA).

``pytest benchmarks/ --benchmark-only --benchmark-enable`` times them; CI runs the file with
``--benchmark-disable`` (each case once, outputs checked) so the suite never rots. ``gankit bench``
is the full tool (roofline, JSON, plot); this suite is the same comparison in pytest form.
"""

from __future__ import annotations

import pytest
import torch

from gankit.backends import create_backend
from gankit.checkpoint import load_generator
from gankit.noise import noise
from gankit.perf.bench import gate

ON_GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU (the CPU cases cover the same code)")

CPU_CASES = [
    (name, precision, batch)
    for name, precision in [
        ("eager", "fp32"),
        ("compile", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
        ("onnxruntime", "int8"),
        ("eager", "bf16"),
    ]
    for batch in (1, 64, 4096)
]
GPU_CASES = [
    pytest.param(name, precision, batch, marks=needs_gpu)
    for name in ("eager", "compile", "triton")
    for precision in ("fp32", "tf32", "bf16")
    for batch in (1, 256, 65536)
]


def _backend(name: str, precision: str, batch: int, device: str):
    options = {"device": device}
    if name == "compile":
        options["batch_size"] = batch
    return create_backend(name, load_generator(), precision=precision, **options)


@pytest.mark.parametrize(("name", "precision", "batch"), CPU_CASES)
def test_cpu_backend(benchmark, name: str, precision: str, batch: int) -> None:
    torch.set_num_threads(2)
    backend = _backend(name, precision, batch, "cpu")
    z = noise(11, 0, batch, backend.config.latent_dim)
    with torch.inference_mode():
        expected = load_generator()(z)
    images = benchmark(backend.generate, z)
    assert gate((images.float() - expected).abs(), precision) is None


@pytest.mark.parametrize(("name", "precision", "batch"), GPU_CASES)
def test_gpu_backend(benchmark, name: str, precision: str, batch: int) -> None:
    backend = _backend(name, precision, batch, "cuda")
    z = noise(11, 0, batch, backend.config.latent_dim, device="cuda")
    expected = load_generator(device="cuda")(z)

    def run():
        images = backend.generate(z)
        torch.cuda.synchronize()
        return images

    images = benchmark(run)
    assert gate((images.float() - expected).abs(), precision) is None
