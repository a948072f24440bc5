"""Numerical parity of an exported model against a float64 reference of its source generator.

The reference is the source generator's forward (``gankit.model.Generator``) in float64 NumPy on the same z,
from its weights: a gankit checkpoint's are read without torch, so ``gankit validate`` never imports it.
Inputs: standard-normal z at batch 1, 2, 7, 64 and 1000, and extreme z at batch 64 (uniform in [-10, 10], and
every element at +-10). Each case draws its z from its own NumPy generator (``np.random.default_rng(base seed +
case number)``), the seed recorded in the report, so one failing case can be re-run alone (``gankit validate
MODEL --seed S``). A class-conditional generator's cases also draw labels, uniform in [0, K), from the same
generator right after z, and the reference gets the same ones. Per case the report gives max |Δ| and the
relative error max |Δ| / max |reference| (an element-wise ratio is meaningless where tanh crosses 0), the mean
|Δ|, the same in 0..255 pixel levels, and the tolerance it was held to.

Tolerances: ``gankit.tolerances`` (the table, and where each bound comes from). fp32 is held to
``FP32_HEADROOM`` times the error the source generator's own fp32 forward (the same NumPy forward in float32)
has against float64 on the same inputs, measured in the same check (the larger of its max over the
standard-normal cases and its max on the case itself), never below ``FP32_FLOOR``; the mean likewise. fp16 to
fixed bounds; int8 on the 99.9th percentile and the mean; uint8 output in levels. fp16 and int8 bounds are
scaled by the input's scale s = max(1, rms(z)) (pre-activations, and so their error, grow with z).

The report: ``ParityReport`` (its JSON is ``dataclasses.asdict`` of it), printed by ``format_report``, written,
named and cleaned up only by ``land_report`` (``report_path``: ``NAME.parity.json`` beside NAME.onnx, or
``.parity.failed.json`` and ExportError when the check failed), for every export format and ``gankit validate``.
"""

from __future__ import annotations

import os
import platform
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gankit.checkpoint import generator_arrays
from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.io import write_json
from gankit.labels import check_labels
from gankit.noise import check_seed
from gankit.pixels import LEVELS_PER_UNIT, to_uint8_numpy
from gankit.tolerances import (
    FP32_FLOOR,
    FP32_HEADROOM,
    PARITY_MAX,
    PARITY_MEAN,
    PARITY_QUANTILE,
    UINT8_MAX_LEVELS,
    UINT8_MEAN_LEVELS,
)
from gankit.version import __version__, package_version

if TYPE_CHECKING:
    from gankit.model import Generator
    from gankit.onnx.cache import Loaded

PARITY_BATCHES = (1, 2, 7, 64, 1000)
# How ``parity_inputs`` draws a case from its seed, recorded in every report: a seed replays the report's inputs
# under this rule (and the NumPy version its ``versions`` record).
PARITY_INPUTS = "numpy.random.default_rng(seed + case): standard_normal / uniform(-10, 10) / +-10 z, then labels"


@dataclass
class CaseResult:
    name: str
    batch: int
    seed: int
    max_abs: float
    max_rel: float
    mean_abs: float
    p999_abs: float
    max_pixel_levels: float
    mean_pixel_levels: float
    tolerance_max: float
    tolerance_mean: float
    passed: bool
    fp32_own_max_abs: float | None = None  # the source's own fp32 forward's error on the same z (the yardstick)
    fp32_own_mean_abs: float | None = None


@dataclass
class ParityReport:
    model: str
    precision: str
    output: str
    seed: int
    passed: bool
    tolerance_rule: str
    cases: list[CaseResult] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    vs_fp32: dict[str, float] = field(default_factory=dict)
    inputs: str = PARITY_INPUTS

    def failures(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.passed]


@dataclass
class ParityCase:
    name: str
    seed: int
    z: np.ndarray  # (batch, latent_dim) float32
    labels: np.ndarray | None = None  # (batch,) int64 for a class-conditional generator

    @property
    def extreme(self) -> bool:
        return not self.name.startswith("normal")


