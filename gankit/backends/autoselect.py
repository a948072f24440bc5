"""``--backend auto`` / ``--precision auto`` on a CPU: measure the candidates once here, cache the winner.

The choice depends on the CPU (its cores, AVX-512/VNNI/bf16), the library versions and the model, so it
is measured rather than guessed: each candidate generates batches of ``CALIBRATION_BATCH`` samples (the
throughput regime of sampling at scale) for a fraction of a second, and the fastest wins. The result is
cached (``gankit.cache``) under a key made of all of those, so every later run on this machine and model, at
any batch size, decides at once. The candidates are timed in ``ROUNDS`` interleaved rounds, the best of each
kept.

With ``--precision auto`` the candidates are (backend, precision) paths, lower precisions included
(bf16 only where the CPU has native bf16, ``gankit.cpu``), and a path must first keep quality: its
2,500 samples (seed 0) must score an MNIST-FID within ``gankit.tolerances.AUTO_FID_MARGIN`` of eager fp32's on the
same seeds, with every digit still at least half as common as under fp32 (``gankit.quality.metrics``); for
generators that do not make 28x28 greyscale images, the mean pixel difference from eager fp32 must
be within ``AUTO_MEAN_LEVELS`` instead.
"""

from __future__ import annotations

import json
import statistics
from typing import TYPE_CHECKING

from gankit.backends import REGISTRY, create_backend
from gankit.cache import cached, machine_key
from gankit.cpu import cpu_info
from gankit.errors import BackendError, GankitError
from gankit.labels import BALANCED
from gankit.noise import noise
from gankit.pixels import in_levels
from gankit.quality import HALF
from gankit.timing import settle, time_cpu
from gankit.tolerances import AUTO_COVERAGE_FRACTION, AUTO_FID_MARGIN, AUTO_MEAN_LEVELS

if TYPE_CHECKING:  # a choice already cached is read without torch
    import torch

    from gankit.model import Generator

CPU_CANDIDATES = ("eager", "onnxruntime", "openvino")
LOW_PRECISIONS = ("fp32", "bf16", "int8")  # tf32 is a GPU mode; fp16 has no fast CPU kernels
CALIBRATION_BATCH = 4096
QUALITY_SAMPLES = HALF  # the size the quality metrics score at
ROUNDS = 3  # interleaved timing rounds of every candidate; the best of each counts


def _candidates(precision: str) -> list[str]:
    """The CPU candidates installed here that run ``precision`` (from ``REGISTRY``: no backend is imported)."""
    return [
        name
        for name in CPU_CANDIDATES
        if name in REGISTRY and REGISTRY[name].missing() is None and precision in REGISTRY[name].precisions
    ]


def _best_rates(runs: dict[str, tuple[str, str]], generator: Generator) -> dict[str, float]:
    """label -> samples/s of each (backend, precision) in ``runs``: ``ROUNDS`` rounds, each timing every candidate
    once in turn, and the best of each kept, so a moment of load slows one round of all rather than one candidate."""
    rates: dict[str, float] = {}
    failed: set[str] = set()
    for _ in range(ROUNDS):
        for label, (name, precision) in runs.items():
            if label in failed:
                continue
            try:
                rates[label] = max(rates.get(label, 0.0), _rate(name, generator, precision))
            except GankitError:
                failed.add(label)
                rates.pop(label, None)
    return rates


def _rate(name: str, generator: Generator, precision: str) -> float:
    backend = create_backend(name, generator, precision=precision, device="cpu")
    z = noise(0, 0, CALIBRATION_BATCH, generator.config.latent_dim)
    classes = generator.config.num_classes  # a conditional generator is timed with balanced labels
    extra = {"labels": BALANCED.labels(0, 0, CALIBRATION_BATCH, classes)} if classes else {}
    settle()  # the previous candidate's spinning threads (onnxruntime) must not share the cores with this one
    times = time_cpu(lambda: backend.generate(z, output="uint8", **extra), min_seconds=0.2)
    return CALIBRATION_BATCH / statistics.median(times)


def choose_cpu_backend(generator: Generator, model_sha: str, precision: str) -> tuple[str, str]:
    """(backend name, why): the fastest CPU backend that has ``precision``, measured once and cached."""
    candidates = _candidates(precision)
    if not candidates:
        having = [name for name, entry in REGISTRY.items() if precision in entry.precisions]
        raise BackendError(
            f"no backend available on this CPU runs {precision} (backends with {precision}: {', '.join(having)}); "
            "pick another --precision"
        )
    if len(candidates) == 1:
        return candidates[0], f"the only CPU backend here with {precision}"
    key = json.dumps([*machine_key(), model_sha, precision, CALIBRATION_BATCH, candidates], sort_keys=True)

    def measure() -> dict[str, float]:
        return _best_rates({name: (name, precision) for name in candidates}, generator)

    rates = cached(key, measure)
    if not rates:
        raise BackendError(f"no CPU backend could run {precision} here: {', '.join(candidates)} all failed")
    best = max(rates, key=rates.get)
    shown = ", ".join(f"{name} {rate:,.0f}/s" for name, rate in sorted(rates.items(), key=lambda kv: -kv[1]))
    return best, f"fastest on this CPU at batch {CALIBRATION_BATCH}, measured once per machine and model: {shown}"


