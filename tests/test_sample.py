"""The sampling engine: determinism across backends, batching and processes; resume; bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.backends import create_backend
from gankit.checkpoint import save_generator
from gankit.errors import BackendError, SamplingError
from gankit.noise import noise
from gankit.pixels import to_uint8
from gankit.sampling.engine import generate, sample
from gankit.sampling.job import SampleJob
from gankit.sampling.manifest import MANIFEST
from gankit.sampling.pipeline import ShardMaker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seed_model_file(tmp_path: Path, seed_generator) -> Path:
    return save_generator(tmp_path / "seed.safetensors", seed_generator)


def shard_arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(folder.glob("shard_*.npy"))}


def run_job(folder: Path, model: Path, **options) -> object:
    defaults = dict(n=100, model=model, seed=7, batch_size=16, shard_size=32, backend="eager")
    defaults.update(options)
    return sample(SampleJob(folder, **defaults), progress=False, log=lambda message: None)


def test_shards_hold_the_images_of_their_indices(tmp_path: Path, model_file: Path, small_generator) -> None:
    result = run_job(tmp_path / "out", model_file)
    arrays = shard_arrays(tmp_path / "out")
    assert list(arrays) == ["shard_00000.npy", "shard_00001.npy", "shard_00002.npy", "shard_00003.npy"]
    images = np.concatenate(list(arrays.values()))
    assert images.shape == (100, 1, 10, 10) and images.dtype == np.uint8
    expected = torch.clamp(torch.round((small_generator(noise(7, 0, 100, 20)) + 1) * 127.5), 0, 255)
    assert np.abs(images.astype(int) - expected.detach().numpy().astype(int)).max() <= 1
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["samples"] == 100 == result.samples_written
    assert [s["count"] for s in manifest["shards"]] == [32, 32, 32, 4]
    for shard in manifest["shards"]:
        assert (tmp_path / "out" / shard["file"]).stat().st_size == shard["bytes"]
    assert not list((tmp_path / "out" / ".journal").glob("*.json"))


LANE_PATHS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32")]


@pytest.mark.parametrize(("backend", "precision"), LANE_PATHS)
def test_lanes_and_threads_do_not_change_the_shards(
    tmp_path: Path, model_file: Path, monkeypatch, backend: str, precision: str
) -> None:
    """2 lanes of 1 thread or 1 lane of 2 threads: the same shards, equal bit for bit to the backend's own
    uint8 images (its float output rounded on the host)."""
    import gankit.sampling.engine as engine

    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    folders = {}
    for split in ((2, 1), (1, 2)):
        monkeypatch.setattr(
            engine, "plan_lanes", lambda backend, dtype, batch, labels=None, split=split: (*split, "forced")
        )
        folders[split] = tmp_path / f"{split[0]}x{split[1]}"
        run_job(folders[split], model_file, backend=backend, precision=precision, n=1000, shard_size=256)
    one, two = shard_arrays(folders[(1, 2)]), shard_arrays(folders[(2, 1)])
    assert len(one) == 4 and one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)
    expected = generate(model_file, n=1000, seed=7, backend=backend, precision=precision, batch_size=16)
    assert np.array_equal(np.concatenate(list(one.values())), to_uint8(expected).numpy())


def test_shard_checksums_are_crc32_and_sha256_runs_still_resume(tmp_path: Path, model_file: Path) -> None:
    run_job(tmp_path / "out", model_file)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["job"]["checksum"] == "crc32"
    for shard in manifest["shards"]:
        data = (tmp_path / "out" / shard["file"]).read_bytes()
        assert shard["crc32"] == f"{zlib.crc32(data):08x}" and "sha256" not in shard
    # a run recorded before crc32 (sha256 entries), interrupted after two shards: resume keeps those, adds the rest
    old = dict(manifest, status="partial", shards=[], samples=64)
    for shard in manifest["shards"][:2]:
        data = (tmp_path / "out" / shard["file"]).read_bytes()
        entry = {key: value for key, value in shard.items() if key != "crc32"}
        old["shards"].append({**entry, "sha256": hashlib.sha256(data).hexdigest()})
    del old["job"]["checksum"]
    for shard in manifest["shards"][2:]:
        (tmp_path / "out" / shard["file"]).unlink()
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(old))
    result = run_job(tmp_path / "out", model_file, resume=True)
    assert result.samples_written == 36
    resumed = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert resumed["status"] == "complete"
    assert [next(k for k in ("sha256", "crc32") if k in s) for s in resumed["shards"]] == ["sha256"] * 2 + ["crc32"] * 2
    assert resumed["shards"][:2] == old["shards"]


def test_resume_refuses_another_noise_version(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    import gankit.sampling.manifest as manifest_module
    from gankit.noise import NOISE_NAME, NOISE_VERSION

    run_job(tmp_path / "out", model_file, n=40)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert (manifest["job"]["noise"], manifest["job"]["noise_name"]) == (NOISE_VERSION, NOISE_NAME)
    del manifest["job"]["noise"]  # a run recorded before versions were: noise version 1
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(manifest_module, "NOISE_VERSION", 2)
    with pytest.raises(SamplingError, match="sampled with noise version 1; this gankit makes version 2"):
        run_job(tmp_path / "out", model_file, n=40, resume=True)
    monkeypatch.setattr(manifest_module, "NOISE_VERSION", 1)
    assert run_job(tmp_path / "out", model_file, n=40, resume=True).samples_written == 0


def test_same_index_same_image_whatever_the_batch_size_or_start(model_file: Path) -> None:
    whole = generate(model_file, n=50, seed=3, batch_size=50, backend="eager")
    chunked = generate(model_file, n=30, seed=3, start=20, batch_size=7, backend="eager")
    torch.testing.assert_close(chunked, whole[20:], atol=1e-6, rtol=0)


def test_float16_shards(tmp_path: Path, model_file: Path) -> None:
    run_job(tmp_path / "out", model_file, dtype="float16", n=40)
    images = np.concatenate(list(shard_arrays(tmp_path / "out").values()))
    reference = generate(model_file, n=40, seed=7, backend="eager").numpy()
    assert images.dtype == np.float16
    np.testing.assert_allclose(images.astype(np.float32), reference, atol=1e-3)


def test_png_files_and_grid(tmp_path: Path, model_file: Path) -> None:
    from PIL import Image

    run_job(tmp_path / "png", model_file, format="png", n=10, shard_size=4)
    files = sorted((tmp_path / "png").rglob("*.png"))
    assert len(files) == 10 and files[0].name == "000000000.png"
    first = np.asarray(Image.open(files[0]))
    expected = generate(model_file, n=1, seed=7, backend="eager", output="uint8")[0, 0].numpy()
    assert np.array_equal(first, expected)
    run_job(tmp_path / "grid.png", model_file, format="grid", n=16)
    assert Image.open(tmp_path / "grid.png").size[0] > 10 * 4


@pytest.mark.slow
def test_compile_backend_matches_eager_and_never_recompiles(model_file: Path, small_generator) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    backend = create_backend("compile", small_generator, batch_size=16, device="cpu")
    graphs_before = counters["stats"]["unique_graphs"]
    seconds = backend.warmup()
    frames_before = counters["stats"]["unique_graphs"]
    assert frames_before == graphs_before + 1, "warm-up compiles the bucket's graph, once"
    assert backend.warmup() == seconds and counters["stats"]["unique_graphs"] == frames_before
    z = noise(5, 0, 37, 20)  # 16 + 16 + a padded partial batch of 5
    images = backend.generate(z)
    assert counters["stats"]["unique_graphs"] == frames_before
    eager = create_backend("eager", small_generator, device="cpu").generate(z)
    torch.testing.assert_close(images, eager, atol=1e-5, rtol=0)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    run_job(tmp_path / "straight", model_file)
    real = ShardMaker.start
    calls = {"n": 0}

    def interrupt_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ShardMaker, "start", interrupt_third)
    result = run_job(tmp_path / "resumed", model_file)
    assert result.interrupted and result.samples_written == 64
    manifest = json.loads((tmp_path / "resumed" / MANIFEST).read_text())
    assert manifest["status"] == "partial" and manifest["samples"] == 64
    monkeypatch.setattr(ShardMaker, "start", real)
    result = run_job(tmp_path / "resumed", model_file, resume=True)
    assert result.samples_written == 36
    straight, resumed = shard_arrays(tmp_path / "straight"), shard_arrays(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    assert json.loads((tmp_path / "resumed" / MANIFEST).read_text())["status"] == "complete"


KILLER = """
import os, signal
import gankit.sampling.writer as writer

