"""Small reports for ``benchmarks/gpu_all.sh``: the machine a stage ran on, and the test run's failures.

    python -m benchmarks.gpu_all_report env --out env.json
    python -m benchmarks.gpu_all_report tests --junit a.xml b.xml --log tests.log --out failures.txt

``env``: gankit's environment record (GPU, driver, versions, commit, date) plus what nvidia-smi
says of the card's state (clocks, power, temperature, persistence, MIG; read only), onnxruntime's
providers, the pytest plugins present and the disk. ``tests``: counts and every failure or error
with its first line, from the JUnit XML files pytest wrote (``junit-STEP.xml``); where one is
missing (the step was stopped before pytest wrote it), from the PASSED/FAILED lines that step
printed into the stage log; skips grouped by reason, so a GPU test skipped on the GPU shows.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

SMI_FIELDS = (
    "name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,"
    "temperature.gpu,persistence_mode,mig.mode.current,compute_mode"
)
PLUGINS = ("pytest_timeout", "xdist", "pytest_benchmark")
LOG_LINE = re.compile(
    r"(?:^|\s)(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+::\S+)|(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)"
)


def environment_record() -> dict:
    import torch

    from benchmarks.harness import environment

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    record = {"gankit": environment(device)}
    try:
        smi = subprocess.run(
            ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv"], capture_output=True, text=True, timeout=20
        )
        record["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        record["nvidia_smi"] = f"unavailable: {exc}"
    try:
        import onnxruntime

        record["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        record["onnxruntime_providers"] = None
    record["pytest_plugins"] = {name: importlib.util.find_spec(name) is not None for name in PLUGINS}
    usage = shutil.disk_usage(".")
    record["disk_here"] = {"total_bytes": usage.total, "free_bytes": usage.free}
    return record


def from_junit(path: Path) -> dict:
    """Counts, failures (test id and first line) and skip reasons of one JUnit XML file."""
    root = ET.parse(path).getroot()
    result = {"tests": 0, "failures": [], "skipped": collections.Counter(), "passed": 0}
    for case in root.iter("testcase"):
        result["tests"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if problem is not None:
            first = (problem.get("message") or problem.text or "").strip().splitlines()
            result["failures"].append(f"{problem.tag.upper()} {name}: {first[0][:200] if first else ''}")
        elif skip is not None:
            result["skipped"][(skip.get("message") or "").strip()[:160]] += 1
        else:
            result["passed"] += 1
    return result


def from_log(text: str) -> dict:
    """The same from pytest's verbose lines (``tests/x.py::test PASSED``; xdist puts the status first)."""
    outcome: dict[str, str] = {}
    for match in LOG_LINE.finditer(text):
        status, name = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        outcome[name] = status
    counts = collections.Counter(outcome.values())
    return {
        "tests": len(outcome),
        "failures": [f"{status} {name}" for name, status in outcome.items() if status in ("FAILED", "ERROR")],
        "skipped": collections.Counter({"(reasons in the log)": counts["SKIPPED"]}) if counts["SKIPPED"] else {},
        "passed": counts["PASSED"] + counts["XFAIL"],
    }


def step_section(log_text: str, step: str) -> str:
    """The part of a gpu_all.sh stage log that step ``step`` printed (between its header and the next)."""
    parts = re.split(r"^==> step ", log_text, flags=re.MULTILINE)
    return "".join(part for part in parts if part.startswith(f"{step} "))


def tests_summary(junit: list[Path], log: Path | None) -> str:
    """One block a JUnit file ``junit-STEP.xml``; a missing one is read from STEP's part of the stage log."""
    lines = []
    log_text = log.read_text(errors="replace") if log is not None and log.exists() else ""
    for path in junit:
        if path.exists():
            source, result = path.name, from_junit(path)
        else:
            step = path.stem.removeprefix("junit-")
            source, result = f"{path.name} missing, read from step {step}'s log", from_log(step_section(log_text, step))
        failed, skipped = len(result["failures"]), sum(result["skipped"].values())
        lines.append(
            f"{source}: {result['tests']} tests, {result['passed']} passed, {failed} failed, {skipped} skipped"
        )
        lines += [f"  {failure}" for failure in result["failures"]]
        lines += [f"  skipped x{count}: {reason}" for reason, count in result["skipped"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="the machine: gankit's environment record, nvidia-smi, plugins, disk")
    env.add_argument("--out", type=Path, required=True)
    tests = commands.add_parser("tests", help="counts, failures and skip reasons of a test run")
    tests.add_argument("--junit", type=Path, nargs="+", required=True)
    tests.add_argument("--log", type=Path, default=None)
    tests.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "env":
        args.out.write_text(json.dumps(environment_record(), indent=2))
    else:
        text = tests_summary(args.junit, args.log)
        args.out.write_text(text)
        print(text, end="")


if __name__ == "__main__":
    main()
