"""Do the export and speed paths keep quality? MNIST-FID of every backend/precision vs eager fp32.

    TRITON_INTERPRET=1 python -m benchmarks.run_quality --out benchmarks/results/quality-cpu-YYYY-MM-DD.json
    TRITON_INTERPRET=1 python -m benchmarks.run_quality --model conditional --out ...   # balanced labels

Same model, seed and indices for every path; on a CPU the triton path runs under the interpreter.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.harness import write_results
from gankit.errors import GankitError
from gankit.evaluate import evaluate
from gankit.perf.environment import environment

PATHS = [
    ("eager", "fp32"),
    ("eager", "bf16"),
    ("compile", "fp32"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "fp16"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("triton", "fp32"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    rows = []
    baseline = None
    for backend, precision in PATHS:
        try:
            report = evaluate(args.model, backend=backend, precision=precision)
        except GankitError as exc:
            rows.append({"backend": backend, "precision": precision, "status": f"unavailable: {exc}"})
            print(f"{backend:<12} {precision:<5} unavailable: {exc}")
            continue
        baseline = baseline or report.generated.fid
        change = report.generated.fid / baseline - 1
        rows.append(
            {
                "backend": report.backend,
                "precision": precision,
                "status": "ok",
                "fid": report.generated.fid,
                "fid_change_vs_eager_fp32": change,
                "floor": report.floor.fid,
                "coverage": report.generated.coverage,
                "precision_knn": report.generated.precision,
                "recall_knn": report.generated.recall,
                "report": asdict(report),
            }
        )
        print(
            f"{report.backend:<45} MNIST-FID {report.generated.fid:9.3f} ({100 * change:+.2f}% vs eager fp32), "
            f"min digit {100 * report.generated.min_share:.1f}%",
            flush=True,
        )
    env = environment(torch.device("cpu"))
    env["triton_interpret"] = os.environ.get("TRITON_INTERPRET")
    write_results(args.out, {"environment": env, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
