"""The GPU benchmark and tuning scripts of benchmarks/ on the CPU: what they compute and decide without timing.

bench_gpu_kernels.py: its paths agree with eager under the interpreter, its checks and target verdicts
are right, a rerun replaces a row, --report-only redraws a JSON, and without a GPU it stops with a
one-line message. generator_configs.py: the FLOP and L2 arithmetic against the kernel's own loops and
docstring, and the one-configuration launch. tune_generator_kernel.py: a configuration is checked
before it is timed, the targets name the ceiling that binds. warm_triton_cache.py: its launch list.
gpu_sampling_to_disk.py: the disk and hash ceilings and the binding bound. compile_generator_offline.py:
a configuration compiles for sm_90 without a GPU. The timings themselves need a CUDA GPU.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.errors import BackendError
from gankit.model import Generator
from gankit.noise import noise

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
INTERPRETER_ONLY = pytest.mark.skipif(ON_GPU, reason="checks the CPU interpreter; on a GPU run the script itself")


def load(name: str):
    """A script of benchmarks/ as a module of the benchmarks package."""
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(scope="module")
def script():
    return load("bench_gpu_kernels")


@pytest.fixture(scope="module")
def space():
    return load("generator_configs")


@pytest.fixture(scope="module")
def tune():
    return load("tune_generator_kernel")


# ----------------------------------------------------------------------------- bench_gpu_kernels.py


@INTERPRETER_ONLY
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_path_matches_eager_fp32(script, seed_generator: Generator, precision: str) -> None:
    batch = 5
    z = noise(7, 0, batch, 100)
    with torch.inference_mode():
        expected = seed_generator(z).reshape(batch, -1).float()
        expected_seeded = seed_generator(noise(1, 0, batch, 100)).reshape(batch, -1)
    calls = script.paths(seed_generator, precision, batch, z, compile_modes=[])
    assert list(calls) == script.path_names(precision, [])
    assert seed_generator.layers[0].weight.dtype == torch.float32  # the caller's generator is left as it is
    for name, call in calls.items():
        if name == "onnxruntime-cuda":
            continue  # CUDA only: see the next test
        reference = expected_seeded if name.startswith("triton-seed") else expected
        error, problem = script.check(call(), reference, precision)
        assert problem is None, (name, precision, error)


def test_onnxruntime_cuda_without_its_provider_is_unavailable(script, seed_generator: Generator) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and ON_GPU:
        pytest.skip("onnxruntime-gpu is installed here: the path runs")
    z = noise(7, 0, 2, 100, device=DEVICE)
    call = script.paths(seed_generator, "fp32", 2, z, compile_modes=[])["onnxruntime-cuda"]
    with pytest.raises(BackendError, match="no CUDAExecutionProvider .* it needs onnxruntime-gpu"):
        call()


def test_path_order_and_which_precisions_have_onnxruntime(script) -> None:
    names = script.path_names("bf16", ["default", "max-autotune"])
    assert names[0] == "eager" and names[-2:] == ["compile-default", "compile-max-autotune"]
    assert "onnxruntime-cuda" in names and "onnxruntime-cuda" not in script.path_names("tf32", [])
    assert script.selected("compile-max-autotune", ["eager", "compile-*"])
    assert not script.selected("triton-z-uint8", ["triton-z", "compile-*"])


def test_checked_samples_include_the_last_ones(script) -> None:
    assert script.checked_ranges(10) == [(0, 10)]
    assert script.checked_ranges(66560) == [(0, 66560)]
    assert script.checked_ranges(1_048_576) == [(0, 65536), (1_048_576 - 1024, 1024)]


def test_check_flags_wrong_images(script) -> None:
    expected = torch.zeros(2, 784)
    assert script.check(expected + 2e-6, expected, "fp32")[1] is None
    assert script.check(expected + 1e-3, expected, "fp32")[1] is not None
    levels = torch.full((2, 784), 128, dtype=torch.uint8)  # 128 / 127.5 - 1 = 0.0039: one level off 0
    assert script.check(levels, expected, "fp32")[1] is None
    assert script.check(levels + 2, expected, "fp32")[1] is not None


def row(path: str, rate: float, roofline: float = 0.6, batch: int = 65536, precision: str = "bf16") -> dict:
    return {
        "path": path,
        "precision": precision,
        "batch": batch,
        "status": "ok",
        "median_s": batch / rate,
        "samples_per_s": rate,
        "fraction_of_roofline": roofline,
    }


def test_targets_pass_fail_and_not_measured(script) -> None:
    report = {
        "results": [
            row("eager", 1e6),
            row("compile-default", 2e6),
            row("triton-z", 3.5e6, roofline=0.55),  # 3.5x eager, 1.75x compile, 55 %: all PASS
            row("triton-seed-uint8", 2.5e6, roofline=0.4),  # 2.5x eager, 1.25x compile, 40 %: all FAIL
        ],
        "batch1_seed_to_image": {"bf16": {"do_bench_median_s": 12e-6}},
    }
    verdicts = {v["what"]: v["verdict"] for v in script.evaluate_targets(report)}
    z = [v for what, v in verdicts.items() if what.startswith("triton-z ")]
    seed = [v for what, v in verdicts.items() if what.startswith("triton-seed-uint8 ")]
    assert z == ["PASS"] * 3 and seed == ["FAIL"] * 3
    assert verdicts["batch-1 seed -> image (bf16, do_bench median), seconds"] == "FAIL"
    empty = script.evaluate_targets({"results": []})
    assert {v["verdict"] for v in empty} == {"NOT MEASURED"}


def test_a_rerun_replaces_its_row(script) -> None:
    report = {"results": [row("eager", 1e6), row("eager", 2e6, precision="fp32")]}
    script.put_row(report, row("eager", 3e6))
    assert sorted((r["precision"], r["samples_per_s"]) for r in report["results"]) == [("bf16", 3e6), ("fp32", 2e6)]


def test_report_only_reevaluates_and_plots(script, tmp_path: Path) -> None:
    from gankit.config import GeneratorConfig

    config = GeneratorConfig()
    ceilings = {"flops_per_second": 7e14, "bytes_per_second": 3e12, "gemm": "g", "copy": "c"}
    left_out = {"path": "compile-default", "precision": "bf16", "batch": 65536, "status": "left out: budget spent"}
    rows = [row("eager", 1e6), row("triton-z", 4e6), row("triton-z", 2e5, batch=1), left_out]
    report = {"results": rows, "ceilings": {"bf16": ceilings}, "config": json.loads(config.to_json())}
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    out.write_text(json.dumps(report))
    script.main(["--out", str(out), "--report-only", "--plot", str(png)])
    written = json.loads(out.read_text())
    assert written["results"] == rows
    verdicts = {v["what"]: v["verdict"] for v in written["targets"]}
    assert verdicts["triton-z bf16 batch 65536: x eager"] == "PASS"
    assert verdicts["triton-z bf16 batch 65536: x best torch.compile"] == "NOT MEASURED"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not script.plot({"results": [left_out], "ceilings": {"bf16": ceilings}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


@pytest.mark.skipif(ON_GPU, reason="checks the message a machine without a GPU gets")
def test_without_gpu_exits_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_gpu_kernels", "--out", str(tmp_path / "x.json")],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- generator_configs.py


def loop_flops(config: tuple, sizes: tuple) -> float:
    """Executed FLOPs a sample, counted by walking the kernel's loops for one tile of BLOCK_M samples."""
    bm, bk, bh2, split, _, _ = config
    latent, h1, h2, nout = sizes
    h1p = 1 << (h1 - 1).bit_length()
    block_out = max(16, 1 << (nout - 1).bit_length()) // split
    macs = 0
    for _ in range(0, nout, block_out):  # programs along the row: blocks wholly past NOUT are not launched
        macs += sum(bm * bk * h1p for _ in range(0, latent, bk))
        macs += sum(bm * h1p * bh2 + bm * bh2 * block_out for _ in range(0, h2, bh2))
    return 2 * macs / bm


