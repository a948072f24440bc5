"""Latent vectors a second from every way of making gankit's noise, side by side in one run.

    python -m benchmarks.run_noise --out benchmarks/results/noise-NAME-YYYY-MM-DD.json

Candidates (latent 100, float32, CPU): v1 (the mapping before v2: gankit/noise.py of commit V1_COMMIT,
read with ``git show``), and the v2 mapping from NumPy, the C extension on 1 and 2 threads (into a
reused buffer, and through ``gankit.noise`` with its allocation), numba on 1 and 2 threads when it is
importable (a plain @njit port of the same steps, kept here only to be measured) and the torch path.
Each is timed over repeated calls at each --counts (median and best wall time, and the median CPU
time of all its threads, which shows a candidate's own cost when other processes share the cores),
and checked bit for bit against NumPy v2 (v1 is another mapping). Start-up: fresh processes time
``import torch`` and, separately, importing a candidate and making the 64 latent vectors of a grid
(numba's JIT included).
Accuracy: max error in ulps against float64 math over all 2**23 uniforms, as evaluated (no FMA) and
with every mul+add fused into one rounding (emulated in float64), which bounds a GPU's contractions.
Writes JSON with the environment (gankit.perf.environment.environment) and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gankit._noise import constants as K
from gankit._noise import np_impl, torch_impl
from gankit.noise import noise
from gankit.perf.environment import environment

ROOT = Path(__file__).resolve().parents[1]
V1_COMMIT = "7f330e5"  # the last commit whose gankit/noise.py made v1 noise
LATENT = 100
PER_ROW = -(-LATENT // 4)
TORCH_MAX_COUNT = 65536  # the torch path (for GPUs) holds ~30 int64 temporaries of count * 25 on the CPU


def load_v1() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{V1_COMMIT}:gankit/noise.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("gankit_noise_v1")
    exec(compile(source, "gankit/noise.py@" + V1_COMMIT, "exec"), module.__dict__)
    return module


NUMBA_SOURCE = """
import math
import numba
import numpy as np

F = np.float32
LN_P = np.array(K.LN_P, dtype=np.float32)
SIN_P = np.array(K.SIN_P, dtype=np.float32)
COS_P = np.array(K.COS_P, dtype=np.float32)
LN2_HI, LN2_LO, SQRT2 = F(K.LN2_HI), F(K.LN2_LO), np.array([K.SQRT2_BITS], np.uint32).view(np.float32)[0]
SCALE, QUARTER, ONE, HALF, TWO, LEAD = F(K.UNIFORM_SCALE), F(K.QUARTER_SCALE), F(1), F(0.5), F(-2), F(K.SIN_LEAD)
M32 = np.uint64(0xFFFFFFFF)


@numba.njit(inline="always")
def radius(w):
    u = F(np.int32((w >> np.uint32(8)) | np.uint32(1))) * SCALE
    m, e = math.frexp(u)  # u = m 2**e, m in [0.5, 1): the mantissa bits as 2m in [1, 2)
    m, e = F(2 * m), e - 1
    if m > SQRT2:
        m, e = m * HALF, e + 1
    x, ef = m - ONE, F(e)
    z = x * x
    p = LN_P[7]
    for i in range(6, -1, -1):
        p = p * x + LN_P[i]
    y = p * x * z
    y = y + ef * LN2_LO
    y = y - HALF * z
    return np.sqrt(TWO * ((x + y) + ef * LN2_HI))


@numba.njit(inline="always")
def cos_sin(w):
    k = np.int32((w >> np.uint32(8)) | np.uint32(1))
    n = (k + np.int32(1 << 21)) >> np.int32(22)
    t = F(k - (n << np.int32(22))) * QUARTER
    z = t * t
    s = SIN_P[3]
    for i in range(2, -1, -1):
        s = s * z + SIN_P[i]
    s = s * t + t * LEAD
    c = COS_P[3]
    for i in range(2, -1, -1):
        c = c * z + COS_P[i]
    c = c * z + ONE
    if n & 1:
        s, c = c, s
    cos = -c if (n + 1) & 2 else c
    sin = -s if n & 2 else s
    return cos, sin


