"""Lanes: each runs noise -> model -> uint8 for its own batches; their images equal the backend's; their split is
measured once and cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gankit.cpu
import gankit.sampling.lanes as lanes
from gankit.backends import create_backend
from gankit.errors import BackendError
from gankit.sampling.lanes import BackendLane, RuntimeLane, open_lanes, plan_lanes


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def two_threads():
    """The process's thread budget at 2 (what lanes split), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def filled(lane, dtype: torch.dtype, seed: int, first: int, count: int, shape) -> torch.Tensor:
    out = torch.full((count, *shape), 77, dtype=dtype)  # poisoned: a lane that writes nothing fails
    lane.fill(seed, first, out)
    return out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_onnxruntime_lanes_equal_the_backend_bit_for_bit(small_generator, precision: str, threads: int) -> None:
    backend = create_backend("onnxruntime", small_generator, precision=precision, device="cpu")
    shape = small_generator.config.image_shape
    (lane,) = open_lanes(backend, 1, threads)
    assert isinstance(lane, RuntimeLane)
    for first, count in ((0, 1000), (123_456_789, 77)):
        images = filled(lane, torch.uint8, 5, first, count, shape)
        assert torch.equal(images, backend.generate_seeded(5, first, count, output="uint8"))
    for dtype in ("float16", "float32"):
        (lane,) = open_lanes(backend, 1, threads)
        images = filled(lane, getattr(torch, dtype), 5, 40, 300, shape)
        assert torch.equal(images, backend.generate_seeded(5, 40, 300).to(getattr(torch, dtype)))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_lanes_equal_the_backend_bit_for_bit(small_generator, precision: str) -> None:
    """One lane of 1 or 2 threads, or two lanes (two streams of one compilation): the backend's images."""
    if precision == "bf16" and not gankit.cpu.cpu_info().has_bf16:
        with pytest.raises(BackendError, match="bf16"):  # refused where it would be emulated (gankit.cpu)
            create_backend("openvino", small_generator, precision=precision, device="cpu")
        return
    backend = create_backend("openvino", small_generator, precision=precision, device="cpu")
    shape = small_generator.config.image_shape
    host = backend.generate_seeded(9, 1000, 4096, output="uint8")
    for lane in [*open_lanes(backend, 1, 1), *open_lanes(backend, 1, 2), *open_lanes(backend, 2, 1)]:
        assert torch.equal(filled(lane, torch.uint8, 9, 1000, 4096, shape), host)


def test_other_backends_run_as_one_backend_lane(small_generator) -> None:
    backend = create_backend("eager", small_generator, device="cpu")
    (lane,) = open_lanes(backend, count=4)
    assert isinstance(lane, BackendLane)
    images = filled(lane, torch.uint8, 2, 10, 50, small_generator.config.image_shape)
    assert torch.equal(images, backend.generate_seeded(2, 10, 50, output="uint8"))


def test_the_split_is_measured_once_and_cached(private_cache: Path, small_generator, two_threads, monkeypatch) -> None:
    backend = create_backend("onnxruntime", small_generator, precision="int8", device="cpu")
    measured, real = [], lanes.measure_split

    def counting(backend, dtype, batch, count, threads, labels):
        measured.append((count, threads))
        return real(backend, dtype, batch, count, threads, labels)

    monkeypatch.setattr(lanes, "measure_split", counting)
    count, threads, why = plan_lanes(backend, "uint8", 256)
    assert sorted(measured) == [(1, 2), (2, 1)] and count * threads == 2
    (rates,) = [v for k, v in json.loads((private_cache / "auto-backend.json").read_text()).items() if "lanes" in k]
    assert set(rates) == {"2x1", "1x2"} and all(rate > 0 for rate in rates.values())
    assert f"{count}x{threads}" == max(rates, key=rates.get) and "measured once per machine and model" in why
    assert plan_lanes(backend, "uint8", 256) == (count, threads, why) and len(measured) == 2, "from the cache"
    plan_lanes(backend, "uint8", 512)
    assert len(measured) == 4, "another batch size is measured anew"


def test_nothing_to_measure_with_one_thread_or_one_lane(small_generator, monkeypatch) -> None:
    monkeypatch.setattr(lanes, "measure_split", lambda *args: pytest.fail("nothing to measure"))
    onnx = create_backend("onnxruntime", small_generator, device="cpu")
    eager = create_backend("eager", small_generator, device="cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert plan_lanes(onnx, "uint8", 64)[:2] == (1, 1)
        torch.set_num_threads(2)
        assert plan_lanes(eager, "uint8", 64)[:2] == (1, 2)
    finally:
        torch.set_num_threads(before)
