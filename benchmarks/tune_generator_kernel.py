"""Tune the whole-generator kernel on a GPU at bf16 with explicit configurations, held to the issue's targets.

    python -m benchmarks.tune_generator_kernel --out tune.json [--baselines bench.json] [--deadline-s 170]
    python -m benchmarks.tune_generator_kernel --out tune.json --report-only [--baselines bench.json]
        [--disk disk.json] [--plot tune.png] [--notes tune-notes.md]

Measured in one process (``benchmarks/gpu_all.sh tune`` runs it after the baselines and the disk):

1. ceilings: a bf16 8192^3 GEMM (tensor cores) and a 256 MiB device copy (HBM), as ``gankit bench``
   measures them, and a 2 x 12 MiB copy replayed from a CUDA graph with no L2 flush (L2-resident: a
   lower bound of the L2's bandwidth);
2. throughput, batch 65,536, z -> float32: every configuration of ``generator_configs.SWEEP`` (the
   kernel's autotune space first) through the kernel's own launcher under a one-configuration
   autotuner, so the arguments are always the launcher's. Each is checked against eager fp32 on the
   same z (output poisoned with NaN first) before it is timed (``do_bench`` median, L2 flushed);
   registers, spills and shared memory are read from the compiled kernel, and the samples/s that
   each ceiling allows it (``generator_configs.bounds``) are stored beside the measured rate;
3. the best 6 timed again on z -> float32 (one version timed twice: the spread) and on seed -> uint8
   (noise made in the kernel, the sampling path);
4. latency, batch 1, seed -> uint8: ``generator_configs.LATENCY``, the kernel's time from CUDA-graph
   replays; for the best, the launcher timed by ``do_bench`` (Python's launch included) and the
   wall time of one graph replay plus synchronize, beside the same for a graph of one kernel that
   zeroes the 784-byte output (the floor of launching and waiting).

Targets (bf16, batch 65,536, best configuration): >= 3x eager and >= 1.5x the best torch.compile
mode (both from --baselines, a ``bench_gpu_kernels.py`` JSON of the same stage), >= 50% of the
tensor-core roofline measured here (useful FLOPs at the GEMM's rate); batch-1 seed -> image <= 10
us; 10 M uint8 samples to disk at >= 90% of the disk's own write rate (from --disk,
``gpu_sampling_to_disk.py``). Each verdict names the ceiling that binds the best configuration, as
a fraction of every measured ceiling. Configurations past their share of --deadline-s (the sweep
55 %, its best again 70 %, batch 1 the rest) are recorded as left out; the JSON is rewritten after
every configuration, so a killed run keeps what it measured. --report-only re-evaluates the targets
and writes the plot and the notes (the "Measured" section for benchmarks/TUNING.md) from an
existing JSON, with no GPU. Every run prints each measured rate beside the newest committed on-paper
prediction (``predict_sm90.py``, benchmarks/results/sm90-prediction-*.json) and adds it to the notes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import bench_gpu_kernels as bench
from benchmarks import generator_configs as space
from benchmarks import predict_sm90

BATCH = 65536
TOP = 6
DISK_FRACTION = 0.9  # "at the disk's own write rate", less the spread of two runs of one write


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON to write (read with --report-only)")
    parser.add_argument("--baselines", type=Path, default=None, help="bench_gpu_kernels.py JSON: eager, compile")
    parser.add_argument("--disk", type=Path, default=None, help="gpu_sampling_to_disk.py JSON")
    parser.add_argument("--deadline-s", type=float, default=None, help="start no configuration after this")
    parser.add_argument("--plot", type=Path, default=None, help="PNG: samples/s against L2 bytes a sample")
    parser.add_argument("--notes", type=Path, default=None, help="markdown: the measured outcome, for TUNING.md")
    parser.add_argument("--report-only", action="store_true", help="targets, plot and notes of --out only")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- measuring


def l2_copy_bytes_per_s() -> float:
    """Read + write bytes/s of a 12 MiB -> 12 MiB copy replayed from a CUDA graph, no flush: L2-resident."""
    from triton.testing import do_bench_cudagraph

    src = torch.randn(3 << 20, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / (do_bench_cudagraph(lambda: dst.copy_(src), return_mode="median") / 1e3)


def measure_ceilings() -> dict:
    from gankit.perf.ceilings import measure_ceilings as gemm_and_copy

    measured = gemm_and_copy(torch.device("cuda"), "bf16")
    return {
        "gankit_bench": asdict(measured),
        "tensor_core_flops": measured.flops_per_second,
        "hbm_bytes": measured.bytes_per_second,
        "l2_bytes": l2_copy_bytes_per_s(),
    }


def run_config(packed, config: tuple, case: str, batch: int, z, expected, timer: Callable[[Callable], dict]) -> dict:
    """Check then time one configuration on one case (see ``generator_configs.CASES``); a row of results."""
    from kernels.generator import generator_forward, generator_kernel

    reads_z, output = space.CASES[case]
    row = {"label": space.label(config), "config": list(config), "case": case, "batch": batch}

    def call(out=None):
        if reads_z:
            return generator_forward(packed, z=z, output=output, out=out)
        return generator_forward(packed, count=batch, seed=1, start=0, output=output, out=out)

    before = space.compiled_kernels(generator_kernel)
    with space.only_config(generator_kernel, space.make_config(config)):
        dtype = torch.uint8 if output == "uint8" else torch.float32
        fill = 77 if output == "uint8" else float("nan")
        poisoned = torch.full((batch, space.SIZES[3]), fill, dtype=dtype, device=packed.device)
        begin = time.perf_counter()
        images = call(poisoned)
        row["first_call_s"] = time.perf_counter() - begin  # compiling, or loading from Triton's cache
        new = [k for key, k in space.compiled_kernels(generator_kernel).items() if key not in before]
        if new:
            row.update(space.compiled_stats(new[-1]))
        if output == "float" and not torch.isfinite(images).all():
            row["status"] = "wrong: some outputs were never written (NaN poison left)"
            return row
        row["max_abs_error"], problem = bench.check(images, expected, "bf16")
        row["status"] = problem or "ok"
        if problem is None:
            row.update(timer(call))
            row["samples_per_s"] = batch / row["median_s"]
    return row


def predict(row: dict, ceilings: dict, useful_flops: int) -> dict:
    """Add the bounds each measured ceiling allows the row's configuration, and the rate as a fraction of each."""
    config = tuple(row["config"])
    row["executed_flops_per_sample"] = space.executed_flops_per_sample(config)
    row["recompute_factor"] = row["executed_flops_per_sample"] / useful_flops
    row["l2_weight_bytes_per_sample"] = space.weight_bytes_per_sample(config)
    row["bounds_samples_per_s"] = space.bounds(config, row["case"], ceilings)
    if "samples_per_s" in row:
        row["fraction_of_bounds"] = {k: row["samples_per_s"] / v for k, v in row["bounds_samples_per_s"].items()}
    return row