@numba.njit(parallel=True)
def fill(out, keys, first_group, per_row, latent):
    groups = out.shape[0] * per_row
    for j in numba.prange(groups):
        q = np.uint64(first_group + j)
        c0, c1 = q & M32, q >> np.uint64(32)
        c2, c3 = np.uint64(0), np.uint64(0)
        for r in range(10):
            pa, pb = c0 * np.uint64(0xD2511F53), c2 * np.uint64(0xCD9E8D57)
            x0, x2 = (pb >> np.uint64(32)) ^ c1 ^ keys[2 * r], (pa >> np.uint64(32)) ^ c3 ^ keys[2 * r + 1]
            c0, c1, c2, c3 = x0, pb & M32, x2, pa & M32
        r01, r23 = radius(np.uint32(c0)), radius(np.uint32(c2))
        cos1, sin1 = cos_sin(np.uint32(c1))
        cos3, sin3 = cos_sin(np.uint32(c3))
        values = (r01 * cos1, r01 * sin1, r23 * cos3, r23 * sin3)
        row, g = j // per_row, j % per_row
        for r in range(4):
            if 4 * g + r < latent:
                out[row, 4 * g + r] = values[r]
"""


def load_numba() -> types.ModuleType | None:
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    module = types.ModuleType("noise_numba")
    module.K = K
    exec(compile(NUMBA_SOURCE, "run_noise.py:numba", "exec"), module.__dict__)
    return module


def numba_keys(seed: int) -> np.ndarray:
    keys, k0, k1 = [], seed & 0xFFFFFFFF, seed >> 32
    for _ in range(K.ROUNDS):
        keys += [k0, k1]
        k0, k1 = (k0 + K.KEY_A) & 0xFFFFFFFF, (k1 + K.KEY_B) & 0xFFFFFFFF
    return np.array(keys, dtype=np.uint64)


def candidates(numba_module: types.ModuleType | None) -> dict[str, Callable[[int, int, int], np.ndarray]]:
    """name -> f(seed, start, count) returning (count, LATENT) float32 NumPy values."""
    from gankit._noise import _native

    v1 = load_v1()
    buffers: dict[int, np.ndarray] = {}

    def buffer(count: int) -> np.ndarray:
        if count not in buffers:
            buffers[count] = np.zeros((count, LATENT), dtype=np.float32)
        return buffers[count]

    def native(threads: int) -> Callable[[int, int, int], np.ndarray]:
        def run(seed: int, start: int, count: int) -> np.ndarray:
            out = buffer(count)
            _native.fill(out, seed, start, count, LATENT, threads)
            return out

        return run

    def through_gankit(threads: int) -> Callable[[int, int, int], np.ndarray]:
        def run(seed: int, start: int, count: int) -> np.ndarray:
            torch.set_num_threads(threads)
            return noise(seed, start, count, LATENT).numpy()

        return run

    table = {
        "v1 (tl.randn twin, NumPy)": lambda s, st, n: v1.noise(s, st, n, LATENT).numpy(),
        "v2 NumPy": lambda s, st, n: np_impl.noise_numpy(s, st, n, LATENT),
        "v2 C, 1 thread, reused buffer": native(1),
        "v2 C, 2 threads, reused buffer": native(2),
        "v2 gankit.noise (C), 1 thread": through_gankit(1),
        "v2 gankit.noise (C), 2 threads": through_gankit(2),
        "v2 torch ops (CPU)": lambda s, st, n: torch_impl.noise_torch(s, st, n, LATENT, torch.device("cpu")).numpy(),
    }
    if numba_module is not None:

        def with_numba(threads: int) -> Callable[[int, int, int], np.ndarray]:
            def run(seed: int, start: int, count: int) -> np.ndarray:
                numba_module.numba.set_num_threads(threads)
                out = buffer(count)
                numba_module.fill(out, numba_keys(seed), start * PER_ROW, PER_ROW, LATENT)
                return out

            return run

        table["v2 numba, 1 thread, reused buffer"] = with_numba(1)
        table["v2 numba, 2 threads, reused buffer"] = with_numba(2)
    return table


def measure(fn: Callable[[int, int, int], np.ndarray], count: int, min_seconds: float) -> dict:
    """Median wall seconds a call, and the CPU seconds (all threads) of that call: on a shared machine
    the CPU time shows a candidate's own cost when other processes take the cores."""
    fn(1, 0, count)  # warm-up: JIT, page faults of reused buffers
    times: list[tuple[float, float]] = []
    begin = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - begin < min_seconds:
        start, cpu = time.perf_counter(), time.process_time()
        fn(1, len(times) * count, count)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    median, cpu = statistics.median(t for t, _ in times), statistics.median(c for _, c in times)
    return {
        "count": count,
        "repeats": len(times),
        "median_s": median,
        "per_second": count / median,
        "per_second_best": count / min(t for t, _ in times),
        "cpu_s": cpu,
        "per_cpu_second": count / cpu,
    }


