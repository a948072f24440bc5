"""The commands that measure: gankit bench, eval and demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.cli.common import (
    FOREIGN_FILES,
    add_import_flags,
    add_runtime_flags,
    import_options_from,
    parse_list,
    shown,
    stderr,
)
from gankit.io import dumps_json
from gankit.quality import HALF


def add_bench(sub: argparse._SubParsersAction) -> None:
    from gankit.backends import PRECISIONS
    from gankit.backends.resolve import open_backend
    from gankit.device import DEVICE_HELP

    p = sub.add_parser(
        "bench",
        help="time backends x batch sizes x precisions; table, JSON with the environment, and a plot",
        description="Each backend is checked against eager fp32 before it is timed. GPU: do_bench medians; "
        "CPU: repeated runs, median. Roofline from the generator's FLOPs/bytes and ceilings measured in the run "
        "(the best GEMM of torch, onnxruntime and OpenVINO, and the best copy), with the CPU's paper peak beside it.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator: ONNX backends only (default: the bundled generator)",
    )
    from gankit.perf import BACKENDS, BATCH_SIZES, BENCH_PRECISIONS

    def by_place(table: dict[str, tuple]) -> str:
        return "; ".join(f"{place}: {shown(value)}" for place, value in table.items())

    p.add_argument("--backends", default=None, help=f"comma-separated [{by_place(BACKENDS)}]")
    p.add_argument("--batch-sizes", default=None, help=f"comma-separated [{by_place(BATCH_SIZES)}]")
    p.add_argument(
        "--precisions", default=None, help=f"comma-separated, of {', '.join(PRECISIONS)} [{by_place(BENCH_PRECISIONS)}]"
    )
    p.add_argument("--output", default="float", choices=["float", "uint8"], help="image output type [%(default)s]")
    add_runtime_flags(p, open_backend, device=DEVICE_HELP, compile_mode="for the compile backend")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.png (e.g. benchmarks/results/cpu-NAME)")
    add_import_flags(p)
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from gankit.perf.bench import run_bench
    from gankit.perf.report import describe_ceilings, format_row, format_table, write_report

    report = run_bench(
        args.model,
        backends=parse_list(args.backends) if args.backends else None,
        batch_sizes=parse_list(args.batch_sizes, int) if args.batch_sizes else None,
        precisions=parse_list(args.precisions) if args.precisions else None,
        output=args.output,
        device=args.device,
        compile_mode=args.compile_mode,
        log=lambda line: print(line, flush=True),
        on_row=lambda row: print(format_row(row), flush=True),
        import_options=import_options_from(args),
    )
    print("\nceilings measured in this run:\n" + "\n".join(f"  {line}" for line in describe_ceilings(report)))
    print("\n" + format_table(report))
    if args.out:
        json_path, png_path = write_report(report, Path(args.out))
        print(f"\nwrote {json_path} and {png_path}")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    from gankit.backends.resolve import open_backend

    p = sub.add_parser(
        "eval",
        help="sample quality: MNIST-FID (digit-classifier features), digit coverage, precision/recall, copying, "
        "label fidelity",
        description="MNIST-FID is a Fréchet distance in the feature space of gankit's own digit classifier "
        "(not Inception's). The floor is the same distance between two disjoint halves of the real digits. The "
        "class-mix FID is what real digits in the generated digit shares score; the copying check is the share of "
        "samples nearer a bundled training digit than 5%% of real digits are (about 5%% = no copying). A "
        "class-conditional generator is sampled with balanced labels and its label fidelity (the share of each "
        "asked digit the classifier reads as that digit) is reported.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=f"{FOREIGN_FILES}, or an .onnx generator; 1x28x28 images only (default: the bundled generator)",
    )
    add_runtime_flags(p, open_backend, backend="", precision="")
    p.add_argument("--seed", type=int, default=0, help="[%(default)s]")
    p.add_argument("--n", type=int, default=HALF, help="generated samples; %(default)s matches the floor [%(default)s]")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    add_import_flags(p)
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from gankit.evaluate import evaluate, format_report, report_json, write_report
    from gankit.io import check_writable

    if args.out:
        check_writable(args.out)  # before the work, not after it
    report = evaluate(
        args.model,
        backend=args.backend,
        precision=args.precision,
        seed=args.seed,
        n=args.n,
        import_options=import_options_from(args),
        log=stderr,
    )
    print(dumps_json(report_json(report)) if args.json else format_report(report))
    if args.out:
        written = write_report(report, Path(args.out))
        if not args.json:
            print(f"wrote {written}")
    return 0


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the bundled data, in a few minutes on a CPU")
    p.add_argument("--out", default="runs/demo", help="where everything is written [%(default)s]")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the demo run [%(default)s]")
    p.add_argument("--quick", action="store_true", help="fewer samples and batch sizes (for tests)")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from gankit.demo import run_demo

    run_demo(Path(args.out), epochs=args.epochs, quick=args.quick)
    return 0