def _paths() -> list[tuple[str, str]]:
    """(backend, precision) pairs that can run on this CPU, eager fp32 (the reference) first."""
    bf16 = cpu_info().has_bf16
    paths = []
    for name in CPU_CANDIDATES:
        if name not in REGISTRY or REGISTRY[name].missing() is not None:
            continue
        for precision in LOW_PRECISIONS:
            if precision in REGISTRY[name].precisions and (precision != "bf16" or bf16):
                paths.append((name, precision))
    return sorted(paths, key=lambda path: path != ("eager", "fp32"))


def _seeded_images(name: str, generator: Generator, precision: str) -> torch.Tensor:
    backend = create_backend(name, generator, precision=precision, device="cpu")
    return backend.generate_range(0, 0, QUALITY_SAMPLES, batch_size=1000)


def _mnist_quality(images: torch.Tensor):
    from gankit.quality.metrics import score

    return score(images)[0]


def _reference_quality(reference: torch.Tensor):
    """Eager fp32's ``Quality``, made once for all candidates; None when it is not 28x28 greyscale."""
    return _mnist_quality(reference) if tuple(reference.shape[1:]) == (1, 28, 28) else None


def _quality(images: torch.Tensor, reference: torch.Tensor, reference_quality=None) -> dict[str, float]:
    """The quality of ``images`` beside eager fp32's ``reference`` (same seeds): MNIST-FID and coverage, or pixels.

    ``reference_quality``: the reference's ``gankit.quality.metrics.Quality`` when the caller has it already."""
    levels = in_levels(float((images - reference).abs().mean()))
    if tuple(images.shape[1:]) != (1, 28, 28):
        return {"mean_levels": levels}
    ours, theirs = _mnist_quality(images), reference_quality or _mnist_quality(reference)
    return {
        "mean_levels": levels,
        "fid": ours.fid,
        "fid_fp32": theirs.fid,
        "min_coverage_ratio": min(a / b for a, b in zip(ours.coverage, theirs.coverage) if b > 0),
    }


def quality_ok(measured: dict[str, float]) -> bool:
    """Within the module's quality tolerance (see the module docstring)."""
    if "fid" not in measured:
        return measured["mean_levels"] <= AUTO_MEAN_LEVELS
    return (
        measured["fid"] <= measured["fid_fp32"] * (1 + AUTO_FID_MARGIN)
        and measured["min_coverage_ratio"] >= AUTO_COVERAGE_FRACTION
    )


def _describe_quality(measured: dict[str, float]) -> str:
    if "fid" not in measured:
        return f"mean {measured['mean_levels']:.2f} grey levels from fp32"
    cost = 100 * (measured["fid"] / measured["fid_fp32"] - 1)
    return f"MNIST-FID {cost:+.1f}% vs fp32"


def choose_cpu_path(generator: Generator, model_sha: str) -> tuple[str, str, str]:
    """(backend, precision, why): the fastest CPU path whose quality cost is within tolerance, measured once, cached."""
    paths = _paths()
    key = json.dumps(["precision-auto", *machine_key(), model_sha, CALIBRATION_BATCH, paths], sort_keys=True)

    def measure() -> dict[str, dict[str, float]]:
        measured = {}
        reference = _seeded_images("eager", generator, "fp32")
        reference_quality = _reference_quality(reference)
        for name, precision in paths:
            try:
                images = (
                    reference if (name, precision) == ("eager", "fp32") else _seeded_images(name, generator, precision)
                )
                measured[f"{name}/{precision}"] = _quality(images, reference, reference_quality)
            except GankitError:
                continue
        rates = _best_rates({label: tuple(label.split("/")) for label in measured}, generator)
        return {label: {**entry, "rate": rates[label]} for label, entry in measured.items() if label in rates}

    measured = cached(key, measure)
    good = {label: entry for label, entry in measured.items() if quality_ok(entry)}
    if not good:
        return "eager", "fp32", "no path could be measured here; eager fp32, the reference"
    best = max(good, key=lambda label: good[label]["rate"])
    shown = "; ".join(
        f"{label} {entry['rate']:,.0f}/s, {_describe_quality(entry)}{'' if quality_ok(entry) else ' (over tolerance)'}"
        for label, entry in sorted(measured.items(), key=lambda kv: -kv[1]["rate"])
    )
    name, precision = best.split("/")
    why = (
        f"fastest path within the quality tolerance on this CPU at batch {CALIBRATION_BATCH}, measured once per "
        f"machine and model: {shown}"
    )
    return name, precision, why
