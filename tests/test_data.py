"""Data sources: bundled digits, .npz/.npy, PNG folders, torchvision sets (offline too), and pixel scaling."""

from __future__ import annotations

import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import load_bundled, load_images
from gankit.errors import DataError
from gankit.pixels import from_uint8, to_uint8


def _pattern(n: int = 6, height: int = 5, width: int = 7) -> np.ndarray:
    """(n, height, width) uint8 covering 0 and 255."""
    values = np.arange(n * height * width) * 37 % 256
    values[0], values[-1] = 0, 255
    return values.reshape(n, height, width).astype(np.uint8)


def test_bundled_digits() -> None:
    images, labels = load_bundled()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (5000,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [500] * 10
    assert images.min() == 0 and images.max() == 255
    assert torch.equal(load_images("mnist-5k"), images)
    assert torch.equal(load_images(), images)


@pytest.mark.parametrize("key", ["images", "x_train", "arr_0"])
def test_npz_of_uint8_images(tmp_path: Path, key: str) -> None:
    pixels = _pattern()
    np.savez(tmp_path / "d.npz", **{key: pixels, "labels": np.zeros(6, np.int64)})
    images = load_images(str(tmp_path / "d.npz"))
    assert images.shape == (6, 1, 5, 7) and images.dtype == torch.uint8
    assert np.array_equal(images[:, 0].numpy(), pixels)


@pytest.mark.parametrize(
    ("layout", "expected_shape"),
    [("nhw", (6, 1, 5, 7)), ("nchw", (6, 1, 5, 7)), ("nhwc", (6, 3, 5, 7)), ("nchw3", (6, 3, 5, 7))],
)
def test_npy_layouts(tmp_path: Path, layout: str, expected_shape: tuple) -> None:
    pixels = _pattern()
    rgb = np.stack([pixels, 255 - pixels, pixels // 2], axis=1)  # (N, 3, H, W)
    array = {"nhw": pixels, "nchw": pixels[:, None], "nhwc": rgb.transpose(0, 2, 3, 1), "nchw3": rgb}[layout]
    np.save(tmp_path / "d.npy", array)
    images = load_images(str(tmp_path / "d.npy"))
    assert tuple(images.shape) == expected_shape and images.dtype == torch.uint8
    assert np.array_equal(images.numpy(), rgb if expected_shape[1] == 3 else pixels[:, None])


@pytest.mark.parametrize("scale", ["unit", "symmetric", "float255", "int64"])
def test_non_uint8_ranges_are_mapped_to_uint8(tmp_path: Path, scale: str) -> None:
    pixels = _pattern()
    array = {
        "unit": pixels.astype(np.float32) / 255.0,
        "symmetric": pixels.astype(np.float64) / 127.5 - 1.0,
        "float255": pixels.astype(np.float32),
        "int64": pixels.astype(np.int64),
    }[scale]
    np.save(tmp_path / "d.npy", array)
    images = load_images(str(tmp_path / "d.npy"))
    assert images.dtype == torch.uint8
    assert np.array_equal(images[:, 0].numpy(), pixels)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 4, 4), 300.0), "span"),
        (np.full((2, 4, 4), -3.0), "span"),
        (np.array([[[0.5, np.nan]]]), "NaN"),
        (np.zeros((4, 4)), "expected images shaped"),
        (np.zeros((0, 4, 4), np.uint8), "expected images shaped"),
        (np.zeros((2, 1, 1, 4, 4)), "expected images shaped"),
        (np.zeros((2, 4, 4), bool), "not numeric"),
    ],
)
def test_bad_arrays_raise_data_error(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=message):
        load_images(str(tmp_path / "bad.npy"))


def _write_bad_file(folder: Path, kind: str) -> Path:
    if kind == "empty":
        path = folder / "d.npy"
        path.write_bytes(b"")
    elif kind == "truncated_npy":
        np.save(folder / "full.npy", _pattern())
        path = folder / "d.npy"
        path.write_bytes((folder / "full.npy").read_bytes()[:150])
    elif kind == "truncated_npz":
        np.savez(folder / "full.npz", images=_pattern())
        path = folder / "d.npz"
        path.write_bytes((folder / "full.npz").read_bytes()[:100])
    elif kind == "not_numpy":
        path = folder / "d.npy"
        path.write_text("these are not pixels\n" * 10)
    elif kind == "object_npz":
        path = folder / "d.npz"
        np.savez(path, images=np.array([1, "a"], dtype=object))
    else:  # no images key
        path = folder / "d.npz"
        np.savez(path, labels=np.zeros(3))
    return path