def graph_wall_s(fn: Callable[[], object], repeats: int = 1000) -> float:
    """Median wall time of one CUDA-graph replay of ``fn`` plus a synchronize: what a latency-bound caller waits."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    walls = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - begin)
    return statistics.median(walls)


def latency_row(packed, config: tuple, expected) -> dict:
    """Batch 1, seed -> uint8 under one configuration: checked, then the kernel's time from graph replays."""
    from triton.testing import do_bench_cudagraph

    from kernels.generator import generator_forward, generator_kernel

    row = {"label": space.label(config), "config": list(config), "case": "seed-uint8", "batch": 1}
    out = torch.empty(1, space.SIZES[3], dtype=torch.uint8, device=packed.device)

    def call():
        return generator_forward(packed, count=1, seed=1, start=0, output="uint8", out=out)

    with space.only_config(generator_kernel, space.make_config(config)):
        row["max_abs_error"], problem = bench.check(call(), expected, "bf16")
        row["status"] = problem or "ok"
        if problem is None:
            row["graph_replay_s"] = do_bench_cudagraph(call, return_mode="median") / 1e3
    return row


def latency_details(packed, config: tuple) -> dict:
    """For the fastest batch-1 configuration: the launcher from Python, and one graph replay + sync vs the floor."""
    from kernels.generator import generator_forward, generator_kernel

    out = torch.empty(1, space.SIZES[3], dtype=torch.uint8, device=packed.device)

    def call():
        return generator_forward(packed, count=1, seed=1, start=0, output="uint8", out=out)

    with space.only_config(generator_kernel, space.make_config(config)):
        return {
            "label": space.label(config),
            "launcher_do_bench_s": bench.timed(call)["median_s"],
            "graph_replay_and_sync_wall_s": graph_wall_s(call),
            "floor_graph_replay_and_sync_wall_s": graph_wall_s(lambda: out.zero_()),
        }