def parity_inputs(latent_dim: int, seed: int, num_classes: int = 0) -> list[ParityCase]:
    """The parity cases: case k draws its z (float32), then its labels ((batch,) int64 in [0, num_classes) when
    num_classes > 0), from its own generator ``np.random.default_rng(seed + k)``."""

    def case(name: str, k: int, draw) -> ParityCase:
        source = np.random.default_rng(seed + k)
        z = draw(source).astype(np.float32)
        labels = source.integers(0, num_classes, z.shape[0], dtype=np.int64) if num_classes else None
        return ParityCase(name, seed + k, z, labels)

    cases = [
        case(f"normal b={b}", k, lambda source, b=b: source.standard_normal((b, latent_dim)))
        for k, b in enumerate(PARITY_BATCHES)
    ]
    k = len(cases)
    cases.append(case("uniform ±10 b=64", k, lambda source: source.uniform(-10, 10, (64, latent_dim))))
    cases.append(case("all ±10 b=64", k + 1, lambda source: (source.integers(0, 2, (64, latent_dim)) * 2 - 1) * 10))
    return cases


@dataclass(frozen=True)
class Reference:
    """The source generator as parity holds an export to it: its config and weights (by state-dict name), run by
    ``images`` as ``gankit.model.Generator.forward`` runs, in NumPy."""

    config: GeneratorConfig
    weights: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: Generator | Loaded) -> Reference:
        """A Generator's (its state dict) or a loaded checkpoint's (a gankit file's arrays, read without torch);
        CheckpointError for an ONNX graph, which has no weights."""
        loaded = hasattr(model, "weight_arrays")  # a Loaded: a gankit file's arrays without torch
        arrays = model.weight_arrays() if loaded else generator_arrays(model)
        return cls(model.config, arrays)

    def images(self, z: np.ndarray, labels: np.ndarray | None = None, dtype=np.float64) -> np.ndarray:
        """The images of z [and labels], computed in ``dtype`` (float64: the reference; float32: the yardstick),
        as float64 (B, C, H, W)."""
        config, weights = self.config, {name: w.astype(dtype) for name, w in self.weights.items()}
        check_labels(labels, z.shape[0], config.num_classes, "the parity reference")
        x = z.astype(dtype) @ weights["layers.0.weight"].T + weights["layers.0.bias"]
        if config.num_classes:
            x = x + weights["class_bias"][labels]
        for index, slope in enumerate(config.hidden_slopes, start=1):
            x = np.where(x >= 0, x, x * dtype(slope))
            x = x @ weights[f"layers.{index}.weight"].T + weights[f"layers.{index}.bias"]
        x = np.tanh(x if config.output_activation == "tanh" else x / 2)  # 2 * sigmoid(x) - 1 = tanh(x / 2)
        return x.astype(np.float64).reshape(z.shape[0], *config.image_shape)


def reference_images(reference: Reference, z: np.ndarray, output: str, labels: np.ndarray | None = None) -> np.ndarray:
    """float64 reference on ``z`` [and labels]; uint8-range (0..255 floats) when output='uint8'."""
    images = reference.images(z, labels)
    return to_uint8_numpy(images) if output == "uint8" else images


