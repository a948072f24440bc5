"""benchmarks/gpu_all.sh, the three GPU stages, on a machine without a GPU.

With the real Python and the GPU hidden (CUDA_VISIBLE_DEVICES=""), every stage records each step as
skipped with the reason and exits 0. With a stand-in Python that claims a GPU, logs its calls and
creates the files its arguments name under OUTDIR, every step runs whatever the ones before it did:
a failing step and a step stopped at its time limit are recorded, the next steps still run, and no
stage leaves more than the 8 files the device tool brings back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_all.sh"
STEPS = {
    "tests": ["env", "build-ext", "pytest-gpu", "pytest-rest", "test-report"],
    "bench": ["warm-cache", "bench-bf16", "bench-bf16-max-autotune", "bench-tf32-fp32", "bench-report"],
    "tune": ["warm-cache", "baselines", "disk", "sweep", "tune-report"],
}
FAKE_PYTHON = r"""#!/usr/bin/env bash
# A stand-in for python: claims a GPU, logs each call, creates the files named under OUTDIR,
# and fails (FAKE_FAIL), hangs (FAKE_HANG) or writes 9 more files (FAKE_SPRAY) when its arguments match.
echo "$*" >> "$FAKE_CALLS"
if [[ $1 == -c ]]; then
  if [[ $2 == *get_device_name* ]]; then echo "Fake GPU 80GB"; fi
  exit 0