_real, _calls = writer.write_shard, [0]


def _write_then_die(out, name, first, images):
    _calls[0] += 1
    if _calls[0] == 4:  # in the middle of the 4th shard: its temp file is half written, then SIGKILL
        with open(out / (".partial-" + name), "wb") as handle:
            handle.write(images.tobytes()[: images.nbytes // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(out, name, first, images)


writer.write_shard = _write_then_die
"""


@pytest.mark.slow
def test_killed_process_resumes_to_the_uninterrupted_result(tmp_path: Path, model_file: Path) -> None:
    """SIGKILL at a fixed point (while the 4th shard is being written, in a real process), then --resume."""
    (tmp_path / "killer.py").write_text(KILLER)
    options = [str(model_file), "--n", "2000", "--seed", "1", "--batch-size", "64", "--shard-size", "256"]
    options += ["--backend", "eager", "--quiet", "--device", "cpu"]
    run = "import killer, runpy; runpy.run_module('gankit', run_name='__main__', alter_sys=True)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    killed = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", run, "sample", *options, "--out", str(killed)], cwd=ROOT, env=env)
    assert done.returncode == -signal.SIGKILL
    assert sorted(p.name for p in killed.glob("shard_*")) == [f"shard_{i:05d}.npy" for i in range(3)]
    manifest = json.loads((killed / MANIFEST).read_text())
    assert manifest["status"] == "running" and manifest["shards"] == []  # rank 0 never got to merge
    command = [sys.executable, "-m", "gankit", "sample", *options]
    subprocess.run([*command, "--out", str(killed), "--resume"], cwd=ROOT, check=True)
    subprocess.run([*command, "--out", str(tmp_path / "straight")], cwd=ROOT, check=True)
    straight, resumed = shard_arrays(tmp_path / "straight"), shard_arrays(killed)
    assert len(straight) == 8 and straight.keys() == resumed.keys()
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    assert json.loads((killed / MANIFEST).read_text())["status"] == "complete"


@pytest.mark.slow
def test_torchrun_two_gloo_processes_equal_one_process(tmp_path: Path, model_file: Path) -> None:
    args = ["sample", str(model_file), "--num-samples", "300", "--seed", "9", "--batch-size", "32"]
    args += ["--shard-size", "64", "--first-index", "0"]
    args += ["--backend", "eager", "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    subprocess.run([*launcher, "-m", "gankit", *args, "--out", str(tmp_path / "two")], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "-m", "gankit", *args, "--out", str(tmp_path / "one")], cwd=ROOT, check=True)
    one, two = shard_arrays(tmp_path / "one"), shard_arrays(tmp_path / "two")
    assert len(one) == 5 and one.keys() == two.keys()
    assert all(np.array_equal(one[k], two[k]) for k in one)
    manifest = json.loads((tmp_path / "two" / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["samples"] == 300
    assert [s["start"] for s in manifest["shards"]] == [0, 64, 128, 192, 256]


def test_disk_full_keeps_the_manifest_consistent_and_resume_finishes(
    tmp_path: Path, model_file: Path, monkeypatch
) -> None:
    """The disk fills up in the middle of the third shard (room for 2.5 shards): the two written are recorded."""
    import gankit.sampling.writer as writer

    real, written = os.write, {"bytes": 0}
    shard_bytes = writer.ALIGN + 32 * 10 * 10  # the header, then 32 samples of 10 x 10 uint8

    def small_disk(fd, data):
        if written["bytes"] + len(data) > 2.5 * shard_bytes:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["bytes"] += len(data)
        return real(fd, data)

    monkeypatch.setattr(writer.os, "write", small_disk)
    with pytest.raises(SamplingError, match="No space left on device.*--resume"):
        run_job(tmp_path / "out", model_file)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["status"] == "partial" and manifest["samples"] == 64
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(("shard", ".shard"))) == [
        "shard_00000.npy",
        "shard_00001.npy",
    ]
    monkeypatch.setattr(writer.os, "write", real)
    run_job(tmp_path / "out", model_file, resume=True)
    run_job(tmp_path / "straight", model_file)
    straight, resumed = shard_arrays(tmp_path / "straight"), shard_arrays(tmp_path / "out")
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight) and len(resumed) == 4


def test_shards_are_plain_npy_with_page_aligned_data(tmp_path: Path, monkeypatch) -> None:
    """np.load (and its mmap) read a shard; its data start at byte 4096; a file system without O_DIRECT
    (EINVAL, as tmpfs) gets the same bytes written buffered."""
    import fcntl

    import gankit.sampling.writer as writer

    images = writer.aligned_empty(3000 * 784).reshape(3000, 1, 28, 28)
    images[...] = np.random.default_rng(0).integers(0, 256, images.shape)
    record = writer.write_shard(tmp_path, "direct.npy", 0, images)
    data = (tmp_path / "direct.npy").read_bytes()
    assert len(data) == record.bytes == 4096 + images.nbytes and data[4096:] == images.tobytes()
    assert np.array_equal(np.load(tmp_path / "direct.npy"), images)
    assert np.array_equal(np.load(tmp_path / "direct.npy", mmap_mode="r"), images)
    assert record.checksum == f"{zlib.crc32(data):08x}" and record.algorithm == "crc32"
    real = fcntl.fcntl

    def no_direct(fd, command, flags=0):
        if command == fcntl.F_SETFL and flags & writer.DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, command, flags)

    monkeypatch.setattr(writer.fcntl, "fcntl", no_direct)
    buffered = writer.write_shard(tmp_path, "buffered.npy", 0, images)
    assert (tmp_path / "buffered.npy").read_bytes() == data and buffered == record.__class__(
        "buffered.npy", 0, 3000, record.bytes, record.checksum
    )


def test_resume_refuses_another_seed_or_model(tmp_path: Path, model_file: Path, seed_model_file: Path) -> None:
    run_job(tmp_path / "out", model_file, n=40)
    with pytest.raises(SamplingError, match="another seed"):
        run_job(tmp_path / "out", model_file, n=40, seed=8, resume=True)
    with pytest.raises(SamplingError, match="another model"):
        run_job(tmp_path / "out", seed_model_file, n=40, resume=True)
    with pytest.raises(SamplingError, match="already holds a sampling run"):
        run_job(tmp_path / "out", model_file, n=40)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "--n must be positive"),
        ({"batch_size": 0}, "must be positive"),
        ({"format": "tiff"}, "unknown --format"),
        ({"format": "grid", "n": 5000}, "at most 4096"),
    ],
)
def test_bad_job_options(tmp_path: Path, model_file: Path, options: dict, message: str) -> None:
    with pytest.raises(SamplingError, match=message):
        run_job(tmp_path / "out", model_file, **options)


def test_output_not_writable(tmp_path: Path, model_file: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SamplingError, match="cannot write"):
        run_job(blocker / "out", model_file)


def test_unknown_and_mismatched_backends(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        run_job(tmp_path / "out", model_file, backend="tensorrt")
    onnx_path = ROOT / "exported" / "generator.onnx"  # the file is read first: it must be an ONNX model
    with pytest.raises(BackendError, match="runs on --backend onnxruntime"):
        run_job(tmp_path / "out2", onnx_path, backend="eager")


def test_cli_sample_errors_are_one_line(tmp_path: Path, model_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "sample", str(model_file), "--n", "-3", "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["gankit sample: error: --n must be positive, got -3"]


def test_cpu_backends_agree_on_the_same_indices(tmp_path: Path, model_file: Path) -> None:
    from gankit.export import export

    onnx_path = export(model_file, tmp_path / "g.onnx", log=lambda line: None).path
    reference = generate(model_file, n=40, seed=4, start=1000, backend="eager", batch_size=16)
    for backend, model in (("compile", model_file), ("onnxruntime", model_file), ("onnxruntime", onnx_path)):
        images = generate(model, n=40, seed=4, start=1000, backend=backend, batch_size=16)
        torch.testing.assert_close(images, reference, atol=1e-5, rtol=0, msg=f"{backend} on {model.name}")
    run_job(tmp_path / "from-onnx", onnx_path, backend="auto", n=40)
    manifest = json.loads((tmp_path / "from-onnx" / MANIFEST).read_text())
    assert manifest["job"]["backend"] == "onnxruntime" and manifest["samples"] == 40


GRID_IMPORTS = """
import runpy, sys
sys.argv = ["gankit", "sample", "--n", "64", "--out", sys.argv[1]]
try:
    runpy.run_module("gankit", run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
heavy = ("torchvision", "matplotlib", "triton", "onnxscript", "torch._dynamo", "torch.export._trace")
print("imported:", ",".join(name for name in heavy if name in sys.modules))
"""


@pytest.mark.slow
def test_a_grid_imports_only_what_it_needs(tmp_path: Path, bundled_grid_cache: Path) -> None:
    """Time to first image: with warm caches, `gankit sample --n 64 --out grid.png` (default options) imports
    neither the ONNX exporter nor torchvision, matplotlib or triton (tqdm comes with torch itself)."""
    cache = shutil.copytree(bundled_grid_cache / "cache", tmp_path / "cache")  # warmed by the same command
    env = {**os.environ, "GANKIT_CACHE_DIR": str(cache)}
    command = [sys.executable, "-c", GRID_IMPORTS, str(tmp_path / "warm.png")]
    warm = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert warm.stdout.strip().endswith("imported:"), warm.stdout
    assert (bundled_grid_cache / "grid.png").is_file() and (tmp_path / "warm.png").is_file()


def test_a_huge_n_is_refused_before_any_plan_or_folder(tmp_path: Path, model_file: Path) -> None:
    """Issue 22, 1 and 10: --n 2**62 (once a list of every shard, 23 GB) and --start 2**63 are refused in one
    line, with nothing written."""
    with pytest.raises(SamplingError, match="shards; at most"):
        run_job(tmp_path / "n", model_file, n=2**62, shard_size=65536)
    with pytest.raises(SamplingError, match="pass the last index the noise defines"):
        run_job(tmp_path / "s", model_file, start=2**63)
    assert not (tmp_path / "n").exists() and not (tmp_path / "s").exists()


def test_a_job_larger_than_the_disk_or_memory_is_refused_with_nothing_written(
    tmp_path: Path, model_file: Path, monkeypatch
) -> None:
    """The bound names the need and the limit; the refusal leaves no folder and no manifest."""
    from gankit.errors import ResourceError

    monkeypatch.setattr("gankit.limits.free_disk", lambda path: 1000)
    with pytest.raises(ResourceError, match=r"--n 100 \(100 bytes a sample\) needs .* on disk; .* is free"):
        run_job(tmp_path / "out", model_file)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr("gankit.limits.available_memory", lambda: 10_000)
    with pytest.raises(ResourceError, match="needs .* of memory; .* is available"):
        run_job(tmp_path / "out", model_file)
    assert not (tmp_path / "out").exists()


def test_a_huge_batch_size_allocates_no_more_than_the_job_needs() -> None:
    """Issue 22, 5: a batch never spans two shards, so --batch-size 2**40 is lowered to what the job can use (the
    default 4096 at least): the same images, buffers of a bounded size."""
    assert SampleJob(Path("o"), 10, batch_size=2**40).batch_size == 4096
    assert SampleJob(Path("o"), 10**6, batch_size=2**40, shard_size=10_000).batch_size == 10_000
    assert SampleJob(Path("o"), 10**6, batch_size=2**40, shard_size=1000).batch_size == 4096
    assert SampleJob(Path("o"), 10, batch_size=16).batch_size == 16


def test_a_complete_run_leaves_no_empty_journal(tmp_path: Path, model_file: Path) -> None:
    run_job(tmp_path / "out", model_file)
    assert not (tmp_path / "out" / ".journal").exists()


def test_resume_remakes_a_deleted_png_shard(tmp_path: Path, model_file: Path) -> None:
    """Issue 22, 3: a PNG shard folder removed after the run is made again by --resume (it was trusted)."""
    run_job(tmp_path / "p", model_file, n=60, shard_size=20, format="png")
    before = {p.name: p.read_bytes() for p in (tmp_path / "p" / "shard_00001").iterdir()}
    for path in (tmp_path / "p" / "shard_00001").iterdir():
        path.unlink()
    (tmp_path / "p" / "shard_00001").rmdir()
    said = []
    result = sample(
        SampleJob(tmp_path / "p", n=60, model=model_file, seed=7, batch_size=16, shard_size=20, format="png",
                  backend="eager", resume=True),
        progress=False,
        log=said.append,
    )  # fmt: skip
    assert result.samples_written == 20 and any("shard_00001/: missing; made again" in line for line in said)
    assert {p.name: p.read_bytes() for p in (tmp_path / "p" / "shard_00001").iterdir()} == before
    (tmp_path / "p" / "shard_00002" / "000000045.png").unlink()  # one file of a folder shard
    assert run_job(tmp_path / "p", model_file, n=60, shard_size=20, format="png", resume=True).samples_written == 20


def test_resume_remakes_a_shard_whose_checksum_fails(tmp_path: Path, model_file: Path) -> None:
    """Issue 22, 6: a bit flip that keeps a shard's size is found by its CRC-32 on --resume and made again."""
    run_job(tmp_path / "out", model_file)
    shard = tmp_path / "out" / "shard_00001.npy"
    good = shard.read_bytes()
    flipped = bytearray(good)
    flipped[-5] ^= 0x01
    shard.write_bytes(bytes(flipped))
    said = []
    result = sample(
        SampleJob(tmp_path / "out", n=100, model=model_file, seed=7, batch_size=16, shard_size=32, backend="eager",
                  resume=True),
        progress=False,
        log=said.append,
    )  # fmt: skip
    assert result.samples_written == 32 and shard.read_bytes() == good
    assert any(line.startswith("shard_00001.npy: crc32 ") and "made again" in line for line in said)


def test_verify_names_every_bad_or_missing_shard(tmp_path: Path, model_file: Path) -> None:
    """gankit verify RUN: exit 0 on a whole run; 1 naming a flipped shard, a missing one and a missing labels
    range; 2 on a folder that is no run. Without the model."""
    from gankit.cli import main

    run_job(tmp_path / "out", model_file)
    assert main(["verify", str(tmp_path / "out")]) == 0
    flipped = bytearray((tmp_path / "out" / "shard_00000.npy").read_bytes())
    flipped[-1] ^= 0x80
    (tmp_path / "out" / "shard_00000.npy").write_bytes(bytes(flipped))
    (tmp_path / "out" / "shard_00003.npy").unlink()
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    del manifest["shards"][2]
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    from gankit.sampling.manifest import verify_run

    problems = verify_run(tmp_path / "out")
    assert problems[0].startswith("shard_00000.npy: crc32 ") and problems[1] == "shard_00003.npy: missing"
    assert problems[2] == "samples 64 .. 95: in no shard" and len(problems) == 3
    assert main(["verify", str(tmp_path / "out")]) == 1
    assert main(["verify", str(tmp_path)]) == 2


def test_a_grid_is_not_replaced_without_force(tmp_path: Path, model_file: Path) -> None:
    """Issue 22, 13: one overwrite rule; a grid onto an existing file is refused, --force replaces it."""
    from gankit.errors import OutputError

    grid = tmp_path / "g.png"
    grid.write_bytes(b"someone else's picture")
    with pytest.raises(OutputError, match="already exists .*--force"):
        run_job(grid, model_file, n=16, format="grid")
    assert grid.read_bytes() == b"someone else's picture"
    run_job(grid, model_file, n=16, format="grid", force=True)
    assert grid.read_bytes().startswith(b"\x89PNG")


def test_a_run_folder_has_one_writer_and_a_dead_owner_is_taken_over(tmp_path: Path, model_file: Path) -> None:
    """Issue 22, 13: two `--resume` on one folder at once both redid all the work. A live owner's lock refuses the
    second writer in one line; one left by a killed process is taken over; a finished run leaves none."""
    from gankit.errors import OutputError

    run_job(tmp_path / "out", model_file, n=40)
    lock = tmp_path / "out" / ".lock"
    assert not lock.exists()
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    (tmp_path / "out" / MANIFEST).write_text(
        json.dumps(dict(manifest, status="partial", shards=manifest["shards"][:1]))
    )
    import socket

    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # alive: pytest's parent
    with pytest.raises(OutputError, match=f"being written by process {os.getppid()}"):
        run_job(tmp_path / "out", model_file, n=40, resume=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))  # killed, lock left
    assert run_job(tmp_path / "out", model_file, n=40, resume=True).samples_written == 8
    assert not lock.exists()


def test_resume_on_a_completely_full_disk_is_one_line(tmp_path: Path, model_file: Path, monkeypatch, capsys) -> None:
    """Issue 22, 8: --resume on a full disk (no shard, no journal, no manifest can be written) ended in three
    chained tracebacks; now one line, exit 2, and the manifest on disk is still the last good one."""
    import gankit.io
    import gankit.sampling.writer as writer
    from gankit.cli import main

    run_job(tmp_path / "out", model_file)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(dict(manifest, status="partial", shards=[])))
    before = (tmp_path / "out" / MANIFEST).read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.os, "write", full)
    monkeypatch.setattr(gankit.io.tempfile, "mkstemp", full)  # no journal, no manifest either
    args = ["sample", str(model_file), "--n", "100", "--seed", "7", "--batch-size", "16", "--shard-size", "32"]
    assert main([*args, "--backend", "eager", "--out", str(tmp_path / "out"), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit sample: error: ") and "No space left on device" in err and err.count("\n") == 1
    assert (tmp_path / "out" / MANIFEST).read_bytes() == before


def test_the_format_follows_out_unless_given() -> None:
    from gankit.sampling.job import format_for

    assert format_for("x.png") == "grid" and format_for("run") == "npy" and format_for("x.png", "npy") == "npy"