STARTUP_SNIPPETS = {
    "import torch": "import torch",
    "v1": "import subprocess, types; src = subprocess.run(['git', 'show', '{v1}:gankit/noise.py'], "
    "capture_output=True, text=True).stdout; m = types.ModuleType('v1'); exec(src, m.__dict__); "
    "mark(); m.noise(0, 0, 64, 100)",
    "v2 gankit.noise": "from gankit.noise import noise; mark(); noise(0, 0, 64, 100)",
    "v2 numba": "from benchmarks import run_noise; m = run_noise.load_numba(); "
    "import numpy as np; out = np.empty((64, 100), np.float32); mark(); "
    "m.fill(out, run_noise.numba_keys(0), 0, 25, 100)",
}


def startup(name: str, repeats: int = 3) -> dict:
    """Fresh processes: seconds to ``import torch``, then to the end of the snippet (and its part after mark())."""
    program = (
        "import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); marks = []\n"
        "def mark(): marks.append(time.perf_counter())\n"
        + STARTUP_SNIPPETS[name].format(v1=V1_COMMIT)
        + "\nt2 = time.perf_counter(); import json; "
        "print(json.dumps([t1 - t0, t2 - t1, t2 - marks[0] if marks else 0.0]))"
    )
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "import_torch_s": statistics.median(r[0] for r in runs),
        "after_torch_s": statistics.median(r[1] for r in runs),
        "first_call_s": statistics.median(r[2] for r in runs),
    }