@pytest.mark.parametrize(
    "kind", ["empty", "truncated_npy", "truncated_npz", "not_numpy", "object_npz", "no_images_key"]
)
def test_unreadable_files_raise_data_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = _write_bad_file(tmp_path, kind)
    with pytest.raises(DataError) as info:
        load_images(str(path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_png_folder(tmp_path: Path) -> None:
    pixels = _pattern()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{i:03d}.png")
    Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(tmp_path / "999_rgb.png")  # RGB: read as grey
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(str(tmp_path))
    assert images.shape == (7, 1, 5, 7) and images.dtype == torch.uint8
    assert np.array_equal(images[:6, 0].numpy(), pixels)
    assert images[6].unique().tolist() == [200]


@pytest.mark.parametrize("problem", ["no_pngs", "mixed_sizes", "broken_png"])
def test_bad_png_folder_raises_data_error(tmp_path: Path, problem: str) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    if problem == "mixed_sizes":
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
        Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    elif problem == "broken_png":
        (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(
        DataError, match={"no_pngs": "no .png", "mixed_sizes": "different sizes", "broken_png": "a.png"}[problem]
    ):
        load_images(str(tmp_path))


@pytest.mark.parametrize("source", ["cifar-10", "images.jpg", "", "mnist5k"])
def test_unknown_source_raises_data_error(source: str) -> None:
    with pytest.raises(DataError, match="unknown data source"):
        load_images(source)


def test_missing_array_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_images(str(tmp_path / "missing.npz"))


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(("source", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_set_offline_with_empty_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, folder: str
) -> None:
    """torchvision's own download code runs; only the network call fails, as it does offline."""
    import torchvision.datasets.mnist

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline)
    with pytest.raises(DataError) as info:
        load_images(source, data_dir=tmp_path)
    message = str(info.value)
    assert f"could not find or download {source} under {tmp_path}" in message
    assert "--data mnist-5k" in message and "--data-dir" in message and folder in message
    assert "\n" not in message  # torchvision's error spans lines; the CLI prints one


def _write_idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x800 + array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_set_read_from_data_dir_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.mnist

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline)
    raw = tmp_path / "MNIST" / "raw"
    pixels = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(raw / "train-images-idx3-ubyte", pixels)
    _write_idx(raw / "train-labels-idx1-ubyte", np.array([1, 2, 3]))
    _write_idx(raw / "t10k-images-idx3-ubyte", pixels[:1])
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.array([4]))
    images = load_images("mnist", data_dir=tmp_path)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    assert np.array_equal(images[:, 0].numpy(), pixels)


def test_torchvision_sets_live_in_the_gankit_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22, 13: --data mnist without --data-dir ignored $GANKIT_CACHE_DIR (it used ~/.cache/gankit)."""
    import torchvision.datasets.mnist

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline)
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    raw = tmp_path / "data" / "MNIST" / "raw"
    pixels = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    _write_idx(raw / "train-images-idx3-ubyte", pixels)
    _write_idx(raw / "train-labels-idx1-ubyte", np.array([1, 2]))
    _write_idx(raw / "t10k-images-idx3-ubyte", pixels[:1])
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.array([4]))
    assert np.array_equal(load_images("mnist")[:, 0].numpy(), pixels)


def test_to_model_range_and_back_is_exact() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    scaled = from_uint8(pixels)
    assert scaled.dtype == torch.float32 and scaled.shape == pixels.shape
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    assert scaled[0, 0, 0, 0] == -1.0 and scaled[-1, 0, -1, -1] == 1.0
    assert torch.equal(to_uint8(scaled), pixels)


def test_to_uint8_rounds_and_clips() -> None:
    values = torch.tensor([-5.0, -1.0, -0.999, 0.0, 0.5, 1.0, 3.0])
    expected = [0, 0, 0, 128, 191, 255, 255]  # 127.5 and 191.25 round to nearest
    assert to_uint8(values).tolist() == expected
    assert to_uint8(values.double()).dtype == torch.uint8
    assert to_uint8(torch.zeros(2, 1, 3, 3, dtype=torch.float16)).unique().tolist() == [128]


def test_to_uint8_leaves_its_input_alone() -> None:
    images = torch.linspace(-1.2, 1.2, 97)
    before = images.clone()
    to_uint8(images)
    assert torch.equal(images, before)
