"""GPU benchmark of the Triton kernels vs eager vs torch.compile (max-autotune), ready to run on a CUDA machine.

    PYTHONPATH=. python benchmarks/bench_gpu_kernels.py --out benchmarks/results/gpu-H100-YYYY-MM-DD

Writes OUT-float.{json,png} and OUT-uint8.{json,png} (``gankit bench`` reports: each backend checked
against eager first, ``triton.testing.do_bench`` medians, roofline from ceilings measured in the same
run) and OUT-noise.json: the whole-generator kernel from (seed, index) with in-kernel noise, which
reads no input, against the same kernel fed a z tensor.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gankit.backends import create_backend
from gankit.bench import environment, format_table, run_bench, time_gpu, write_report
from gankit.checkpoint import atomic_path, load_generator
from gankit.noise import noise

BATCHES = [1, 256, 65536, 1_048_576]
PRECISIONS = ["fp32", "tf32", "bf16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="path stem for the result files")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCHES)))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_kernels.py needs a CUDA GPU; on a CPU use `gankit bench` (eager, compile, onnxruntime)")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    for output in ("float", "uint8"):
        report = run_bench(
            backends=["eager", "compile", "triton"],
            batch_sizes=batches,
            precisions=PRECISIONS,
            output=output,
            compile_mode="max-autotune",
        )
        print(format_table(report))
        write_report(report, args.out.with_name(f"{args.out.name}-{output}"))
    rows = []
    generator = load_generator()
    for precision in PRECISIONS:
        backend = create_backend("triton", generator, precision=precision, device="cuda")
        for batch in batches:
            z = noise(1, 0, batch, generator.config.latent_dim, device="cuda")
            for output in ("float", "uint8"):
                seeded = time_gpu(lambda b=backend, n=batch, o=output: b.generate_seeded(1, 0, n, output=o))[0]
                fed = time_gpu(lambda b=backend, x=z, o=output: b.generate(x, output=o))[0]
                rows.append(
                    {
                        "precision": precision,
                        "batch": batch,
                        "output": output,
                        "seeded_seconds": seeded,
                        "z_input_seconds": fed,
                        "seeded_samples_per_second": batch / seeded,
                    }
                )
                print(rows[-1], flush=True)
    with atomic_path(args.out.with_name(f"{args.out.name}-noise.json")) as tmp:
        tmp.write_text(json.dumps({"environment": environment(torch.device("cuda")), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
