"""Sampling to disk on this machine, every rate side by side in one run, and which stage binds.

    python -m benchmarks.run_sampling [--n 2000000] [--path auto|BACKEND:PRECISION] [--workdir DIR] [--runs 5]

For one path (default: the one ``--precision auto`` picks: the fastest whose quality is within tolerance):

- bare model: the runtime alone on a fixed z, batch 4096, no I/O, all threads, float images into a buffer of
  its own (the lanes' call, without the noise and the uint8 mapping);
- each stage alone: noise, the model in one lane of one thread, the uint8 mapping (chunked, as the lanes do
  it, and ``to_uint8`` on the whole batch as before), CRC-32 and sha256, writing a shard (atomic, O_DIRECT,
  fsync), the disk's write ceiling (1 GiB, fsync, the better of buffered and O_DIRECT), and the lanes at the
  measured split without the writer;
  with its wall rate and its CPU cost (process CPU time a sample);
- ``gankit sample --n N`` as a subprocess: its own steady-state rate (from its first shard to its last, as it
  reports) against the bare rate (target >= 80 %), and the whole process's wall time;
- the hand-written script as a subprocess, timed as a whole process too (NumPy's RNG + the same runtime on
  the same ONNX file + uint8 + ``np.save`` per 65,536, no fsync), with the runtime's defaults and tuned (the
  same threads, no spinning, and the uint8 mapping in cache-sized chunks); target: gankit's whole process
  >= 1.5x faster. The three processes are alternated ``--repeats`` times and the median run of each is
  reported;
- time to first image: ``python -c "import torch"`` against a 64-sample grid on the runtime path from its cached
  export (which imports no torch; target: ratio <= 0.5) and with the default options, warm caches, alternated
  ``--runs`` times, medians.

Where 80 % is not reached, the binding stage is named from the measured CPU costs: on C threads the lanes
and the writer share the cores, so the sampler cannot beat C / (noise + model + uint8 + writer CPU a sample),
nor the writer thread alone (1 / (checksum + write)), nor the disk. Caches (the ONNX exports, ``--precision auto``'s
choice, the lanes split) are warmed first and are not timed. The load average is recorded before and after:
on a busy machine every number moves.

Writes ``benchmarks/results/sampling-<cpu>-<date>.json`` and ``.md``; ``--docs`` also puts the table into
docs/sampling.md between the sampling markers (never hand-edit it).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import add_run_arguments, cpu_path, put_block
from gankit.backends import create_backend
from gankit.checkpoint import load_generator
from gankit.cpu import cpu_info
from gankit.io import atomic_path
from gankit.noise import noise
from gankit.perf.environment import environment
from gankit.pixels import to_uint8, to_uint8_into
from gankit.sampling.lanes import measure_split, open_lanes, plan_lanes
from gankit.sampling.writer import DIRECT, aligned_empty, write_all, write_shard

ROOT = Path(__file__).resolve().parents[1]
DOCS_MARKERS = ("<!-- sampling:start -->", "<!-- sampling:end -->")
BATCH = 4096
SHARD = 65536
LATENT = 100
GIB = 1 << 30
PROCESS_TIMEOUT = 1800

SCRIPT = '''"""The hand-written sampler a user would write: NumPy's RNG + the runtime + uint8 + np.save per shard."""
import sys
import numpy as np

runtime, path, precision, variant, n, out = sys.argv[1:7]
n, shard, batch = int(n), 65536, 4096
if runtime == "onnxruntime":
    import onnxruntime as ort
    options = ort.SessionOptions()
    if variant == "tuned":
        options.intra_op_num_threads = int(sys.argv[7])
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    run = lambda z: session.run(None, {"z": z})[0]
else:
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if variant == "tuned":
        config.update(INFERENCE_NUM_THREADS=int(sys.argv[7]), PERFORMANCE_HINT="LATENCY")
    request = core.compile_model(path, "CPU", config).create_infer_request()
    run = lambda z: request.infer({0: z})[0]

def to_uint8(x, out):
    if variant == "tuned":  # in cache-sized chunks
        for i in range(0, len(x), 256):
            out[i : i + 256] = np.clip(np.rint((x[i : i + 256] + 1) * 127.5), 0, 255)
    else:
        out[...] = np.clip(np.rint((x + 1) * 127.5), 0, 255)


