"""``gankit validate`` as a whole process against ``python -c "import torch"`` alone.

Validate holds a gankit export to its gankit checkpoint without torch: the float64 reference is the generator's
forward in NumPy (``gankit.onnx.parity.Reference``), so a whole validation should cost less than importing torch,
which every validation paid while the reference was PyTorch's. Both commands run as fresh processes, alternated
``--runs`` times after one warm-up each (warm file caches), on a copy of the shipped export
(``exported/generator.onnx``, 7 parity cases, fixed seed); medians, and each one's peak resident memory
(``ru_maxrss`` of a process that runs only it).

    python -m benchmarks.run_validate [--runs 7] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT, environment, write_results
from benchmarks.run_sampling import run_process, slug

SHIPPED = ROOT / "exported" / "generator.onnx"
PEAK = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); " + (
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_mib(command: list[str]) -> float:
    """Peak resident memory of ``command`` in MiB: the largest child of a process that runs only it (Linux: KiB)."""
    return int(run_process([sys.executable, "-c", PEAK, *command])[1]) / 1024


def measure(runs: int, workdir: Path) -> dict[str, object]:
    copy = workdir / SHIPPED.name
    shutil.copyfile(SHIPPED, copy)
    commands = {
        "import_torch": [sys.executable, "-c", "import torch"],
        "validate": [sys.executable, "-m", "gankit", "validate", str(copy), "--seed", "0"],
    }
    for command in commands.values():
        run_process(command)  # warm: file caches
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            seconds[label].append(run_process(command)[0])
    medians = {label: statistics.median(values) for label, values in seconds.items()}
    return {
        "seconds": seconds,
        "medians": medians,
        "ratio": medians["validate"] / medians["import_torch"],
        "peak_mib": {label: peak_mib(command) for label, command in commands.items()},
    }


def markdown(result: dict) -> str:
    env, m = result["environment"], result["measured"]
    lines = [
        "# `gankit validate` against `import torch` alone",
        "",
        f"{env['cpu']} ({', '.join(env['cpu_flags'])}), {env['cpu_count']} cores, Python {env['python']}, torch "
        f"{env['torch']}, onnxruntime {env['onnxruntime']}, NumPy {env['numpy']}; commit {env['git_commit']}; "
        f"{result['runs']} alternated runs of each, medians (`benchmarks/run_validate.py`). Load before "
        f"{result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}.",
        "",
        "| process | median seconds | peak memory (MiB) |",
        "|---|---:|---:|",
        f'| `python -c "import torch"` | {m["medians"]["import_torch"]:.2f} | {m["peak_mib"]["import_torch"]:.0f} |',
        f"| `gankit validate exported/generator.onnx --seed 0` | {m['medians']['validate']:.2f} | "
        f"{m['peak_mib']['validate']:.0f} |",
        "",
        f"A whole validation takes **{m['ratio']:.2f}x** the time of importing torch alone, which a validation with a "
        "PyTorch reference could not go below.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="alternated runs of each command [%(default)s]")
    parser.add_argument("--out", type=Path, default=None, help="[benchmarks/results/validate-<cpu>-<date>.json]")
    parser.add_argument("--note", default="", help="what else the reader must know (e.g. the machine's load)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="gankit-bench-"))
    try:
        measured = measure(args.runs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "environment": environment(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "runs": args.runs,
        "note": args.note,
        "measured": measured,
    }
    out = args.out or RESULTS / f"validate-{slug()}-{datetime.date.today().isoformat()}.json"
    text = markdown(result)
    written = write_results(out, result, text)
    print(text)
    print(f"wrote {written} and {written.with_suffix('.md')}")


if __name__ == "__main__":
    main()
