"""gankit bench: roofline arithmetic, the correctness gate before timing, and the written report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gankit.bench as bench
from gankit.backends.eager import EagerBackend
from gankit.checkpoint import save_generator
from gankit.config import GeneratorConfig


@pytest.fixture
def model_file(tmp_path: Path, small_generator) -> Path:
    return save_generator(tmp_path / "g.safetensors", small_generator)


def test_flops_and_bytes_per_sample_of_the_seed_generator() -> None:
    config = GeneratorConfig()
    assert config.flops_per_sample == 2 * (100 * 256 + 256 * 512 + 512 * 784) == 1_116_160
    assert config.parameter_count == 559_632
    per_sample = bench.bytes_per_sample(config, batch=1000, precision="fp32", output="uint8")
    assert per_sample == pytest.approx(4 * 100 + 784 + 4 * 559_632 / 1000)


def test_roofline_takes_the_lower_ceiling() -> None:
    config = GeneratorConfig()
    compute_bound = bench.Ceilings(1e12, 1e15, "gemm", "copy")
    memory_bound = bench.Ceilings(1e15, 1e9, "gemm", "copy")
    assert bench.roofline(config, compute_bound, 4096, "fp32", "float") == pytest.approx(1e12 / 1_116_160)
    expected = 1e9 / bench.bytes_per_sample(config, 4096, "fp32", "float")
    assert bench.roofline(config, memory_bound, 4096, "fp32", "float") == pytest.approx(expected)


def test_run_bench_checks_then_times_and_writes_json_and_plot(tmp_path: Path, model_file: Path) -> None:
    report = bench.run_bench(model_file, backends=["eager"], batch_sizes=[1, 8], device="cpu", log=lambda line: None)
    assert [(m.backend, m.batch, m.status) for m in report.results] == [("eager", 1, "ok"), ("eager", 8, "ok")]
    for m in report.results:
        assert m.samples_per_second > 0 and m.median_seconds <= m.p90_seconds
        assert 0 < m.fraction_of_roofline and m.speedup_vs_eager == 1.0 and m.max_abs_error == 0.0
    json_path, png_path = bench.write_report(report, tmp_path / "result")
    payload = json.loads(json_path.read_text())
    for key in ("date", "git_commit", "torch", "cpu", "device_type", "onnxruntime", "triton"):
        assert key in payload["environment"]
    assert payload["ceilings"]["fp32"]["flops_per_second"] > 0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "eager" in bench.format_table(report) and "| eager | fp32 | 8 |" in bench.markdown_table(report)


def test_table_leaves_out_paths_that_do_not_exist(model_file: Path) -> None:
    report = bench.run_bench(
        model_file, backends=["eager", "onnxruntime"], precisions=["int8"], batch_sizes=[4], device="cpu", log=print
    )
    statuses = {m.backend: m.status for m in report.results}
    assert statuses == {"eager": "skipped", "onnxruntime": "ok"}
    table = bench.format_table(report)
    assert "onnxruntime  int8" in table and "eager        int8" not in table
    assert "(no such path, not timed: eager int8)" in table


def test_a_wrong_backend_is_not_timed(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    class Wrong(EagerBackend):
        def generate_float(self, z: torch.Tensor) -> torch.Tensor:
            return super().generate_float(z) + 0.01

    monkeypatch.setattr(
        bench,
        "_build",
        lambda name, path, precision, device, batch, mode: Wrong(bench.load_generator(path), precision, device),
    )
    report = bench.run_bench(model_file, backends=["eager"], batch_sizes=[4], device="cpu", log=lambda line: None)
    (result,) = report.results
    assert result.status == "wrong" and result.samples_per_second is None
    assert "tolerance" in result.note and result.max_abs_error == pytest.approx(0.01, rel=1e-3)


def test_unknown_backend_is_reported_not_crashed(model_file: Path) -> None:
    report = bench.run_bench(model_file, backends=["nope"], batch_sizes=[2], device="cpu", log=lambda line: None)
    assert report.results[0].status == "unavailable" and "unknown backend" in report.results[0].note


def test_cli_bench_writes_files(tmp_path: Path, model_file: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "cpu-run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gankit",
            "bench",
            str(model_file),
            "--backends",
            "eager",
            "--batch-sizes",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "samples/s" in result.stdout and out.with_suffix(".json").exists() and out.with_suffix(".png").exists()
