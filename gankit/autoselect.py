"""``--backend auto`` on a CPU: time the candidate backends once on this machine, cache the winner.

The choice depends on the CPU (its cores, AVX-512/VNNI/bf16), the library versions, the model and the
batch size, so it is measured rather than guessed: each candidate generates one batch for a fraction
of a second, and the fastest wins. The result is cached in ``$GANKIT_CACHE_DIR`` (default
``~/.cache/gankit``) under a key made of all of those, so the next run decides at once.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import torch

from gankit.backends import backend_class, backend_names, create_backend
from gankit.checkpoint import atomic_path
from gankit.cpu import cpu_info
from gankit.errors import GankitError
from gankit.model import Generator
from gankit.noise import noise

CPU_CANDIDATES = ("eager", "onnxruntime")
MAX_CALIBRATION_BATCH = 4096


def cache_file() -> Path:
    return Path(os.environ.get("GANKIT_CACHE_DIR", Path.home() / ".cache" / "gankit")) / "auto-backend.json"


def _candidates(precision: str) -> list[str]:
    names = []
    for name in CPU_CANDIDATES:
        if name in backend_names():
            cls = backend_class(name)
            if cls.unavailable_reason() is None and precision in cls.precisions:
                names.append(name)
    return names


def _rate(name: str, generator: Generator, precision: str, batch: int) -> float:
    from gankit.bench import time_cpu

    backend = create_backend(name, generator, precision=precision, device="cpu")
    z = noise(0, 0, batch, generator.config.latent_dim)
    return batch / statistics.median(time_cpu(lambda: backend.generate(z, output="uint8"), min_seconds=0.2))


def choose_cpu_backend(generator: Generator, model_sha: str, precision: str, batch: int) -> tuple[str, str]:
    """(backend name, why): the fastest CPU candidate at this batch size, measured once and cached."""
    candidates = _candidates(precision)
    if len(candidates) <= 1:
        return "eager", "CPU, no other backend available to compare"
    batch = max(1, min(batch, MAX_CALIBRATION_BATCH))
    versions = {name: getattr(__import__(name), "__version__", "?") for name in ("torch", "onnxruntime")}
    key = json.dumps(
        [cpu_info().model, torch.get_num_threads(), versions, model_sha, precision, batch, candidates], sort_keys=True
    )
    path = cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        rates = {}
        for name in candidates:
            try:
                rates[name] = _rate(name, generator, precision, batch)
            except GankitError:
                continue
        cache[key] = rates
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(cache, indent=1))
        except OSError:
            pass  # an unwritable cache only costs a re-measurement next time
    rates = cache[key]
    best = max(rates, key=rates.get)
    shown = ", ".join(f"{name} {rate:,.0f}/s" for name, rate in sorted(rates.items(), key=lambda kv: -kv[1]))
    return best, f"fastest on this CPU at batch {batch}, measured once and cached: {shown}"