@pytest.mark.parametrize(
    "sizes, split",  # the small generator's 100-wide output (padded to 128) allows no more than 8 blocks of 16
    [((100, 256, 512, 784), split) for split in (1, 2, 4, 8, 16)] + [((20, 48, 80, 100), split) for split in (1, 2, 8)],
)
def test_executed_flops_follow_the_kernel_loops(space, sizes: tuple, split: int) -> None:
    config = (32, 32, 32, split, 4, 2)
    assert space.executed_flops_per_sample(config, sizes) == loop_flops(config, sizes)


def test_overheads_and_l2_reads_match_the_kernel_docstring(space) -> None:
    useful = 2 * (100 * 256 + 256 * 512 + 512 * 784)
    unpadded = {
        split: space.executed_flops_per_sample((16, 128, 64, split, 4, 2), (128, 256, 512, 784))
        for split in (1, 2, 4, 8, 16)
    }
    extra_k = {split: 2 * space.output_blocks(split, 784)[0] * 28 * 256 for split in unpadded}  # latent 100, not 128
    overhead = {split: (unpadded[split] - extra_k[split]) / useful for split in unpadded}
    for split, documented in {1: 1.22, 2: 1.50, 4: 2.06, 8: 2.79, 16: 4.41}.items():
        assert overhead[split] == pytest.approx(documented, abs=0.006), split
    for (bm, split), kilobytes in {(16, 1): 70, (64, 4): 32, (128, 8): 23}.items():  # "~70 KB", "~32 KB", "~23 KB"
        assert space.weight_bytes_per_sample((bm, 32, 32, split, 8, 2)) / 1000 == pytest.approx(kilobytes, rel=0.04)


