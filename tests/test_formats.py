"""WebDataset and Parquet shards (gankit/sampling/formats.py): read by webdataset, datasets, pyarrow and tar; the
same pixels as the npy shards; labels inside; deterministic bytes through Ctrl-C, kill -9 and torchrun ranks."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.errors import SamplingError
from gankit.io import sha256_of
from gankit.labels import BALANCED
from gankit.noise import NOISE_NAME
from gankit.pixels import png_bytes
from gankit.sampling.engine import sample
from gankit.sampling.job import SampleJob
from gankit.sampling.manifest import MANIFEST
from gankit.sampling.pipeline import ShardMaker

pytestmark = pytest.mark.usefixtures("private_cache")

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("webdataset", "parquet")
SUFFIX = {"webdataset": ".tar", "parquet": ".parquet"}


def run_job(folder: Path, model: Path, **options) -> object:
    defaults = dict(n=100, model=model, seed=7, batch_size=16, shard_size=32, backend="eager")
    defaults.update(options)
    return sample(SampleJob(folder, **defaults), progress=False, log=lambda message: None)


def shards(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard*")) if p.is_file()}


def npy_images(folder: Path) -> np.ndarray:
    return np.concatenate([np.load(p) for p in sorted(folder.glob("shard_*.npy")) if ".labels" not in p.name])


def npy_labels(folder: Path) -> np.ndarray:
    return np.concatenate([np.load(p) for p in sorted(folder.glob("shard_*.labels.npy"))])


def test_webdataset_shards_read_by_webdataset_and_tar(tmp_path: Path, model_file: Path) -> None:
    import webdataset

    run_job(tmp_path / "npy", model_file)
    run_job(tmp_path / "wds", model_file, format="webdataset")
    names = sorted(p.name for p in (tmp_path / "wds").glob("shard*"))
    assert names == [f"shard-{k:05d}.tar" for k in range(4)]
    urls = [str(tmp_path / "wds" / name) for name in names]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode("pil"))
    expected = npy_images(tmp_path / "npy")
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(100)]
    assert all(np.array_equal(np.asarray(s["png"].convert("L")), expected[i, 0]) for i, s in enumerate(samples))
    meta = {"seed": 7, "model_sha256": sha256_of(model_file), "noise": NOISE_NAME}
    assert all(s["json"] == {**meta, "index": i} for i, s in enumerate(samples))
    assert all("cls" not in s for s in samples)  # an unconditional generator has no labels
    listing = subprocess.run(["tar", "tvf", urls[3]], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == [f"{96 + k // 2:09d}.{('png', 'json')[k % 2]}" for k in range(8)]
    with tarfile.open(urls[0]) as archive:
        members = archive.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_webdataset_float16_members_are_the_npy_shards_arrays(tmp_path: Path, model_file: Path) -> None:
    import webdataset

    run_job(tmp_path / "npy", model_file, dtype="float16", n=40)
    run_job(tmp_path / "wds", model_file, dtype="float16", n=40, format="webdataset")
    urls = [str(p) for p in sorted((tmp_path / "wds").glob("shard-*.tar"))]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode())
    expected = npy_images(tmp_path / "npy")
    assert expected.dtype == np.float16 and len(samples) == 40
    assert all(s["npy"].dtype == np.float16 and np.array_equal(s["npy"], expected[i]) for i, s in enumerate(samples))


def test_parquet_shards_read_by_pyarrow_and_datasets(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    import datasets
    import pyarrow.parquet as pq

    import gankit.sampling.formats as formats

    png_size = len(png_bytes(np.zeros((1, 10, 10), np.uint8)))  # the smallest a 10x10 PNG gets
    monkeypatch.setattr(formats, "ROW_GROUP_BYTES", 8 * png_size)  # at most 8 images a group: several a shard
    run_job(tmp_path / "npy", model_file)
    run_job(tmp_path / "pq", model_file, format="parquet")
    files = sorted((tmp_path / "pq").glob("shard*"))
    assert [p.name for p in files] == [f"shard-{k:05d}.parquet" for k in range(4)]
    expected = npy_images(tmp_path / "npy")
    table = pq.read_table(files[1])
    assert table.column_names == ["index", "image"] and table.num_rows == 32
    assert table.column("index").to_pylist() == list(range(32, 64))
    pixels = [np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in table.column("image").to_pylist()]
    assert all(np.array_equal(pixels[k], expected[32 + k, 0]) for k in range(32))
    assert 4 <= pq.ParquetFile(files[1]).metadata.num_row_groups <= 32
    loaded = datasets.load_dataset(
        "parquet", data_files=[str(p) for p in files], split="train", cache_dir=str(tmp_path / "hf")
    )
    assert isinstance(loaded.features["image"], datasets.Image) and len(loaded) == 100
    rows = sorted(loaded, key=lambda row: row["index"])
    assert all(np.array_equal(np.asarray(row["image"]), expected[i, 0]) for i, row in enumerate(rows))


@pytest.mark.parametrize("fmt", FORMATS)
def test_conditional_labels_are_in_the_shards(tmp_path: Path, conditional_file: Path, fmt: str) -> None:
    import pyarrow.parquet as pq
    import webdataset

    run_job(tmp_path / "npy", conditional_file, labels=BALANCED)
    run_job(tmp_path / fmt, conditional_file, labels=BALANCED, format=fmt)
    expected, images = npy_labels(tmp_path / "npy"), npy_images(tmp_path / "npy")
    assert not list((tmp_path / fmt).glob("*.labels.npy"))
    files = sorted((tmp_path / fmt).glob("shard-*"))
    if fmt == "webdataset":
        samples = list(webdataset.WebDataset([str(p) for p in files], shardshuffle=False).decode("pil"))
        labels = [s["cls"] for s in samples]
        assert all(np.array_equal(np.asarray(s["png"].convert("L")), images[i, 0]) for i, s in enumerate(samples))
    else:
        table = pq.read_table(files)
        assert table.schema.field("label").type == "int64"
        labels = table.column("label").to_pylist()
    assert labels == expected.tolist() and len(set(labels)) == 10
    manifest = json.loads((tmp_path / fmt / MANIFEST).read_text())
    assert all(s.get("labels") is None for s in manifest["shards"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_manifest_records_size_and_crc32(tmp_path: Path, model_file: Path, fmt: str) -> None:
    run_job(tmp_path / "out", model_file, format=fmt)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["job"]["format"] == fmt
    assert [(s["file"], s["start"], s["count"]) for s in manifest["shards"]] == [
        (f"shard-{k:05d}{SUFFIX[fmt]}", 32 * k, min(32, 100 - 32 * k)) for k in range(4)
    ]
    for shard in manifest["shards"]:
        data = (tmp_path / "out" / shard["file"]).read_bytes()
        assert shard["bytes"] == len(data) and shard["crc32"] == f"{zlib.crc32(data):08x}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_run_resumes_to_the_same_bytes(tmp_path: Path, model_file: Path, monkeypatch, fmt: str) -> None:
    run_job(tmp_path / "straight", model_file, format=fmt)
    real, calls = ShardMaker.start, {"n": 0}

    def interrupt_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ShardMaker, "start", interrupt_third)
    assert run_job(tmp_path / "resumed", model_file, format=fmt).interrupted
    assert len(shards(tmp_path / "resumed")) == 2
    monkeypatch.setattr(ShardMaker, "start", real)
    assert run_job(tmp_path / "resumed", model_file, format=fmt, resume=True).samples_written == 36
    assert shards(tmp_path / "resumed") == shards(tmp_path / "straight") and len(shards(tmp_path / "straight")) == 4


KILLER = """
import os, signal
import gankit.sampling.writer as writer