fi
for arg in "$@"; do
  path=${arg#*=}
  if [[ $path == "$FAKE_OUT"/* ]]; then touch "$path"; fi
done
if [[ -n ${FAKE_SPRAY:-} && "$*" == *"$FAKE_SPRAY"* ]]; then
  for i in 1 2 3 4 5 6 7 8 9; do touch "$FAKE_OUT/extra$i"; done
fi
if [[ -n ${FAKE_HANG:-} && "$*" == *"$FAKE_HANG"* ]]; then sleep 60; fi
if [[ -n ${FAKE_FAIL:-} && "$*" == *"$FAKE_FAIL"* ]]; then echo "fake failure" >&2; exit 3; fi
exit 0
"""


def run_stage(stage: str, out: Path, python: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GPU_ALL_BUDGET_S"}
    environment.update(PYTHON=python, CUDA_VISIBLE_DEVICES="", **env)  # "": no GPU, even on a machine with one
    return subprocess.run(
        ["bash", str(SCRIPT), stage, str(out)], env=environment, capture_output=True, text=True, timeout=240
    )


def summary(out: Path, stage: str) -> dict:
    return json.loads((out / f"summary-{stage}.json").read_text())


@pytest.fixture
def fake_python(tmp_path: Path) -> tuple[str, Path, Path]:
    """(the stand-in's path, OUTDIR, the file its calls are logged to)."""
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return str(python), tmp_path / "out", tmp_path / "calls.log"


def fake_env(out: Path, calls: Path, **extra: str) -> dict[str, str]:
    return {"FAKE_OUT": str(out), "FAKE_CALLS": str(calls), **extra}


@pytest.mark.parametrize("stage", list(STEPS))
def test_without_a_gpu_every_step_is_skipped_with_its_reason(stage: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_stage(stage, out, sys.executable)
    assert result.returncode == 0, result.stdout + result.stderr
    report = summary(out, stage)
    assert [step["name"] for step in report["steps"]] == STEPS[stage]
    for step in report["steps"]:
        assert step["status"] == "skipped", step
        assert step["reason"] == "no CUDA device: torch.cuda.is_available() is False", step
    assert report["no_gpu_reason"] and report["gpu"] == ""
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(report["files"]) == sorted([f"summary-{stage}.json", f"{stage}.log"])
    assert "skipped" in (out / f"{stage}.log").read_text()


@pytest.mark.parametrize("stage", list(STEPS))
def test_with_a_gpu_every_step_runs_and_the_files_stay_within_eight(stage: str, fake_python) -> None:
    python, out, calls = fake_python
    result = run_stage(stage, out, python, **fake_env(out, calls))
    assert result.returncode == 0, result.stdout + result.stderr
    report = summary(out, stage)
    assert report["gpu"] == "Fake GPU 80GB" and report["no_gpu_reason"] == ""
    statuses = {step["name"]: step["status"] for step in report["steps"]}
    expected = {name: "ok" for name in STEPS[stage]}  # the tests stage builds the C noise extension first
    assert statuses == expected
    assert 2 < len(list(out.iterdir())) <= 8
    assert sorted(report["files"]) == sorted(p.name for p in out.iterdir())
    logged = calls.read_text()
    for step in report["steps"]:
        if step["status"] == "ok":
            assert step["command"].split(" ", 1)[1] in logged  # what the summary says ran is what ran
            assert "@DEADLINE@" not in step["command"]


def test_the_tests_stage_runs_the_gpu_files_then_the_others(fake_python) -> None:
    python, out, calls = fake_python
    run_stage("tests", out, python, **fake_env(out, calls))
    steps = {step["name"]: step for step in summary(out, "tests")["steps"]}
    assert steps["build-ext"]["command"].endswith("setup.py build_ext --inplace")  # gankit's C noise extension
    gpu, rest = steps["pytest-gpu"]["command"], steps["pytest-rest"]["command"]
    assert "tests/test_generator_kernel.py" in gpu and "--ignore=tests/test_generator_kernel.py" in rest
    assert "--junitxml=" in gpu and "--timeout=240" in gpu and "-n 8" in gpu  # the stand-in has every plugin
    assert (out / "junit-pytest-gpu.xml").exists() and (out / "failures-tests.txt").exists()


def test_a_failing_step_is_recorded_and_the_next_ones_still_run(fake_python) -> None:
    python, out, calls = fake_python
    result = run_stage("tune", out, python, **fake_env(out, calls, FAKE_FAIL="benchmarks.warm_triton_cache"))
    assert result.returncode == 1
    steps = summary(out, "tune")["steps"]
    assert (steps[0]["name"], steps[0]["status"], steps[0]["exit_code"]) == ("warm-cache", "failed", 3)
    assert steps[0]["reason"] == "exit status 3"
    assert [step["status"] for step in steps[1:]] == ["ok"] * 4
    assert "fake failure" in (out / "tune.log").read_text()
    assert summary(out, "tune")["failed_or_timed_out"] == 1


def test_a_step_past_its_time_limit_is_stopped_and_the_next_ones_still_run(fake_python) -> None:
    python, out, calls = fake_python
    env = fake_env(out, calls, FAKE_HANG="default,reduce-overhead", GPU_ALL_BUDGET_S="20")
    result = run_stage("bench", out, python, **env)
    assert result.returncode == 1
    steps = {step["name"]: step for step in summary(out, "bench")["steps"]}
    hung = steps["bench-bf16"]
    assert hung["status"] == "timeout" and hung["exit_code"] == 124, hung
    assert hung["seconds"] <= hung["time_limit_s"] + 6  # SIGINT at the limit, SIGKILL 5 s later at most
    assert hung["time_limit_s"] < 20 and "--deadline-s" in hung["command"]
    assert [steps[name]["status"] for name in STEPS["bench"][2:]] == ["ok"] * 3


def test_more_than_eight_files_fails_the_stage(fake_python) -> None:
    python, out, calls = fake_python
    result = run_stage("bench", out, python, **fake_env(out, calls, FAKE_SPRAY="--report-only"))
    assert result.returncode == 1
    assert "more than the 8 the device tool brings back" in result.stdout


@pytest.mark.parametrize("args", [["nonsense", "OUT"], ["tests"]])
def test_usage_errors(args: list[str], tmp_path: Path) -> None:
    command = ["bash", str(SCRIPT), *[str(tmp_path / a) if a == "OUT" else a for a in args]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage: bash benchmarks/gpu_all.sh" in result.stderr


def test_a_folder_with_files_in_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    result = subprocess.run(["bash", str(SCRIPT), "tune", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"]


# ----------------------------------------------------------------------------- gpu_all_report.py

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad" time="0.1">
  <failure message="assert 1 == 2&#10;more">trace</failure></testcase>
<testcase classname="tests.test_b" name="test_gpu" time="0">
  <skipped type="pytest.skip" message="needs a CUDA GPU"/></testcase>
<testcase classname="tests.test_b" name="test_setup" time="0">
  <error message="fixture 'x' not found">e</error></testcase>
</testsuite></testsuites>"""
LOG = """gpu_all.sh tests: Fake GPU
==> step pytest-gpu (time limit 250 s): python -m pytest -v tests/test_a.py
[gw0] [ 50%] PASSED tests/test_a.py::test_ok
[gw1] [100%] FAILED tests/test_a.py::test_bad[1]
==> step pytest-rest (time limit 175 s): python -m pytest -v
tests/test_c.py::test_one PASSED                                  [ 33%]
tests/test_c.py::test_two SKIPPED (needs a CUDA GPU)              [ 66%]
tests/test_c.py::test_three ERROR                                 [100%]
"""


def report_module():
    from benchmarks import gpu_all_report

    return gpu_all_report


def test_junit_counts_failures_errors_and_skip_reasons(tmp_path: Path) -> None:
    report = report_module()
    path = tmp_path / "junit-pytest-gpu.xml"
    path.write_text(JUNIT)
    result = report.from_junit(path)
    assert (result["tests"], result["passed"]) == (4, 1)
    assert result["failures"] == [
        "FAILURE tests.test_a::test_bad: assert 1 == 2",
        "ERROR tests.test_b::test_setup: fixture 'x' not found",
    ]
    assert dict(result["skipped"]) == {"needs a CUDA GPU": 1}


def test_a_missing_junit_file_is_read_from_its_steps_log(tmp_path: Path) -> None:
    report = report_module()
    (tmp_path / "junit-pytest-gpu.xml").write_text(JUNIT)
    log = tmp_path / "tests.log"
    log.write_text(LOG)
    text = report.tests_summary([tmp_path / "junit-pytest-gpu.xml", tmp_path / "junit-pytest-rest.xml"], log)
    first, second = text.split("junit-pytest-rest.xml missing, read from step pytest-rest's log: ")
    assert first.startswith("junit-pytest-gpu.xml: 4 tests, 1 passed, 2 failed, 1 skipped")
    assert second.startswith("3 tests, 1 passed, 1 failed, 1 skipped")  # only pytest-rest's lines
    assert "ERROR tests/test_c.py::test_three" in second and "test_bad" not in second
    gpu_part = report.from_log(report.step_section(LOG, "pytest-gpu"))
    assert gpu_part["failures"] == ["FAILED tests/test_a.py::test_bad[1]"] and gpu_part["passed"] == 1
