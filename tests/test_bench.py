"""gankit bench: roofline arithmetic and ceilings, the correctness gate before timing, honest timing, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gankit.perf.bench as bench
import gankit.perf.ceilings as ceilings
from gankit.backends.eager import EagerBackend
from gankit.checkpoint import load_generator
from gankit.config import GeneratorConfig
from gankit.cpu import CpuInfo
from gankit.errors import BackendError
from gankit.perf.report import format_table, markdown_table, write_report

ROOT = Path(__file__).resolve().parents[1]


def test_flops_and_bytes_per_sample_of_the_seed_generator() -> None:
    config = GeneratorConfig()
    assert config.flops_per_sample == 2 * (100 * 256 + 256 * 512 + 512 * 784) == 1_116_160
    assert config.parameter_count == 559_632
    per_sample = ceilings.bytes_per_sample(config, batch=1000, precision="fp32", output="uint8")
    assert per_sample == pytest.approx(4 * 100 + 784 + 4 * 559_632 / 1000)


def test_roofline_takes_the_lower_ceiling() -> None:
    config = GeneratorConfig()
    compute_bound = ceilings.Ceilings(1e12, 1e15, "gemm", "copy")
    memory_bound = ceilings.Ceilings(1e15, 1e9, "gemm", "copy")
    assert ceilings.roofline(config, compute_bound, 4096, "fp32", "float") == pytest.approx(1e12 / 1_116_160)
    expected = 1e9 / ceilings.bytes_per_sample(config, 4096, "fp32", "float")
    assert ceilings.roofline(config, memory_bound, 4096, "fp32", "float") == pytest.approx(expected)


def test_the_compute_ceiling_is_the_best_gemm_of_every_library(monkeypatch) -> None:
    """A runtime whose GEMM beats torch's sets the ceiling (else its rows could read above 100 %)."""
    monkeypatch.setattr(ceilings, "CPU_GEMM_SIZE", 64)
    monkeypatch.setattr(ceilings, "settle", lambda: None)
    monkeypatch.setattr(ceilings, "_runtime_gemms", lambda precision, size, folder: {"instant lib": lambda: None})
    measured = ceilings.measure_ceilings(torch.device("cpu"), "fp32")
    assert set(measured.gemms) == {"torch float32", "instant lib"}
    assert measured.gemms["instant lib"] > measured.gemms["torch float32"]
    assert measured.flops_per_second == measured.gemms["instant lib"] and "instant lib" in measured.gemm
    assert measured.bytes_per_second == max(measured.copies.values()) and len(measured.copies) == 2


def test_every_library_gemm_is_measured_for_real() -> None:
    measured = ceilings.measure_ceilings(torch.device("cpu"), "fp32")
    assert {"torch float32", "onnxruntime fp32"} <= set(measured.gemms)
    assert measured.flops_per_second == max(measured.gemms.values()) > 0


@pytest.mark.parametrize(
    ("flags", "precision", "per_cycle"),
    [
        ({"avx2", "fma"}, "fp32", 32),
        ({"avx512f"}, "fp32", 64),
        ({"avx512f", "avx512_bf16"}, "bf16", 128),
        ({"avx512f", "amx_bf16"}, "bf16", 1024),
        ({"avx512f"}, "bf16", 64),  # no native bf16: the fp32 rate
        ({"avx512f", "avx512_vnni"}, "int8", 256),
        ({"avx2", "avx_vnni"}, "int8", 128),
        ({"avx512f", "amx_int8", "avx512_vnni"}, "int8", 2048),
    ],
)
def test_paper_peak(flags: set[str], precision: str, per_cycle: int) -> None:
    peak, how = ceilings.peak_flops(precision, 2, CpuInfo("test", frozenset(flags)), clock_hz=2e9)
    assert peak == per_cycle * 2e9 * 2 and "2.00 GHz (reported) x 2 cores" in how


def test_rows_above_their_roofline_are_reported() -> None:
    rows = [
        bench.Measurement("eager", "fp32", 1, "float", "ok", fraction_of_roofline=0.9),
        bench.Measurement("onnxruntime", "fp32", 64, "float", "ok", fraction_of_roofline=1.87),
    ]
    (warning,) = bench.above_ceiling(rows)
    assert "onnxruntime fp32 at batch 64 runs at 187% of the roofline" in warning


class Slow(EagerBackend):
    """Eager, plus 20 ms a call: the timing path must see the 20 ms."""

    def generate(self, z: torch.Tensor, output: str = "float") -> torch.Tensor:
        time.sleep(0.02)
        return super().generate(z, output=output)


