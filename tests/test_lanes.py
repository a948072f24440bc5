"""Lanes: each runs noise -> model -> uint8 for its own batches; their images equal the backend's; their split is
measured once and cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gankit.sampling.lanes as lanes
from gankit.backends import create_backend
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
    (lane,) = open_lanes(backend, "uint8", 1, threads)
    assert isinstance(lane, RuntimeLane)
    for first, count in ((0, 1000), (123_456_789, 77)):
        images = filled(lane, torch.uint8, 5, first, count, shape)
        assert torch.equal(images, backend.generate_seeded(5, first, count, output="uint8"))
    for dtype in ("float16", "float32"):
        (lane,) = open_lanes(backend, dtype, 1, threads)
        images = filled(lane, lanes.DTYPES[dtype], 5, 40, 300, shape)
        assert torch.equal(images, backend.generate_seeded(5, 40, 300).to(lanes.DTYPES[dtype]))


def test_openvino_lanes_within_one_level_and_the_same_for_any_split(small_generator) -> None:
    """OpenVINO fuses the uint8 mapping into its last layer: at most one level from the host's rounding, rarely."""
    backend = create_backend("openvino", small_generator, precision="fp32", device="cpu")
    shape = small_generator.config.image_shape
    one, two = open_lanes(backend, "uint8", 1, 1)[0], open_lanes(backend, "uint8", 1, 2)[0]
    images = filled(one, torch.uint8, 9, 1000, 4096, shape)
    assert torch.equal(images, filled(two, torch.uint8, 9, 1000, 4096, shape))
    for stream in open_lanes(backend, "uint8", 2, 1):  # two lanes: two streams of one compilation
        assert torch.equal(images, filled(stream, torch.uint8, 9, 1000, 4096, shape))
    host = backend.generate_seeded(9, 1000, 4096, output="uint8")
    difference = (images.int() - host.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-3


def test_other_backends_run_as_one_backend_lane(small_generator) -> None:
    backend = create_backend("eager", small_generator, device="cpu")
    (lane,) = open_lanes(backend, "uint8", count=4)
    assert isinstance(lane, BackendLane)
    images = filled(lane, torch.uint8, 2, 10, 50, small_generator.config.image_shape)
    assert torch.equal(images, backend.generate_seeded(2, 10, 50, output="uint8"))


def test_the_split_is_measured_once_and_cached(private_cache: Path, small_generator, two_threads, monkeypatch) -> None:
    backend = create_backend("onnxruntime", small_generator, precision="int8", device="cpu")
    measured, real = [], lanes.measure_split

    def counting(backend, dtype, batch, count, threads):
        measured.append((count, threads))
        return real(backend, dtype, batch, count, threads)

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