def _fma(a: np.ndarray, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """a * b + c with one rounding to float32 (the product is exact in float64; the sum rounds twice,
    which can differ from a true FMA only on rare float32 ties)."""
    return (np.asarray(a, np.float64) * np.float64(b) + np.asarray(c, np.float64)).astype(np.float32)


def _fused_radius_cos_sin(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np_impl.radius and cos_sin with every mul+add a compiler may contract fused."""
    f = np.float32
    u = np_impl._odd24(words).astype(np.float32) * f(K.UNIFORM_SCALE)
    bits = u.view(np.uint32)
    mantissa = (bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)
    big = (mantissa > np.uint32(K.SQRT2_BITS)).astype(np.uint32)
    mantissa = mantissa - (big << np.uint32(23))
    e = ((bits >> np.uint32(23)).view(np.int32) - 127 + big.view(np.int32)).astype(np.float32)
    x = mantissa.view(np.float32) - f(1)
    z = x * x
    p = np.full_like(x, f(K.LN_P[-1]))
    for c in K.LN_P[-2::-1]:
        p = _fma(p, x, f(c))
    y = _fma(e, f(K.LN2_LO), p * x * z)
    y = _fma(f(-0.5), z, y)
    radius = np.sqrt(f(-2) * _fma(e, f(K.LN2_HI), x + y))
    k = np_impl._odd24(words)
    n = (k + np.int32(1 << 21)) >> np.int32(22)
    t = (k - (n << np.int32(22))).astype(np.float32) * f(K.QUARTER_SCALE)
    z = t * t
    s, c = np.full_like(t, f(K.SIN_P[-1])), np.full_like(t, f(K.COS_P[-1]))
    for a, b in zip(K.SIN_P[-2::-1], K.COS_P[-2::-1]):
        s, c = _fma(s, z, f(a)), _fma(c, z, f(b))
    s, c = _fma(s, t, t * f(K.SIN_LEAD)), _fma(c, z, f(1))
    odd = (n & 1).astype(bool)
    cos, sin = np.where(odd, s, c), np.where(odd, c, s)
    cos = np.where(((n + 1) & 2).astype(bool), -cos, cos)
    sin = np.where((n & 2).astype(bool), -sin, sin)
    return radius, cos, sin


def accuracy() -> dict:
    words = np.arange(2**23, dtype=np.uint32) << np.uint32(9)
    u = np_impl._odd24(words).astype(np.float64) * 2.0**-24
    exact = {"radius": np.sqrt(-2 * np.log(u)), "cos": np.cos(2 * np.pi * u), "sin": np.sin(2 * np.pi * u)}
    plain_cos, plain_sin = np_impl.cos_sin(words)
    evaluations = {
        "as evaluated (no FMA)": (np_impl.radius(words), plain_cos, plain_sin),
        "every mul+add fused": _fused_radius_cos_sin(words),
    }
    exact_ln = np.log(u)
    ln_error = np.abs(np_impl.log_uniform(words) - exact_ln)
    result: dict = {"ln_ulps_max": float((ln_error / np.spacing(np.abs(exact_ln).astype(np.float32))).max())}
    for label, values in evaluations.items():
        row = {}
        for name, got in zip(("radius", "cos", "sin"), values):
            error = np.abs(got.astype(np.float64) - exact[name])
            ulp = np.spacing(np.abs(exact[name]).astype(np.float32)).astype(np.float64)
            row[name] = {
                "ulps_max": float((error / ulp).max()),
                "relative_max": float((error / np.abs(exact[name])).max()),
            }
        result[label] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--counts", default="65536,1048576", help="latent vectors a call")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each candidate at least this long")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    threads_before = torch.get_num_threads()
    load_before = os.getloadavg()
    numba_module = load_numba()
    checked = min(counts)
    reference = np_impl.noise_numpy(1, 0, checked, LATENT).view(np.uint32)
    rows = []
    for name, fn in candidates(numba_module).items():
        same = None if name.startswith("v1") else bool(np.array_equal(fn(1, 0, checked).view(np.uint32), reference))
        for count in counts:
            if name.startswith("v2 torch") and count > TORCH_MAX_COUNT:
                continue
            row = {"candidate": name, "bit_exact_with_numpy_v2": same, **measure(fn, count, args.min_seconds)}
            rows.append(row)
            rate, best, cpu_rate = row["per_second"] / 1e6, row["per_second_best"] / 1e6, row["per_cpu_second"] / 1e6
            print(
                f"{name:40s} {count:>9,d}  median {rate:6.3f} M/s  best {best:6.3f} M/s  {cpu_rate:6.3f} M/CPU-s  "
                f"exact={same}",
                flush=True,
            )
    torch.set_num_threads(threads_before)
    v1 = {r["count"]: r["per_second"] for r in rows if r["candidate"].startswith("v1")}
    for row in rows:
        row["vs_v1"] = row["per_second"] / v1[row["count"]]
    starts = {name: startup(name) for name in STARTUP_SNIPPETS if name != "v2 numba" or numba_module is not None}
    for name, row in starts.items():
        print(f"start-up {name:20s} {row}", flush=True)
    report = {
        "environment": environment(torch.device("cpu")),
        "numba": None if numba_module is None else numba_module.numba.__version__,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "latent": LATENT,
        "v1_commit": V1_COMMIT,
        "results": rows,
        "startup": starts,
        "accuracy_over_all_2**23_uniforms": accuracy(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
