"""Timing done right.

- CPU: repeated wall-clock calls after two warm-up calls, for at least ``min_seconds``; median and p90.
- GPU: ``triton.testing.do_bench`` (CUDA events, L2 flushed between runs, after warm-up).
- ``settle()`` before timing something on the CPU after an onnxruntime session ran: its worker threads
  spin for a moment after each run and would share the cores with the next measurement.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

SETTLE_SECONDS = 0.3  # onnxruntime's spinning workers go to sleep well within this


def settle() -> None:
    """Drop unreferenced sessions and wait for spinning worker threads (onnxruntime) to fall asleep."""
    gc.collect()
    time.sleep(SETTLE_SECONDS)


def time_cpu(fn: Callable[[], object], min_seconds: float = 0.3, min_repeats: int = 5) -> list[float]:
    """Wall-clock seconds of repeated calls after two warm-up calls, for at least ``min_seconds``."""
    fn()
    fn()
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - begin < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) >= 10_000:
            break
    return times


def time_gpu(fn: Callable[[], object]) -> list[float]:
    """do_bench quantiles (median, p90) in seconds: CUDA events, L2 flushed between runs, after warm-up."""
    from triton.testing import do_bench

    median_ms, p90_ms = do_bench(fn, quantiles=[0.5, 0.9], warmup=50, rep=300)
    return [median_ms / 1e3, p90_ms / 1e3]


def summarise(times: list[float], on_gpu: bool) -> tuple[float, float]:
    """(median, p90) seconds of ``time_cpu`` times, or of ``time_gpu``'s (median, p90) pair."""
    if on_gpu:
        return times[0], times[1]
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