def sweep(report: dict, args: argparse.Namespace) -> None:
    """Steps 2-4 of the module docstring into ``report``, saved after every configuration."""
    from gankit.checkpoint import load_generator
    from gankit.noise import noise
    from kernels.generator import pack_generator

    begin = time.monotonic()
    reference = load_generator(device="cuda")
    latent, useful_flops = reference.config.latent_dim, reference.config.flops_per_sample
    weights, biases = [x.weight for x in reference.layers], [x.bias for x in reference.layers]
    packed = pack_generator(weights, biases, reference.config.slope, torch.bfloat16, torch.device("cuda"))
    z = noise(7, 0, BATCH, latent, device="cuda")
    with torch.inference_mode():  # eager fp32 images: of z, of seed 1's samples 0 .. BATCH-1, and of its sample 0
        expected = {
            "z-float": reference(z).reshape(BATCH, -1).float(),
            "seed-uint8": reference(noise(1, 0, BATCH, latent, device="cuda")).reshape(BATCH, -1).float(),
        }
        expected_one = expected["seed-uint8"][:1]
    stopped: list[str] = []

    def throughput(point: tuple, case: str) -> dict:
        row = run_config(packed, point, case, BATCH, z, expected[case], bench.timed)
        return predict(row, report["ceilings"], useful_flops)

    def go(rows: list, point: tuple, make_row: Callable[[], dict], share: float) -> None:
        """Measure one point, unless this step's share of the deadline is spent or the context is lost."""
        late = args.deadline_s is not None and time.monotonic() - begin > share * args.deadline_s
        if stopped or late:
            status = stopped[0] if stopped else f"left out: its share of the time budget ({args.deadline_s:.0f} s)"
            rows.append({"label": space.label(point), "config": list(point), "status": status})
            return
        try:
            row = make_row()
        except Exception as exc:  # a configuration that does not compile or launch is a result too
            status = f"error: {type(exc).__name__}: {bench.first_line(exc)}"
            row = {"label": space.label(point), "config": list(point), "status": status}
            if "CUDA error" in str(exc) or "illegal" in str(exc):  # the context is lost: measure nothing more
                stopped.append(f"left out: an earlier configuration broke the CUDA context ({status})")
        rows.append(row)
        save(report, args.out)
        print(format_row(row), flush=True)

    # Shares of the deadline: the sweep until 55 %, its best again until 70 %, batch 1 until the end.
    for point in [p for p in space.autotune_space() if p not in space.SWEEP] + space.SWEEP:
        go(report["throughput"], point, functools.partial(throughput, point, "z-float"), 0.55)
    best = sorted((r for r in report["throughput"] if "samples_per_s" in r), key=lambda r: -r["samples_per_s"])
    for point in [tuple(r["config"]) for r in best[:TOP]]:
        go(report["repeat"], point, functools.partial(throughput, point, "z-float"), 0.7)
        go(report["sampling"], point, functools.partial(throughput, point, "seed-uint8"), 0.7)
    for point in space.LATENCY:
        go(report["latency"], point, functools.partial(latency_row, packed, point, expected_one), 1.0)
    fastest = sorted((r for r in report["latency"] if "graph_replay_s" in r), key=lambda r: r["graph_replay_s"])
    if fastest and not stopped:
        report["latency_details"] = latency_details(packed, tuple(fastest[0]["config"]))
    save(report, args.out)