def test_bounds_and_hbm_bytes(space) -> None:
    assert space.hbm_bytes_per_sample("z-float") == 400 + 3136
    assert space.hbm_bytes_per_sample("seed-uint8") == 784
    config = (64, 32, 64, 4, 8, 2)
    bounds = space.bounds(config, "seed-uint8", {"tensor_core_flops": 8e14, "hbm_bytes": 3e12, "l2_bytes": None})
    assert set(bounds) == {"tensor_core_flops", "hbm_bytes"}  # the L2 was not measured
    assert bounds["hbm_bytes"] == 3e12 / 784
    assert bounds["tensor_core_flops"] == 8e14 / space.executed_flops_per_sample(config)


def test_the_sweep_configurations_are_launchable(space) -> None:
    for points in (space.SWEEP, space.LATENCY):
        assert points and len(set(points)) == len(points)
        for bm, bk, bh2, split, warps, stages in points:
            assert all(v & (v - 1) == 0 for v in (bm, bk, bh2, split, warps)), (bm, bk, bh2, split, warps)
            assert bm >= 16 and bk >= 16 and bh2 >= 16 and 1024 // split >= 16 and 1 <= stages <= 4
    assert all(point[0] == 16 for point in space.LATENCY)
    assert space.label((64, 32, 64, 4, 8, 2)) == "M64-K32-H64-s4-w8-st2"
    config = space.make_config((64, 32, 64, 4, 8, 2))
    assert (config.kwargs["OUT_SPLIT"], config.num_warps, config.num_stages) == (4, 8, 2)


def test_only_config_runs_the_launcher_under_one_configuration_then_restores(space, small_generator) -> None:
    from kernels.generator import generator_forward, generator_kernel, pack_generator

    layers = small_generator.layers
    packed = pack_generator([x.weight for x in layers], [x.bias for x in layers], 0.2, torch.float32, DEVICE)
    saved = generator_kernel.configs
    config = space.make_config((32, 16, 16, 2, 4, 1))
    before = space.compiled_kernels(generator_kernel)
    with pytest.raises(RuntimeError, match="inside"), space.only_config(generator_kernel, config):
        generator_forward(packed, count=3, seed=1)
        assert generator_kernel.best_config is config
        raise RuntimeError("inside")
    assert generator_kernel.configs is saved
    new = [kernel for key, kernel in space.compiled_kernels(generator_kernel).items() if key not in before]
    if ON_GPU:  # what Triton compiled, with its resources
        assert new and space.compiled_stats(new[-1])["registers"] > 0
    else:  # the interpreter compiles nothing
        assert new == [] and space.compiled_stats(object()) == dict.fromkeys(("registers", "spills", "shared_bytes"))


# ----------------------------------------------------------------------------- tune_generator_kernel.py


def fake_timer(call) -> dict:
    begin = time.perf_counter()
    call()
    seconds = time.perf_counter() - begin
    return {"median_s": seconds, "p20_s": seconds, "p80_s": seconds}


def test_a_configuration_is_checked_before_it_is_timed(tune, seed_generator: Generator) -> None:
    from kernels.generator import pack_generator

    layers = seed_generator.layers
    packed = pack_generator([x.weight for x in layers], [x.bias for x in layers], 0.2, torch.bfloat16, DEVICE)
    batch, config = 9, (16, 32, 64, 4, 4, 2)
    z = noise(7, 0, batch, 100, device=DEVICE)
    reference = seed_generator.to(DEVICE)
    with torch.inference_mode():
        expected = {
            "z-float": reference(z).reshape(batch, -1),
            "seed-uint8": reference(noise(1, 0, batch, 100, device=DEVICE)).reshape(batch, -1),
        }
    for case in ("z-float", "seed-uint8"):
        row = tune.run_config(packed, config, case, batch, z, expected[case], fake_timer)
        assert row["status"] == "ok" and row["label"] == "M16-K32-H64-s4-w4-st2", row
        assert row["max_abs_error"] <= 0.15 and row["samples_per_s"] == batch / row["median_s"]
    wrong = tune.run_config(packed, config, "z-float", batch, z, expected["z-float"] + 0.5, fake_timer)
    assert "99.9th percentile" in wrong["status"] and "median_s" not in wrong
    predicted = tune.predict(row, {"tensor_core_flops": 1e15, "l2_bytes": 5e12}, 1_116_160)
    assert predicted["recompute_factor"] == pytest.approx(2.11, abs=0.005)
    assert set(predicted["fraction_of_bounds"]) == {"tensor_core_flops", "l2_bytes"}