def _fixed_tolerance(precision: str, output: str, case: ParityCase) -> tuple[float, float]:
    if output == "uint8" and precision == "fp32":
        return UINT8_MAX_LEVELS, UINT8_MEAN_LEVELS
    scale = max(1.0, float(np.sqrt(np.square(case.z, dtype=np.float64).mean())))
    tol_max, tol_mean = PARITY_MAX[precision] * scale, PARITY_MEAN[precision] * scale
    if output == "uint8":  # in pixel levels, with at least the rounding's own level of slack
        return max(UINT8_MAX_LEVELS, tol_max * LEVELS_PER_UNIT), max(UINT8_MEAN_LEVELS, tol_mean * LEVELS_PER_UNIT)
    return tol_max, tol_mean


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    reference: Reference,
    precision: str,
    output: str,
    model_name: str,
    seed: int | None = None,
) -> ParityReport:
    """Compare ``run`` (z float32 [, labels int64 for a class-conditional generator] -> images) with the float64
    reference on fresh parity inputs.

    ``seed``: the base seed of the inputs (fresh and random when None; recorded in the report either way).
    """
    if precision != "fp32" and precision not in PARITY_MAX:
        raise ExportError(f"no parity tolerance for precision {precision!r}")
    seed = secrets.randbelow(2**31 - 1) if seed is None else check_seed(seed)
    config = reference.config
    cases = parity_inputs(config.latent_dim, seed, config.num_classes)
    expected = [reference_images(reference, case.z, output, case.labels) for case in cases]
    own_error: list[tuple[float, float]] = []
    if precision == "fp32" and output == "float":
        for case, images in zip(cases, expected):
            error = np.abs(reference.images(case.z, case.labels, np.float32) - images)
            own_error.append((float(error.max()), float(error.mean())))
        normal = [e for case, e in zip(cases, own_error) if not case.extreme]
        normal_max, normal_mean = max(e[0] for e in normal), max(e[1] for e in normal)
    rule = (
        f"fp32: {FP32_HEADROOM:g} x max(the source's own fp32 |Δ| on the normal cases, on the case), "
        f">= {FP32_FLOOR:.2g}"
        if own_error
        else f"{precision} {output}: {'99.9th percentile' if precision == 'int8' else 'max'} and mean |Δ| within "
        "fixed bounds x max(1, rms(z)) (reasons in gankit.onnx.parity)"
    )
    report = ParityReport(model_name, precision, output, seed, passed=True, tolerance_rule=rule, versions=versions())
    unit = LEVELS_PER_UNIT if output == "uint8" else 1.0
    for index, (case, images) in enumerate(zip(cases, expected)):
        given = (case.z,) if case.labels is None else (case.z, case.labels)
        actual = run(*given).astype(np.float64).reshape(images.shape)
        diff = np.abs(actual - images)
        max_abs, mean_abs, p999 = float(diff.max()), float(diff.mean()), float(np.quantile(diff, PARITY_QUANTILE))
        held = p999 if precision == "int8" else max_abs  # see the module docstring
        own_max = own_mean = None
        if own_error:
            own_max, own_mean = own_error[index]
            tol_max = max(FP32_FLOOR, FP32_HEADROOM * max(normal_max, own_max))
            tol_mean = max(FP32_FLOOR, FP32_HEADROOM * max(normal_mean, own_mean))
        else:
            tol_max, tol_mean = _fixed_tolerance(precision, output, case)
        report.cases.append(
            CaseResult(
                name=case.name,
                batch=case.z.shape[0],
                seed=case.seed,
                max_abs=max_abs,
                max_rel=max_abs / max(float(np.abs(images).max()), 1e-12),
                mean_abs=mean_abs,
                p999_abs=p999,
                max_pixel_levels=max_abs * LEVELS_PER_UNIT / unit,
                mean_pixel_levels=mean_abs * LEVELS_PER_UNIT / unit,
                tolerance_max=tol_max,
                tolerance_mean=tol_mean,
                passed=bool(held <= tol_max and mean_abs <= tol_mean and np.isfinite(actual).all()),
                fp32_own_max_abs=own_max,
                fp32_own_mean_abs=own_mean,
            )
        )
    report.passed = not report.failures()
    return report


def versions() -> dict[str, str]:
    """The versions a report depends on, read from package metadata (importing torch to ask would cost seconds)."""
    found = {name: package_version(name) for name in ("numpy", "torch", "onnx", "onnxruntime")}
    return {"gankit": __version__, **found, "python": platform.python_version()}