# ----------------------------------------------------------------------------- targets


def baseline_rates(baselines: dict | None) -> dict[str, float]:
    """path -> samples/s of the bench rows at bf16, batch 65,536 (eager, compile-*, triton-*)."""
    rows = (baselines or {}).get("results", [])
    return {
        r["path"]: r["samples_per_s"]
        for r in rows
        if (r["precision"], r["batch"]) == ("bf16", BATCH) and "samples_per_s" in r
    }


def fastest(rows: list[dict]) -> dict | None:
    timed = [r for r in rows if "samples_per_s" in r]
    return max(timed, key=lambda r: r["samples_per_s"]) if timed else None


def binding(row: dict) -> str:
    """Which measured ceiling binds a row, and the rate as a fraction of each."""
    fractions = row.get("fraction_of_bounds", {})
    if not fractions:
        return "no ceiling measured"
    names = {"tensor_core_flops": "tensor cores", "l2_bytes": "L2", "hbm_bytes": "HBM"}
    parts = ", ".join(f"{100 * v:.0f}% of the {names[k]} bound" for k, v in sorted(fractions.items()))
    return f"binds: {names[max(fractions, key=fractions.get)]} ({parts})"


def targets(report: dict, baselines: dict | None, disk: dict | None) -> list[dict]:
    """The issue's targets for the best configuration of each case, each with the ceiling that binds it."""
    verdicts: list[dict] = []
    goals = bench.TARGET

    def add(what: str, value: float | None, goal: float, note: str = "", at_most: bool = False) -> None:
        verdict = (
            "NOT MEASURED" if value is None else "PASS" if (value <= goal if at_most else value >= goal) else "FAIL"
        )
        verdicts.append({"what": what, "value": value, "goal": goal, "verdict": verdict, "note": note})

    rates = baseline_rates(baselines)
    eager = rates.get("eager")
    compiled = {path: rate for path, rate in rates.items() if path.startswith("compile-")}
    best_compile = max(compiled, key=compiled.get) if compiled else None
    tensor_cores = report.get("ceilings", {}).get("tensor_core_flops")
    roofline = tensor_cores / report["flops_per_sample"] if tensor_cores else None
    for case, rows in (("z-float", report["throughput"] + report["repeat"]), ("seed-uint8", report["sampling"])):
        best = fastest(rows)
        rate = best["samples_per_s"] if best else None
        why = f"{best['label']}; {binding(best)}" if best else ""
        need = f"; 3x eager is {3 * eager:,.0f}/s, the roofline {roofline:,.0f}/s" if eager and roofline else ""
        prefix = f"{case} bf16 batch {BATCH}:"
        add(f"{prefix} x eager", rate / eager if rate and eager else None, goals["vs_eager"], why + need)
        vs_compile = rate / compiled[best_compile] if rate and best_compile else None
        add(f"{prefix} x best torch.compile ({best_compile or 'none measured'})", vs_compile, goals["vs_compile"], why)
        fraction = rate / roofline if rate and roofline else None
        add(f"{prefix} fraction of the tensor-core roofline", fraction, goals["roofline"], why)
    details = report.get("latency_details", {})
    floor = details.get("floor_graph_replay_and_sync_wall_s")
    floor_note = f"launch + sync floor (a one-kernel graph): {floor * 1e6:.1f} us" if floor else ""
    kernel = min((r["graph_replay_s"] for r in report["latency"] if "graph_replay_s" in r), default=None)
    prefix = "batch-1 seed -> uint8, seconds:"
    add(f"{prefix} kernel (CUDA-graph replays)", kernel, goals["latency_s"], details.get("label", ""), True)
    launcher = details.get("launcher_do_bench_s")
    add(f"{prefix} launcher from Python (do_bench)", launcher, goals["latency_s"], floor_note, True)
    wall = details.get("graph_replay_and_sync_wall_s")
    add(f"{prefix} one graph replay + synchronize (wall)", wall, goals["latency_s"], floor_note, True)
    disk = disk or {}
    ratio = disk.get("to_disk_over_disk_ceiling")
    add("10 M uint8 samples to disk: rate / the disk's own write rate", ratio, DISK_FRACTION, disk.get("binding", ""))
    return verdicts


