"""A Generator's ONNX export, made once per machine and kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gankit.onnx.build as build
import gankit.onnx.cache as cache
from gankit.backends import create_backend
from gankit.noise import noise
from gankit.onnx.graph import read_metadata

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def counted_builds(tmp_path: Path, monkeypatch) -> list[str]:
    """GANKIT_CACHE_DIR in tmp_path; every real export made is recorded by its precision."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    builds, real = [], build.build_onnx

    def counting(generator, path, precision, *args, **kwargs):
        builds.append(precision)
        return real(generator, path, precision, *args, **kwargs)

    monkeypatch.setattr(build, "build_onnx", counting)  # cached_export builds through gankit.onnx.build
    return builds


def test_an_export_is_made_once_per_model_and_options(tmp_path: Path, counted_builds, small_generator) -> None:
    folder, path = cache.cached_export(small_generator, "fp32")
    assert folder is None and path.parent == tmp_path / "cache" / "onnx" and counted_builds == ["fp32"]
    assert cache.cached_export(small_generator, "fp32") == (None, path) and counted_builds == ["fp32"]
    assert read_metadata(path)["gankit_precision"] == "fp32" and read_metadata(path)["gankit_output"] == "float"
    _, int8 = cache.cached_export(small_generator, "int8")
    assert int8 != path and counted_builds == ["fp32", "int8"]
    with torch.no_grad():
        small_generator.layers[0].weight.add_(0.01)  # another model: another export
    _, other = cache.cached_export(small_generator, "fp32")
    assert other not in (path, int8) and counted_builds == ["fp32", "int8", "fp32"]
    assert sorted(p.name for p in (tmp_path / "cache" / "onnx").iterdir()) == sorted(
        p.name for p in (path, int8, other)
    ), "no scratch files left behind"


def test_a_failed_export_leaves_nothing_under_its_key(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))

    def half_then_crash(generator, path, *args, **kwargs):
        Path(path).write_bytes(b"half an onnx file")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(build, "build_onnx", half_then_crash)
    with pytest.raises(RuntimeError, match="mid-export"):
        cache.cached_export(small_generator, "fp32")
    assert list((tmp_path / "cache" / "onnx").iterdir()) == []


def test_an_unwritable_cache_falls_back_to_a_temporary_export(tmp_path: Path, monkeypatch, small_generator) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache dir cannot be made under a file")
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(blocker / "cache"))
    folder, path = cache.cached_export(small_generator, "fp32")
    assert folder is not None and path.is_file() and Path(folder.name) in path.parents
    backend = create_backend("onnxruntime", small_generator, device="cpu")
    z = noise(0, 0, 8, small_generator.config.latent_dim)
    torch.testing.assert_close(backend.generate(z), small_generator(z).detach(), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_warm_cache_spares_the_exporter(tmp_path: Path) -> None:
    """A fresh process opening onnxruntime on a cached export never imports the exporter (torch.export, onnxscript)."""
    script = (
        "import sys; from gankit.backends import create_backend; from gankit.checkpoint import load_generator; "
        "create_backend('onnxruntime', load_generator(), device='cpu'); "
        "print(','.join(m for m in ('onnxscript', 'torch._dynamo', 'torch.export._trace') if m in sys.modules))"
    )
    env = {**os.environ, "GANKIT_CACHE_DIR": str(tmp_path)}
    cold = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "onnxscript" in cold.stdout, "the first run exports (else this test proves nothing)"
    warm = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert warm.stdout.strip() == ""