def test_run_bench_times_for_real_and_relates_rows_to_eager(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    real_build = bench._build

    def build(name, model, precision, device, batch, mode):
        if name == "compile":  # stands in for a second backend: eager + 20 ms
            return Slow(model, precision, device)
        return real_build(name, model, precision, device, batch, mode)

    monkeypatch.setattr(bench, "_build", build)
    report = bench.run_bench(
        model_file, backends=["eager", "compile"], batch_sizes=[1, 8], device="cpu", log=lambda line: None
    )
    rows = {(m.backend, m.batch): m for m in report.results}
    assert set(rows) == {("eager", 1), ("compile", 1), ("eager", 8), ("compile", 8)}
    config = load_generator(model_file).config
    for (name, batch), m in rows.items():
        assert m.status == "ok" and m.max_abs_error == 0.0
        assert m.speedup_vs_eager == pytest.approx(m.samples_per_second / rows[("eager", batch)].samples_per_second)
        roof = ceilings.roofline(config, report.ceilings["fp32"], batch, "fp32", "float")
        assert m.fraction_of_roofline == pytest.approx(m.samples_per_second / roof)
        if name == "compile":
            assert m.median_seconds >= 0.02 and m.samples_per_second <= batch / 0.02
    json_path, png_path = write_report(report, tmp_path / "result")
    payload = json.loads(json_path.read_text())
    for key in ("date", "git_commit", "torch", "cpu", "device_type", "onnxruntime", "triton"):
        assert key in payload["environment"]
    assert payload["ceilings"]["fp32"]["flops_per_second"] == max(payload["ceilings"]["fp32"]["gemms"].values())
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| compile | fp32 | 8 |" in markdown_table(report)


def test_table_leaves_out_paths_that_do_not_exist(model_file: Path) -> None:
    report = bench.run_bench(
        model_file,
        backends=["eager", "onnxruntime"],
        precisions=["int8"],
        batch_sizes=[4],
        device="cpu",
        log=lambda line: None,
    )
    statuses = {m.backend: m.status for m in report.results}
    assert statuses == {"eager": "skipped", "onnxruntime": "ok"}
    table = format_table(report)
    assert "onnxruntime  int8" in table and "eager        int8" not in table
    assert "(no such path, not timed: eager int8)" in table


def test_a_wrong_backend_is_not_timed(tmp_path: Path, model_file: Path, monkeypatch) -> None:
    class Wrong(EagerBackend):
        def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
            return super().generate_float(z, labels) + 0.01

    monkeypatch.setattr(
        bench,
        "_build",
        lambda name, model, precision, device, batch, mode: Wrong(model, precision, device),
    )
    report = bench.run_bench(model_file, backends=["eager"], batch_sizes=[4], device="cpu", log=lambda line: None)
    (result,) = report.results
    assert result.status == "wrong" and result.samples_per_second is None
    assert "tolerance" in result.note and result.max_abs_error == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backends": ["nope"]}, "unknown backend 'nope'"),
        ({"batch_sizes": [0]}, "batch sizes must be positive whole numbers, got 0"),
        ({"precisions": ["fp64"]}, "unknown precision fp64"),
        ({"compile_mode": "fast"}, "unknown torch.compile mode 'fast'"),
    ],
)
def test_bad_choices_are_refused_before_anything_runs(model_file: Path, options: dict, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        bench.run_bench(model_file, device="cpu", log=lambda line: None, **options)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gankit", "bench", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "0"], "batch sizes must be positive"),
        (["--batch-sizes", "a,2"], "cannot read 'a,2' as a comma-separated list of int"),
        (["--precisions", "fp64"], "unknown precision fp64"),
        (["--backends", "tensorrt"], "unknown backend 'tensorrt'"),
        (["--device", "cuda"], "has no CUDA GPU"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_cli_bad_input_is_one_line(model_file: Path, args: list[str], message: str) -> None:
    done = _cli(str(model_file), *args)
    assert done.returncode == 2 and done.stderr.startswith("gankit bench: error:") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_bench_writes_files(tmp_path: Path, model_file: Path) -> None:
    out = tmp_path / "cpu-run"
    done = _cli(str(model_file), "--backends", "eager", "--batch-sizes", "2", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "ceilings measured in this run" in done.stdout and "peak on paper" in done.stdout
    assert out.with_suffix(".json").exists() and out.with_suffix(".png").exists()


def test_int8_gate_is_the_export_parity_rule_not_a_max() -> None:
    """A correct int8 model moves a few pixels far (tanh's steep range) and the rest a little: the gate holds
    the 99.9th percentile and the mean (gankit.onnx.parity's int8 rule), so 0.1 % outliers at 0.9 pass, while
    a 1 % band of them, or a small shift of every pixel, fails; fp32/bf16 keep their max."""
    diff = torch.full((4096, 784), 0.01)
    diff.view(-1)[::1000] = 0.9  # 0.1 % of the pixels
    assert bench.gate(diff, "int8") is None
    band = diff.clone()
    band.view(-1)[::100] = 1.2  # 1 %: above the 99.9th percentile's tolerance
    assert "99.9th percentile" in bench.gate(band, "int8")
    shifted = torch.full((64, 784), 0.05)  # every pixel 6 grey levels off: the mean's tolerance is 0.04
    assert "mean" in bench.gate(shifted, "int8")
    assert bench.gate(torch.full((2, 3), 2e-4), "fp32").startswith("max |diff|")
    assert bench.gate(torch.full((2, 3), 5e-5), "fp32") is None


def test_a_gemm_above_the_paper_peak_says_the_clock_was_higher() -> None:
    """/proc/cpuinfo gives a VM's nominal clock: a measured GEMM above the paper peak is reported as such, and the
    measured GEMM stays the ceiling."""
    above = ceilings.Ceilings(384e9, 80e9, "gemm", "copy", peak_flops_per_second=333e9, peak="paper")
    below = ceilings.Ceilings(300e9, 80e9, "gemm", "copy", peak_flops_per_second=333e9, peak="paper")
    assert "below the measured GEMM" in above.describe("fp32") and "384 GFLOP/s" in above.describe("fp32")
    assert "below the measured GEMM" not in below.describe("fp32")