def tuned_report() -> dict:
    def throughput(label: str, case: str, rate: float, fractions: dict) -> dict:
        return {
            **{"label": label, "config": [64, 32, 64, 4, 8, 2], "case": case, "batch": 65536, "status": "ok"},
            **{"samples_per_s": rate, "fraction_of_bounds": fractions, "bounds_samples_per_s": {"l2_bytes": 1e8}},
            **{"recompute_factor": 2.1, "l2_weight_bytes_per_sample": 32000.0},
        }

    return {
        "environment": {"gpu": "Test GPU"},
        "flops_per_sample": 1_116_160,
        "ceilings": {"tensor_core_flops": 8e14, "hbm_bytes": 3e12, "l2_bytes": 6e12},
        "throughput": [
            throughput("M64-A", "z-float", 2.0e8, {"l2_bytes": 0.9, "tensor_core_flops": 0.6}),
            throughput("M64-B", "z-float", 1.0e8, {"l2_bytes": 0.5}),
            {"label": "M64-C", "config": [64, 32, 64, 4, 8, 3], "status": "left out: the time budget (9 s) was spent"},
        ],
        "repeat": [],
        "sampling": [throughput("M64-A", "seed-uint8", 4.0e8, {"tensor_core_flops": 0.95, "l2_bytes": 0.8})],
        "latency": [{"label": "M16-L", "config": [16, 32, 64, 16, 4, 2], "status": "ok", "graph_replay_s": 6e-6}],
        "latency_details": {
            "label": "M16-L",
            "launcher_do_bench_s": 25e-6,
            "graph_replay_and_sync_wall_s": 9e-6,
            "floor_graph_replay_and_sync_wall_s": 7e-6,
        },
    }


def test_targets_name_the_ceiling_that_binds(tune) -> None:
    rows = [row("eager", 1e8), row("compile-default", 1.2e8), row("compile-max-autotune", 1.5e8)]
    baselines = {"results": [*rows, row("eager", 5e7, precision="fp32")]}
    disk = {"to_disk_over_disk_ceiling": 0.55, "binding": "writer thread (checksum, then write + fsync): 9 samples/s"}
    verdicts = {t["what"]: t for t in tune.targets(tuned_report(), baselines, disk)}
    z_eager = verdicts["z-float bf16 batch 65536: x eager"]
    assert (z_eager["value"], z_eager["verdict"]) == (2.0, "FAIL")
    assert (
        "M64-A; binds: L2 (90% of the L2 bound, 60% of the tensor cores bound)" in z_eager["note"]
        and "3x eager is 300,000,000/s" in z_eager["note"]
    )
    assert f"the roofline {8e14 / 1_116_160:,.0f}/s" in z_eager["note"]
    compiled = verdicts["z-float bf16 batch 65536: x best torch.compile (compile-max-autotune)"]
    assert compiled["value"] == pytest.approx(2.0 / 1.5) and compiled["verdict"] == "FAIL"
    sampling = verdicts["seed-uint8 bf16 batch 65536: fraction of the tensor-core roofline"]
    assert sampling["value"] == pytest.approx(4e8 * 1_116_160 / 8e14) and sampling["verdict"] == "PASS"
    assert "binds: tensor cores" in sampling["note"]
    assert verdicts["batch-1 seed -> uint8, seconds: kernel (CUDA-graph replays)"]["verdict"] == "PASS"
    launcher = verdicts["batch-1 seed -> uint8, seconds: launcher from Python (do_bench)"]
    assert launcher["verdict"] == "FAIL" and "floor (a one-kernel graph): 7.0 us" in launcher["note"]
    to_disk = verdicts["10 M uint8 samples to disk: rate / the disk's own write rate"]
    assert to_disk["verdict"] == "FAIL" and to_disk["note"].startswith("writer thread")
    nothing = tune.targets({**tuned_report(), "throughput": [], "sampling": [], "latency": []}, None, None)
    assert {t["verdict"] for t in nothing[:6]} == {"NOT MEASURED"}