# ----------------------------------------------------------------------------- output


def save(report: dict, path: Path) -> None:
    from gankit.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def format_row(row: dict) -> str:
    head = f"{row.get('case', ''):<10} {row.get('batch', ''):>6} {row['label']:<26}"
    if "samples_per_s" in row:
        stats = f"regs {row.get('registers')} spills {row.get('spills')} smem {row.get('shared_bytes')}"
        return f"{head} {row['samples_per_s']:>14,.0f}/s  max|Δ| {row['max_abs_error']:.1e}  {stats}  {binding(row)}"
    if "graph_replay_s" in row:
        return (
            f"{head} {row['graph_replay_s'] * 1e6:>10.2f} us a launch (graph replay)  max|Δ| {row['max_abs_error']:.1e}"
        )
    return f"{head} {row['status']}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    baselines = json.loads(args.baselines.read_text()) if args.baselines and args.baselines.exists() else None
    disk = json.loads(args.disk.read_text()) if args.disk and args.disk.exists() else None
    if args.report_only:
        if not args.out.exists():
            sys.exit(f"--report-only: {args.out} does not exist")
        report = json.loads(args.out.read_text())
    else:
        if not torch.cuda.is_available():
            sys.exit("tune_generator_kernel.py needs a CUDA GPU and found none.")
        if os.environ.get("TRITON_INTERPRET") == "1":
            sys.exit("TRITON_INTERPRET=1 is set: the kernels would run on the CPU interpreter. Unset it and run again.")
        from gankit.checkpoint import load_generator

        config = load_generator().config
        if (config.latent_dim, *config.hidden, config.image_size) != space.SIZES:
            sys.exit(f"the bundled generator is not {space.SIZES}: generator_configs' arithmetic would not hold")
        report = {
            "environment": bench.environment(torch.device("cuda")),
            "flops_per_sample": config.flops_per_sample,
            "ceilings": measure_ceilings(),
            **{part: [] for part in ("throughput", "repeat", "sampling", "latency")},
        }
        save(report, args.out)
        sweep(report, args)
    report["baselines"] = baseline_rates(baselines)
    report["targets"] = targets(report, baselines, disk)
    save(report, args.out)
    for line in report["targets"]:
        print(f"{line['verdict']:<12} {line['what']}: {line['value']} (goal {line['goal']}) {line['note']}")
    beside = predict_sm90.beside_latest(report)
    print("\n".join(beside))
    if args.plot is not None:
        plot(report, args.plot)
    if args.notes is not None:
        args.notes.write_text(notes(report) + ("\n```\n" + "\n".join(beside) + "\n```\n" if beside else ""))