_real, _calls = writer.write_file, [0]


def _write_then_die(path, *chunks):
    _calls[0] += 1
    if _calls[0] == 3:  # the third shard: half of it in a temp file beside it, then SIGKILL
        data = b"".join(bytes(chunk) for chunk in chunks)
        (path.parent / (".partial-" + path.name)).write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(path, *chunks)


writer.write_file = _write_then_die
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_killed_process_resumes_to_the_same_bytes(tmp_path: Path, model_file: Path, fmt: str) -> None:
    """SIGKILL while the third shard is written (a real process), then --resume: the files of a straight run."""
    (tmp_path / "killer.py").write_text(KILLER)
    options = [str(model_file), "--n", "300", "--seed", "1", "--batch-size", "32", "--shard-size", "64"]
    options += ["--format", fmt, "--backend", "eager", "--quiet", "--device", "cpu"]
    run = "import killer, runpy; runpy.run_module('gankit', run_name='__main__', alter_sys=True)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    killed = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", run, "sample", *options, "--out", str(killed)], cwd=ROOT, env=env)
    assert done.returncode == -signal.SIGKILL
    assert sorted(shards(killed)) == [f"shard-{k:05d}{SUFFIX[fmt]}" for k in range(2)]
    command = [sys.executable, "-m", "gankit", "sample", *options]
    subprocess.run([*command, "--out", str(killed), "--resume"], cwd=ROOT, check=True)
    subprocess.run([*command, "--out", str(tmp_path / "straight")], cwd=ROOT, check=True)
    assert shards(killed) == shards(tmp_path / "straight") and len(shards(killed)) == 5
    assert json.loads((killed / MANIFEST).read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_torchrun_two_ranks_write_the_bytes_of_one_process(tmp_path: Path, model_file: Path, fmt: str) -> None:
    args = ["sample", str(model_file), "--num-samples", "300", "--seed", "9", "--batch-size", "32"]
    args += ["--shard-size", "64", "--format", fmt, "--backend", "eager", "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    subprocess.run([*launcher, "-m", "gankit", *args, "--out", str(tmp_path / "two")], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "-m", "gankit", *args, "--out", str(tmp_path / "one")], cwd=ROOT, check=True)
    assert shards(tmp_path / "one") == shards(tmp_path / "two") and len(shards(tmp_path / "one")) == 5
    one, two = (json.loads((tmp_path / run / MANIFEST).read_text()) for run in ("one", "two"))
    assert one["shards"] == two["shards"] and two["status"] == "complete"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "parquet", "dtype": "float16"}, "parquet stores PNG images"),
        ({"engine": "spark"}, "unknown --engine"),
        ({"workers": 2}, "options of --engine ray"),
        ({"address": "10.0.0.1:6379"}, "options of --engine ray"),
        ({"engine": "ray", "workers": 0}, "--workers must be positive"),
        ({"engine": "ray", "format": "grid"}, "a grid is one picture"),
    ],
)
def test_bad_format_and_engine_options(tmp_path: Path, model_file: Path, options: dict, message: str) -> None:
    with pytest.raises(SamplingError, match=message):
        run_job(tmp_path / "out", model_file, **options)
    assert not (tmp_path / "out").exists()


def test_png_bytes_are_the_pixels() -> None:
    """Grey and RGB, odd sizes: PIL decodes exactly the pixels; the same pixels always give the same bytes."""
    rng = np.random.default_rng(5)
    for shape in ((1, 7, 13), (3, 5, 4)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        decoded = np.asarray(Image.open(io.BytesIO(png_bytes(image))))
        assert np.array_equal(decoded, image[0] if shape[0] == 1 else image.transpose(1, 2, 0))
        assert png_bytes(image.copy()) == png_bytes(image)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((1, 4, 4), np.float32))


@pytest.mark.parametrize(
    ("name", "size"), [("000000001.png", 358), ("123456789012.json", 70), ("a", 0), ("x" * 99, 8**11 - 1)]
)
def test_tar_headers_are_tarfiles_own(name: str, size: int) -> None:
    """The headers built directly are the bytes Python's tarfile writes for the same member (ustar)."""
    from gankit.sampling.formats import TAR_MODE, tar_header

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, TAR_MODE, 0, 0, "", ""
    assert tar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
