"""Measurements made once per machine and kept: the ``--backend auto`` / ``--precision auto`` choices and the
sampling lanes' split, in ``$GANKIT_CACHE_DIR`` (default ``~/.cache/gankit``).

A measurement is keyed by what it depends on (``machine_key`` plus the caller's own parts) and stored beside the
load it was taken under: one taken while other work held the cores is taken again once the machine is quieter
(``cached``). Delete ``$GANKIT_CACHE_DIR/auto-backend*.json`` to measure everything again.

No torch here: a sampling run on onnxruntime or OpenVINO reads its cached choices without it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gankit.cpu import compute_threads, cpu_info
from gankit.io import cache_dir, read_json, write_json
from gankit.version import package_version

BUSY_CORES = 0.5  # load beyond this process's threads that makes a measurement worth taking again when it is gone


def cache_file() -> Path:
    return cache_dir() / "auto-backend.json"


def conditions_file() -> Path:
    return cache_dir() / "auto-backend.conditions.json"


def machine_key() -> list:
    """What every measured choice depends on besides the model: the CPU, the thread count, the runtimes' versions."""
    versions = {name: package_version(name) for name in ("torch", "onnxruntime", "openvino")}
    return [cpu_info().model, compute_threads(), versions]


def busy_cores() -> float:
    """The 1-minute load average less the cores this process may use: above 0, others compete for the cores."""
    return os.getloadavg()[0] - compute_threads() if hasattr(os, "getloadavg") else 0.0


def _stale(condition: dict[str, float] | None) -> bool:
    """A measurement is taken again when nothing says how busy the machine was, or when it was taken while
    other work held cores (``BUSY_CORES``) and the machine is quieter now: load that comes and goes is what
    flips a ranking, and steady load slows every candidate alike."""
    if condition is None:
        return True
    return condition["busy_cores"] > BUSY_CORES and busy_cores() < condition["busy_cores"] - BUSY_CORES


def cached(key: str, measure: Callable[[], Any]) -> Any:
    """``cache[key]``, measuring it with ``measure()`` and saving it (atomically) the first time, and again when
    it went stale (``_stale``). Beside the cache, ``auto-backend.conditions.json`` records the load each entry was
    measured under."""
    path, conditions_path = cache_file(), conditions_file()
    try:
        cache = read_json(path)
    except (OSError, ValueError):
        cache = {}
    try:
        conditions = read_json(conditions_path)
    except (OSError, ValueError):
        conditions = {}
    if key not in cache or _stale(conditions.get(key)):
        busy = busy_cores()
        cache[key] = measure()
        conditions[key] = {"busy_cores": max(busy, busy_cores()), "measured": time.time()}
        try:
            write_json(path, cache, indent=1)
            write_json(conditions_path, conditions, indent=1)
        except OSError:
            pass  # an unwritable cache only costs a re-measurement next time
    return cache[key]
