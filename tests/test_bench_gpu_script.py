"""benchmarks/bench_gpu_kernels.py on the CPU: its paths agree with eager under the interpreter, its
checks and target verdicts are right, and without a GPU it stops with a one-line message.

The timings themselves need a CUDA GPU; these are the parts of the script that do not."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.model import Generator
from gankit.noise import noise

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu_kernels.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("bench_gpu_kernels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU interpreter; on a GPU run the script itself")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_path_matches_eager_fp32(script, seed_generator: Generator, precision: str) -> None:
    batch = 5
    z = noise(7, 0, batch, 100)
    with torch.inference_mode():
        expected = seed_generator(z).reshape(batch, -1).float()
        expected_seeded = seed_generator(noise(1, 0, batch, 100)).reshape(batch, -1)
    calls = script.paths(seed_generator, precision, batch, z, compile_modes=[])
    assert set(calls) == {"eager", "triton-z", "triton-z-uint8", "triton-seed", "triton-seed-uint8", "triton-layers"}
    for name, call in calls.items():
        reference = expected_seeded if name.startswith("triton-seed") else expected
        error, problem = script.check(call(), reference, precision)
        assert problem is None, (name, precision, error)


def test_check_flags_wrong_images(script) -> None:
    expected = torch.zeros(2, 784)
    assert script.check(expected + 2e-6, expected, "fp32")[1] is None
    assert script.check(expected + 1e-3, expected, "fp32")[1] is not None
    levels = torch.full((2, 784), 128, dtype=torch.uint8)  # 128 / 127.5 - 1 = 0.0039: one level off 0
    assert script.check(levels, expected, "fp32")[1] is None
    assert script.check(levels + 2, expected, "fp32")[1] is not None


def row(path: str, rate: float, roofline: float = 0.6, batch: int = 65536) -> dict:
    return {
        "path": path,
        "precision": "bf16",
        "batch": batch,
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gets")
def test_without_gpu_exits_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.json").exists()
