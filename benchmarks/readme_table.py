"""Put the latest benchmark result's table into docs/benchmarks.md (between the bench markers). Never hand-edit it.

python -m benchmarks.readme_table benchmarks/results/NAME.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.harness import put_block
from gankit.perf.bench import BenchReport, Measurement
from gankit.perf.ceilings import Ceilings
from gankit.perf.report import markdown_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def load(path: Path) -> BenchReport:
    data = json.loads(path.read_text())
    report = BenchReport(data["environment"], data["config"], data["flops_per_sample"])
    report.ceilings = {k: Ceilings(**v) for k, v in data["ceilings"].items()}
    report.results = [Measurement(**m) for m in data["results"]]
    return report


def section(path: Path) -> str:
    report = load(path)
    env = report.environment
    device = env.get("gpu") or f"{env['cpu']} ({env['cpu_count']} cores, flags: {', '.join(env['cpu_flags'])})"
    ceilings = "; ".join(
        f"{p}: {c.flops_per_second / 1e9:,.0f} GFLOP/s ({c.gemm}), {c.bytes_per_second / 1e9:,.1f} GB/s"
        for p, c in report.ceilings.items()
    )
    return "\n".join(
        [
            f"Latest run: `{path.as_posix()}` on **{device}**, torch {env['torch']}, onnxruntime "
            f"{env['onnxruntime']}, {env['torch_threads']} threads, commit `{env['git_commit'][:12]}`, {env['date']}.",
            f"Ceilings measured in that run: {ceilings}.",
            "",
            markdown_table(report),
            "",
            f"![samples/s vs batch size](../{path.with_suffix('.png').as_posix()})",
        ]
    )


def main() -> None:
    path = Path(sys.argv[1])
    block = section(path.resolve().relative_to(ROOT) if path.is_absolute() else path)
    put_block(PAGE, (START, END), block.split("\n"))
    print(f"{PAGE.relative_to(ROOT)} table updated from {path}")


if __name__ == "__main__":
    main()