def format_report(report: ParityReport) -> str:
    unit = "levels" if report.output == "uint8" else "abs"
    lines = [
        f"parity of {report.model} ({report.precision}, {report.output} output) vs float64, seed "
        f"{report.seed}; tolerance ({unit}): {report.tolerance_rule}",
        f"  {'case':<18} {'seed':>10} {'max |Δ|':>10} {'max rel':>10} {'mean |Δ|':>10} {'px max':>8} {'px mean':>8} "
        f"{'tol max':>9}  result",
    ]
    for c in report.cases:
        lines.append(
            f"  {c.name:<18} {c.seed:>10} {c.max_abs:>10.2e} {c.max_rel:>10.2e} {c.mean_abs:>10.2e} "
            f"{c.max_pixel_levels:>8.2f} {c.mean_pixel_levels:>8.3f} {c.tolerance_max:>9.2g}  "
            f"{'ok' if c.passed else 'FAIL'}"
        )
    for key, value in report.vs_fp32.items():
        lines.append(f"  vs the fp32 export: {key} = {value:.4g}")
    lines.append(f"  => {'PASSED' if report.passed else 'FAILED'}")
    return "\n".join(lines)


def report_path(artifact: Path, failed: bool = False) -> Path:
    """Where the parity report of ``artifact`` lives: ``NAME.parity.json`` beside an ONNX file NAME.onnx,
    ``NAME.EXT.parity.json`` beside a compiled one (NAME.pt2, NAME.pte), so the exports of one generator to every
    target under one name keep a report each; ``.parity.failed.json`` for a check that failed."""
    name = artifact.stem if artifact.suffix == ".onnx" else artifact.name
    return artifact.with_name(name + (".parity.failed.json" if failed else ".parity.json"))


def land_report(report: ParityReport, artifact: Path, place: Callable[[], None] | None = None) -> Path:
    """The one writer of parity reports (every format, ``gankit validate``): ``report`` of ``artifact`` lands at
    ``report_path(artifact, failed=not report.passed)``.

    Failed: ExportError naming ``artifact`` with the worst case; ``place`` is not called, and when the artifact
    checked is the one in place (``place`` is None: ``gankit validate``) its passing report from an earlier check
    is removed, since it no longer describes the file.
    Passed: ``place()`` lands the artifact itself (a file checked under a temporary name; None when it is already
    in place), and only then is a failed report of an earlier check of ``artifact`` removed; when ``place`` fails
    (or is interrupted) the passing report goes too, so no report describes a file that did not land. Returns the
    path of the passing report."""
    write_json(report_path(artifact, failed=not report.passed), asdict(report))
    if not report.passed and place is None:
        report_path(artifact).unlink(missing_ok=True)
    raise_if_failed(report, str(artifact))
    if place is not None:
        try:
            place()
        except BaseException:
            report_path(artifact).unlink(missing_ok=True)
            raise
    report_path(artifact, failed=True).unlink(missing_ok=True)
    return report_path(artifact)


def raise_if_failed(report: ParityReport, where: str) -> None:
    if report.passed:
        return
    worst = max(report.failures(), key=lambda c: c.max_abs / max(c.tolerance_max, 1e-300))
    raise ExportError(
        f"{where}: parity check FAILED for {report.precision}: case '{worst.name}' (seed {worst.seed}) max |Δ| "
        f"{worst.max_abs:.3g}, mean |Δ| {worst.mean_abs:.3g} vs tolerance max {worst.tolerance_max:.3g}, mean "
        f"{worst.tolerance_mean:.3g}; reproduce with: gankit validate MODEL --seed {report.seed}"
    )


@dataclass
class ExportResult:
    path: Path
    report_path: Path
    report: ParityReport


def land_checked(
    out: Path,
    build: Callable[[Path], None],
    check: Callable[[Path, str], ParityReport],
) -> ExportResult:
    """The parity gate of every exported file. ``build(tmp)`` writes it to a temporary file beside ``out`` (same
    suffix); ``check(tmp, out.name)`` returns its parity report, which lands beside ``out``
    (``gankit.onnx.parity.land_report``). The file lands at ``out`` only when it passed; else it is deleted and
    ExportError names ``out`` (an earlier file at ``out`` and its report stay as they were)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"cannot write to {out.parent} ({exc.strerror or exc}); choose a writable --out") from exc
    tmp = Path(tmp_name)

    def place() -> None:
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)

    try:
        build(tmp)
        report = check(tmp, out.name)
        report_path = land_report(report, out, place)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, report_path, report)