def test_report_only_writes_the_plot_and_the_notes(tune, tmp_path: Path) -> None:
    out, png, notes = tmp_path / "tune.json", tmp_path / "tune.png", tmp_path / "notes.md"
    out.write_text(json.dumps(tuned_report()))
    tune.main(["--out", str(out), "--report-only", "--plot", str(png), "--notes", str(notes)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = notes.read_text()
    assert text.startswith("#### Measured: Test GPU") and "| z-float | M64-A | 200,000,000 |" in text
    assert "Left out (time budget): 1." in text and "| NOT MEASURED |" in text  # no baselines given
    assert json.loads(out.read_text())["targets"]


# ----------------------------------------------------------------------------- warm_triton_cache.py


def test_warm_tasks_cover_each_set_once(space) -> None:
    warm = load("warm_triton_cache")
    autotune = space.autotune_space()
    assert len(warm.tasks(["autotune"], ["bf16"], [1, 256])) == len(autotune) * 4 * 2
    assert len(warm.tasks(["layers"], ["bf16", "fp32"], [1, 256])) == 7 * 2 * 2
    sweep = warm.tasks(["sweep"], ["bf16"], [])
    assert len(sweep) == len(set(autotune) | set(space.SWEEP)) and {t[2:5] for t in sweep} == {(True, "float", 256)}
    both = warm.tasks(["autotune", "sweep"], ["bf16"], [256])  # z -> float at 256 is in both: once
    assert len(both) == len(set(both)) == len(autotune) * 3 + len(sweep)
    latency = warm.tasks(["latency"], ["bf16"], [256])
    assert {task[4] for task in latency} == {1} and len(latency) == len(space.LATENCY)


# ----------------------------------------------------------------------------- gpu_sampling_to_disk.py


def test_disk_ceiling_writes_fsyncs_and_cleans_up(tmp_path: Path) -> None:
    disk = load("gpu_sampling_to_disk")
    data = np.arange(4096, dtype=np.uint8)
    result = disk.write_files(tmp_path, data, 3)
    assert result["bytes"] == 3 * 4096 and result["bytes_per_s"] == result["bytes"] / result["seconds"]
    assert list(tmp_path.iterdir()) == []
    assert disk.write_files(tmp_path, data, 3, stop_at=time.monotonic() - 1)["bytes"] == 4096  # past the deadline
    assert disk.checksum_bytes_per_s(data, min_seconds=0.01) > 0
    mount = disk.filesystem(tmp_path)
    assert str(tmp_path.resolve()).startswith(mount["mount"]) and mount["free_bytes"] > 0


def test_the_writer_bound_and_the_fitted_count() -> None:
    disk = load("gpu_sampling_to_disk")
    name, bound = disk.binding({"checksum": 3e6, "disk": 1e6, "generation": 5e7, "copy": 2e7})
    assert name.startswith("writer thread") and bound == pytest.approx(1 / (1 / 3e6 + 1 / 1e6))
    name, bound = disk.binding({"checksum": 3e9, "disk": 1e9, "generation": 5e6, "copy": 2e7})
    assert name.startswith("generation") and bound == 5e6
    assert disk.fitted_n(10_000_000, 1e6, 20.0) == 10_000_000
    assert disk.fitted_n(10_000_000, 1e6, 5.0) == 5_000_000 // 65536 * 65536
    assert disk.fitted_n(10_000_000, 1e3, 5.0) == 65536


# ----------------------------------------------------------------------------- compile_generator_offline.py


def test_a_configuration_compiles_for_sm90_without_a_gpu(space, tmp_path: Path) -> None:
    triton = pytest.importorskip("triton")
    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump").exists():
        pytest.skip("this Triton wheel carries no ptxas/cuobjdump")
    out = tmp_path / "offline.json"
    label = space.label(space.LATENCY[0])
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "benchmarks.compile_generator_offline", "--out", str(out)]
    command += ["--set", "latency", "--labels", label, "--case", "seed-uint8", "--batch", "1"]
    subprocess.run(command, cwd=BENCHMARKS.parent, env=env, check=True, capture_output=True, timeout=300)
    (result,) = json.loads(out.read_text())["results"]
    assert result["label"] == label and "error" not in result, result
    assert 0 < result["registers"] <= 255 and result["shared_bytes"] > 0 and result["fits"] is True
    assert math.isfinite(result["compile_s"])