rng = np.random.default_rng(0)
for index, first in enumerate(range(0, n, shard)):
    count = min(shard, n - first)
    images = np.empty((count, 1, 28, 28), np.uint8)
    for offset in range(0, count, batch):
        z = rng.standard_normal((min(batch, count - offset), 100), dtype=np.float32)
        to_uint8(run(z), images[offset : offset + len(z)])
    np.save(f"{out}/shard_{index:05d}.npy", images)
'''


def settle() -> None:
    gc.collect()
    time.sleep(0.3)  # onnxruntime's spinning workers fall asleep


def timed(fn: Callable[[], object], samples: int, seconds: float = 1.0) -> dict[str, float]:
    """Samples/s (median wall time of repeated calls, after one) and CPU µs a sample (process CPU time)."""
    fn()
    walls, cpu_begin, begin = [], time.process_time(), time.perf_counter()
    while len(walls) < 3 or time.perf_counter() - begin < seconds:
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_begin
    return {"per_second": samples / statistics.median(walls), "cpu_us": 1e6 * cpu / (samples * len(walls))}


def with_threads(threads: int, fn: Callable[[], dict]) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def stages(name: str, precision: str, workdir: Path) -> dict[str, dict[str, float]]:
    threads = torch.get_num_threads()
    z = noise(0, 0, BATCH, LATENT).numpy()
    backend = create_backend(name, load_generator(), precision=precision, device="cpu")
    out: dict[str, dict[str, float]] = {}
    (lane,) = open_lanes(backend, 1, threads)
    settle()
    out[f"bare model ({threads} threads, float images, no noise, no I/O)"] = timed(lambda: lane.run(z), BATCH)
    (one,) = open_lanes(backend, 1, 1)
    settle()
    out["model, one lane of 1 thread"] = timed(lambda: one.run(z), BATCH)
    out["noise, 1 thread"] = with_threads(1, lambda: timed(lambda: noise(0, 0, BATCH, LATENT), BATCH))
    out[f"noise, {threads} threads"] = timed(lambda: noise(0, 0, BATCH, LATENT), BATCH)
    images, levels = one.run(z).copy(), np.empty((BATCH, 1, 28, 28), np.uint8)
    out["uint8, chunked (to_uint8_into, as lanes do)"] = timed(lambda: to_uint8_into(images, levels), BATCH)
    tensor = torch.from_numpy(images)
    out["uint8, to_uint8 on the whole batch (before), 1 thread"] = with_threads(
        1, lambda: timed(lambda: to_uint8(tensor), BATCH)
    )
    shard = aligned_empty(SHARD * 28 * 28).reshape(SHARD, 1, 28, 28)  # as the pipeline allocates it
    shard[...] = np.random.default_rng(0).integers(0, 256, shard.shape, dtype=np.uint8)
    out["checksum crc32"] = timed(lambda: zlib.crc32(shard), SHARD)
    out["checksum sha256 (before)"] = timed(lambda: __import__("hashlib").sha256(shard).digest(), SHARD)
    target = workdir / "stage-write"
    target.mkdir()
    writing = timed(lambda: write_shard(target, "s.npy", 0, shard), SHARD, 3.0)
    out["write a shard (atomic, O_DIRECT, fsync, crc32)"] = writing
    out["disk write ceiling (1 GiB, fsync, best of buffered and O_DIRECT)"] = disk_ceiling(workdir)
    lanes, lane_threads, _ = plan_lanes(backend, "uint8", BATCH)
    settle()
    rate = measure_split(backend, "uint8", BATCH, lanes, lane_threads)
    out[f"lanes at the plan ({lanes} x {lane_threads}), no writer"] = {"per_second": rate, "cpu_us": float("nan")}
    return out


def disk_ceiling(workdir: Path) -> dict[str, float]:
    """1 GiB to a file in ``workdir`` and fsync, twice: buffered (through the page cache) and with O_DIRECT from a
    page-aligned buffer (as the writer does); the faster is the ceiling (a ceiling must bound what the writer
    reaches), both are kept."""
    block = aligned_empty(64 << 20)
    block[:] = np.random.default_rng(1).integers(0, 256, block.size, dtype=np.uint8)
    path = workdir / "disk-ceiling.bin"
    samples = GIB / (28 * 28)
    rates = {}
    for how in ("buffered", "O_DIRECT"):
        begin, cpu = time.perf_counter(), time.process_time()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (DIRECT if how == "O_DIRECT" else 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError:  # no O_DIRECT on this file system (tmpfs)
            continue
        try:
            for _ in range(GIB // block.nbytes):
                write_all(fd, memoryview(block))
            os.fsync(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
        seconds = time.perf_counter() - begin
        rates[how] = {"per_second": samples / seconds, "cpu_us": 1e6 * (time.process_time() - cpu) / samples}
    best = max(rates, key=lambda how: rates[how]["per_second"])
    return {
        **rates[best],
        "mb_per_second": rates[best]["per_second"] * 28 * 28 / 1e6,
        "how": best,
        **{f"{how}_per_second": rate["per_second"] for how, rate in rates.items()},
    }


def run_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    begin = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"{' '.join(command)} ran past {PROCESS_TIMEOUT} s: a hang, not a measurement") from exc
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def gankit_sample(name: str, precision: str, n: int, workdir: Path) -> dict[str, object]:
    out = workdir / "gankit"
    command = [sys.executable, "-m", "gankit", "sample", "--n", str(n), "--out", str(out), "--quiet"]
    seconds, stdout = run_process([*command, "--backend", name, "--precision", precision])
    shutil.rmtree(out)
    steady = float(re.search(r": ([\d,]+) samples/s", stdout).group(1).replace(",", ""))
    return {"steady_per_second": steady, "wall_seconds": seconds, "log": stdout}


def script(name: str, precision: str, variant: str, n: int, workdir: Path) -> dict[str, object]:
    backend = create_backend(name, load_generator(), precision=precision, device="cpu")
    path = backend.path
    program, out = workdir / "handwritten.py", workdir / "script"
    program.write_text(SCRIPT)
    out.mkdir()
    command = [sys.executable, str(program), name, str(path), precision, variant, str(n), str(out)]
    seconds, _ = run_process([*command, str(torch.get_num_threads())])
    shutil.rmtree(out)
    return {"wall_seconds": seconds, "graph": str(path.name)}


def processes(name: str, precision: str, n: int, repeats: int, workdir: Path) -> dict[str, dict[str, object]]:
    """gankit sample and both scripts, alternated ``repeats`` times (a drifting load hits all three alike);
    the run with the median wall time of each, with every run's times."""
    runs: dict[str, list[dict]] = {"gankit": [], "script_defaults": [], "script_tuned": []}
    for _ in range(repeats):
        runs["gankit"].append(gankit_sample(name, precision, n, workdir))
        runs["script_defaults"].append(script(name, precision, "defaults", n, workdir))
        runs["script_tuned"].append(script(name, precision, "tuned", n, workdir))
        print(", ".join(f"{k} {v[-1]['wall_seconds']:.2f} s" for k, v in runs.items()), flush=True)
    chosen = {}
    for label, results in runs.items():
        median = sorted(results, key=lambda run: run["wall_seconds"])[len(results) // 2]
        chosen[label] = {**median, "whole_per_second": n / median["wall_seconds"]}
        chosen[label]["all_wall_seconds"] = [run["wall_seconds"] for run in results]
        if label == "gankit":
            chosen[label]["all_steady_per_second"] = [run["steady_per_second"] for run in results]
            chosen[label]["steady_per_second"] = statistics.median(chosen[label]["all_steady_per_second"])
    return chosen


def first_image(runs: int, workdir: Path, name: str, precision: str) -> dict[str, object]:
    """``import torch`` alone against a 64-sample grid on the runtime path from its cached export (``name`` when
    it is onnxruntime or OpenVINO, else onnxruntime fp32) and with the default options, alternated ``runs``
    times, warm caches; medians."""
    if name not in ("onnxruntime", "openvino"):
        name, precision = "onnxruntime", "fp32"
    base = [sys.executable, "-m", "gankit", "sample", "--n", "64", "--quiet", "--force"]
    grids = {
        "runtime": [*base, "--backend", name, "--precision", precision, "--out", str(workdir / "runtime.png")],
        "defaults": [*base, "--out", str(workdir / "grid.png")],
    }
    for command in grids.values():
        run_process(command)  # warm: the export cache, --backend auto's choice
    times: dict[str, list[float]] = {"import_torch": [], **{label: [] for label in grids}}
    for _ in range(runs):
        times["import_torch"].append(run_process([sys.executable, "-c", "import torch"])[0])
        for label, command in grids.items():
            times[label].append(run_process(command)[0])
    medians = {label: statistics.median(values) for label, values in times.items()}
    return {
        "runtime_path": f"{name} {precision}",
        "seconds": times,
        "medians": medians,
        "runtime_ratio": medians["runtime"] / medians["import_torch"],
        "defaults_ratio": medians["defaults"] / medians["import_torch"],
    }


def binding(stage: dict[str, dict[str, float]], steady: float, threads: int) -> dict[str, object]:
    """Steady state over the bare model, the ceilings, and what binds, from the measured costs (module docstring).

    The binding stage is the lowest ceiling that the steady state does not exceed: the disk or the writer thread
    when one of them is; else the cores,
    and then the stage that takes most of their time a sample beside the model (the model's own cost in a lane
    beside its cost in the bare run says what running in lanes costs it)."""
    bare = next(value for label, value in stage.items() if label.startswith("bare model"))
    writer = stage["write a shard (atomic, O_DIRECT, fsync, crc32)"]
    costs = {
        "noise": stage["noise, 1 thread"]["cpu_us"],
        "model in a lane": stage["model, one lane of 1 thread"]["cpu_us"],
        "uint8": stage["uint8, chunked (to_uint8_into, as lanes do)"]["cpu_us"],
        "writer (crc32, write, fsync)": writer["cpu_us"],
    }
    ceilings = {
        "the cores (noise + model + uint8 + writer CPU a sample)": threads * 1e6 / sum(costs.values()),
        "the lanes as measured (generation alone)": next(v for k, v in stage.items() if k.startswith("lanes"))[
            "per_second"
        ],
        "the writer thread": writer["per_second"],
        "the disk": stage["disk write ceiling (1 GiB, fsync, best of buffered and O_DIRECT)"]["per_second"],
    }
    # A ceiling measured below what gankit sample reached bounds nothing (a short, noisy measurement): it is
    # flagged in the report and left out of the choice of what binds.
    valid = {name: rate for name, rate in ceilings.items() if rate >= steady} or ceilings
    lowest = min(valid, key=valid.get)
    besides = max((k for k in costs if k != "model in a lane"), key=costs.get)
    binds = (
        lowest
        if lowest in ("the writer thread", "the disk")
        else (
            f"{lowest}; beside the model ({costs['model in a lane']:.2f} CPU µs a sample in a lane, "
            f"{bare['cpu_us']:.2f} in the bare run), {besides} takes the most: {costs[besides]:.2f} µs"
        )
    )
    return {
        "cpu_us_a_sample": costs,
        "ceilings_per_second": ceilings,
        "binds": binds,
        "steady_over_bare": steady / bare["per_second"],
        "met": steady / bare["per_second"] >= 0.8,
        # a ceiling below what gankit sample reached does not bound it: its measurement is wrong, and says so
        "ceilings_below_steady": [name for name, rate in ceilings.items() if rate < steady],
    }


def slug() -> str:
    info = cpu_info()
    words = [w for w in re.split(r"[^a-z0-9]+", info.model.lower()) if w in ("xeon", "epyc", "ryzen", "core", "apple")]
    amx = "-amx" if "amx_tile" in info.flags else ""
    return f"{(words or ['cpu'])[0]}{amx}-{os.cpu_count()}core"


def markdown(result: dict) -> list[str]:
    """The table and the targets (the docs block, and the .md file under a title)."""
    env, path = result["environment"], result["path"]
    note = f" ({result['note']})" if result["note"] else ""
    lines = [
        f"On {env['cpu']}, {env['torch_threads']} threads, {env['date']}{note}."
        f" Path: **{path['backend']} {path['precision']}** ({path['why']}); N = {result['n']:,} uint8 samples, batch "
        f"{BATCH}, shards of {SHARD:,}; noise {env['noise']}; "
        f"load average {result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after; commit "
        f"{env['git_commit'][:12]}.",
        "",
        "| what | samples/s | CPU µs a sample |",
        "|---|---:|---:|",
    ]
    for label, value in result["stages"].items():
        cpu = "-" if value["cpu_us"] != value["cpu_us"] else f"{value['cpu_us']:.2f}"
        lines.append(f"| {label} | {value['per_second']:,.0f} | {cpu} |")
    g, s, t = result["gankit"], result["script_defaults"], result["script_tuned"]
    b, f = result["binding"], result["first_image"]
    below = b.get("ceilings_below_steady", [])
    lines += [
        f"| **gankit sample, steady state** (its own rate) | **{g['steady_per_second']:,.0f}** | |",
        f"| gankit sample, whole process ({g['wall_seconds']:.2f} s) | {g['whole_per_second']:,.0f} | |",
        f"| hand-written script, runtime defaults, whole process ({s['wall_seconds']:.2f} s) | "
        f"{s['whole_per_second']:,.0f} | |",
        f"| hand-written script, tuned (same threads, chunked uint8), whole process ({t['wall_seconds']:.2f} s) | "
        f"{t['whole_per_second']:,.0f} | |",
        "",
        f"- steady state / bare model: **{b['steady_over_bare']:.0%}** (target 80 %: "
        f"{'met' if b['met'] else 'not met'}); binds: {b['binds']} "
        f"(ceilings: {', '.join(f'{k} {v:,.0f}/s' for k, v in b['ceilings_per_second'].items())}; CPU µs a "
        f"sample: {', '.join(f'{k} {v:.2f}' for k, v in b['cpu_us_a_sample'].items())})",
        *(["- **warning**: the steady state is above the measured ceiling of " + ", ".join(below)] if below else []),
        f"- whole process, gankit vs the hand-written script: **{s['wall_seconds'] / g['wall_seconds']:.2f}x** "
        f"(runtime defaults), {t['wall_seconds'] / g['wall_seconds']:.2f}x (tuned); target 1.5x",
        f"- time to a 64-sample grid on {f['runtime_path']} from its cached export: "
        f"{f['medians']['runtime']:.2f} s vs `import torch` alone {f['medians']['import_torch']:.2f} s (medians of "
        f"{len(f['seconds']['runtime'])}): **{f['runtime_ratio']:.2f}x** (target <= 0.5); with the default options "
        f"(`--backend auto`) {f['medians']['defaults']:.2f} s, {f['defaults_ratio']:.2f}x",
    ]
    return lines


def put_in_docs(lines: list[str], source: Path) -> None:
    latest = f"Latest run: `{source.resolve().relative_to(ROOT).as_posix()}`."
    put_block(ROOT / "docs" / "sampling.md", DOCS_MARKERS, [latest, "", *lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each start-up measurement [%(default)s]")
    parser.add_argument("--repeats", type=int, default=3, help="runs of gankit sample and each script [%(default)s]")
    parser.add_argument("--docs", action="store_true", help="put the table into docs/sampling.md")
    add_run_arguments(parser, "sampling")
    args = parser.parse_args()
    load_before = os.getloadavg()
    name, precision, why = cpu_path(args.path)
    print(f"path: {name} {precision} ({why})", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gankit-bench-", dir=args.workdir))
    try:
        gankit_sample(name, precision, SHARD, workdir)  # warms the caches: the export, the lanes split
        stage = stages(name, precision, workdir)
        for label, value in stage.items():
            print(f"{label:<55} {value['per_second']:>12,.0f}/s  {value['cpu_us']:.2f} CPU µs a sample", flush=True)
        whole = processes(name, precision, args.n, args.repeats, workdir)
        first = first_image(args.runs, workdir, name, precision)
        print(f"first image: {first['runtime_ratio']:.2f}x import torch", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "environment": environment(torch.device("cpu")),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "path": {"backend": name, "precision": precision, "why": why},
        "n": args.n,
        "note": args.note,
        "stages": stage,
        **whole,
        "first_image": first,
        "binding": binding(stage, whole["gankit"]["steady_per_second"], torch.get_num_threads()),
    }
    date = datetime.date.today().isoformat()
    out = args.out or ROOT / "benchmarks" / "results" / f"sampling-{slug()}-{date}.json"
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    lines = markdown(result)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(["# Sampling to disk, side by side", "", *lines, ""]))
    print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if args.docs:
        put_in_docs(lines, out)


if __name__ == "__main__":
    main()