def plot(report: dict, path: Path) -> None:
    """Left: samples/s against L2 weight bytes a sample, by OUT_SPLIT, with the bounds; right: batch-1 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.io import atomic_path

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=100)
    rows = [r for r in report["throughput"] if "samples_per_s" in r]
    for split in sorted({r["config"][3] for r in rows}):
        points = [(r["l2_weight_bytes_per_sample"], r["samples_per_s"]) for r in rows if r["config"][3] == split]
        left.scatter(*zip(*points), label=f"OUT_SPLIT {split}", s=18)
    ceilings = report.get("ceilings", {})
    if rows and ceilings.get("l2_bytes"):
        xs = sorted(r["l2_weight_bytes_per_sample"] for r in rows)
        left.plot(xs, [ceilings["l2_bytes"] / x for x in xs], ":", color="black", label="L2 bound (measured copy)")
    if ceilings.get("tensor_core_flops"):
        roofline = ceilings["tensor_core_flops"] / report["flops_per_sample"]
        left.axhline(roofline, color="black", label="tensor-core roofline (useful FLOPs)")
        left.axhline(0.5 * roofline, color="black", linestyle="--", label="target: 50% of it")
    rates = report.get("baselines", {})
    if "eager" in rates:
        left.axhline(3 * rates["eager"], color="tab:red", linestyle="--", label="target: 3x eager bf16")
    compiled = [v for k, v in rates.items() if k.startswith("compile-")]
    if compiled:
        left.axhline(1.5 * max(compiled), color="tab:orange", linestyle="--", label="target: 1.5x best compile")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("L2 weight bytes a sample (computed)")
    left.set_ylabel("samples / s, bf16, batch 65,536, z -> float32")
    left.set_title(report.get("environment", {}).get("gpu", "?"), fontsize=9)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=7)
    latency = [r for r in report["latency"] if "graph_replay_s" in r]
    if latency:
        right.barh([r["label"] for r in latency], [1e6 * r["graph_replay_s"] for r in latency])
        right.axvline(1e6 * bench.TARGET["latency_s"], color="tab:red", linestyle="--", label="target 10 us")
        right.legend(fontsize=7)
    right.set_xlabel("batch-1 seed -> uint8, us a launch (CUDA-graph replays)")
    right.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def notes(report: dict) -> str:
    """The measured outcome of this run, as a section to paste under the kernel version in benchmarks/TUNING.md."""
    env = report.get("environment", {})
    ceilings = report.get("ceilings", {})
    lines = [
        f"#### Measured: {env.get('gpu', '?')}, driver {env.get('driver')}, torch {env.get('torch')}, "
        f"triton {env.get('triton')}, commit {env.get('git_commit')}, {env.get('date')}",
        "",
        f"Ceilings in this run: bf16 GEMM {ceilings.get('tensor_core_flops', 0) / 1e12:,.0f} TFLOP/s, "
        f"HBM copy {ceilings.get('hbm_bytes', 0) / 1e12:.2f} TB/s, L2-resident copy "
        f"{ceilings.get('l2_bytes', 0) / 1e12:.2f} TB/s (read + write).",
        "Baselines (bf16, batch 65,536): "
        + (", ".join(f"{k} {v:,.0f}/s" for k, v in report.get("baselines", {}).items()) or "not measured"),
        "",
        "| case | configuration | samples/s | recompute | L2 B/sample | bounds TC / L2 / HBM (samples/s) "
        "| regs | spills | smem |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for part in ("throughput", "repeat", "sampling"):
        for row in sorted((r for r in report[part] if "samples_per_s" in r), key=lambda r: -r["samples_per_s"])[:TOP]:
            b = row["bounds_samples_per_s"]
            bounds_text = " / ".join(f"{b.get(k, 0):,.0f}" for k in ("tensor_core_flops", "l2_bytes", "hbm_bytes"))
            case = row["case"] + (" (again)" if part == "repeat" else "")
            lines.append(
                f"| {case} | {row['label']} | {row['samples_per_s']:,.0f} | {row['recompute_factor']:.2f} "
                f"| {row['l2_weight_bytes_per_sample']:,.0f} | {bounds_text} "
                f"| {row.get('registers')} | {row.get('spills')} | {row.get('shared_bytes')} |"
            )
    left_out = sum(
        1
        for part in ("throughput", "repeat", "sampling", "latency")
        for r in report[part]
        if "left out" in r.get("status", "")
    )
    failed = [
        r
        for part in ("throughput", "latency")
        for r in report[part]
        if r.get("status", "ok") != "ok" and "left out" not in r.get("status", "")
    ]
    lines += [
        "",
        f"Left out (time budget): {left_out}. Failed: {len(failed)}"
        + "".join(f"; {r['label']}: {r['status']}" for r in failed[:5]),
        "",
    ]
    lines += ["| target | value | goal | verdict | note |", "|---|---:|---:|---|---|"]
    for t in report.get("targets", []):
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"| {t['what']} | {value} | {t['goal']:g} | {t['verdict']} | {t['note']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
