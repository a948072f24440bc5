"""Numerical parity of an exported model against a float64 PyTorch reference.

The reference is the source generator in float64 on the same z. Inputs: fresh standard-normal z at
batch 1, 2, 7, 64 and 1000, and extreme z at batch 64 (uniform in [-10, 10], and every element at
+-10). Per batch the report gives max |Δ| and the relative error max |Δ| / max |reference| (an
element-wise ratio is meaningless where tanh crosses 0), the mean |Δ|, and the same in 0..255 pixel
levels. A model passes when every batch's max |Δ| and mean |Δ| are within its precision's tolerance, scaled by
the input's scale s = max(1, rms(z)): the layers are linear and LeakyReLU is positively homogeneous, so
pre-activations grow with z and floating-point error, being relative, grows with them (PyTorch's own
fp32 forward is 3e-5 off the float64 one at |z| = 10). For standard-normal z, s = 1.

Tolerances (images are in [-1, 1]; one pixel level is 1/127.5 = 7.8e-3):
- fp32: max |Δ| <= 1e-5 (the issue's bound; measured ~3e-6: summation order only).
- fp16: max |Δ| <= 1e-2, mean <= 1e-3. fp16 has a unit roundoff of 4.9e-4; three layers of
  dot products of length <= 512 accumulate a few of those, and tanh's slope is <= 1: 1e-2 is 20
  roundoffs, ~1.3 pixel levels, and below it no image a person can tell apart.
- int8 (onnxruntime, any ``gankit.quantize`` option): max |Δ| <= 1.0, mean <= 0.02. Activations are
  quantized to 256 levels of a range (each batch's own when dynamic, a calibrated one when static);
  an outlier sample near tanh's steep middle can move a pixel far (measured max ~0.45 dynamic, ~0.67
  static on the bundled generator), while the mean stays near 1 pixel level (0.005-0.008). The mean
  bound is what keeps int8 honest; the max bound (half the output range) only catches broken models.
- uint8 output: the exported graph rounds in the model's precision; it may differ from the rounded
  float64 reference by 1 level where the value sits on a .5 boundary, so the bound is max 1 level
  (fp32), and the precision's own bound, in levels, otherwise.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gankit.checkpoint import atomic_path
from gankit.errors import ExportError
from gankit.model import Generator
from gankit.version import __version__

PARITY_BATCHES = (1, 2, 7, 64, 1000)
TOLERANCE_MAX = {"fp32": 1e-5, "fp16": 1e-2, "int8": 1.0}
TOLERANCE_MEAN = {"fp32": 1e-5, "fp16": 1e-3, "int8": 0.02}
PIXEL = 1 / 127.5


@dataclass
class CaseResult:
    name: str
    batch: int
    max_abs: float
    max_rel: float
    mean_abs: float
    max_pixel_levels: float
    mean_pixel_levels: float
    tolerance_max: float
    tolerance_mean: float
    passed: bool


@dataclass
class ParityReport:
    model: str
    precision: str
    output: str
    tolerance_max_abs: float
    tolerance_mean_abs: float
    passed: bool
    cases: list[CaseResult] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    vs_fp32: dict[str, float] = field(default_factory=dict)

    def failures(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.passed]


def parity_inputs(latent_dim: int, seed: int) -> list[tuple[str, torch.Tensor]]:
    """Fresh random z at each parity batch, plus two extreme sets (|z| up to 10), float32."""
    rng = torch.Generator().manual_seed(seed)
    cases = [(f"normal b={b}", torch.randn(b, latent_dim, generator=rng)) for b in PARITY_BATCHES]
    cases.append(("uniform ±10 b=64", torch.rand(64, latent_dim, generator=rng) * 20 - 10))
    signs = torch.randint(0, 2, (64, latent_dim), generator=rng) * 2 - 1
    cases.append(("all ±10 b=64", signs.float() * 10))
    return cases


def reference_images(generator: Generator, z: torch.Tensor, output: str) -> np.ndarray:
    """float64 reference of ``generator`` on ``z``; uint8-range (0..255 floats) when output='uint8'."""
    reference = Generator(generator.config).double()
    reference.load_state_dict({k: v.double() for k, v in generator.state_dict().items()})
    with torch.no_grad():
        images = reference(z.double()).numpy()
    if output == "uint8":
        return np.clip(np.round((images + 1.0) * 127.5), 0, 255)
    return images


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    generator: Generator,
    precision: str,
    output: str,
    model_name: str,
    seed: int | None = None,
) -> ParityReport:
    """Compare ``run`` (z float32 -> images) with the float64 reference on the parity inputs."""
    seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed
    tol_max, tol_mean = TOLERANCE_MAX[precision], TOLERANCE_MEAN[precision]
    scale = 1.0
    if output == "uint8":
        scale = 127.5  # compare in pixel levels: at least 1 level of rounding slack
        tol_max, tol_mean = max(1.0, tol_max * scale), max(0.5, tol_mean * scale)
    report = ParityReport(model_name, precision, output, tol_max, tol_mean, passed=True, versions=versions())
    for name, z in parity_inputs(generator.config.latent_dim, seed):
        expected = reference_images(generator, z, output)
        actual = run(z.numpy()).astype(np.float64).reshape(expected.shape)
        diff = np.abs(actual - expected)
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
        input_scale = max(1.0, float(z.pow(2).mean().sqrt()))
        case_max, case_mean = tol_max * input_scale, tol_mean * input_scale
        case = CaseResult(
            name=name,
            batch=z.shape[0],
            max_abs=max_abs,
            max_rel=max_abs / max(float(np.abs(expected).max()), 1e-12),
            mean_abs=mean_abs,
            max_pixel_levels=max_abs / PIXEL / scale,
            mean_pixel_levels=mean_abs / PIXEL / scale,
            tolerance_max=case_max,
            tolerance_mean=case_mean,
            passed=bool(max_abs <= case_max and mean_abs <= case_mean and np.isfinite(actual).all()),
        )
        report.cases.append(case)
    report.passed = not report.failures()
    return report


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "gankit": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def format_report(report: ParityReport) -> str:
    unit = "levels" if report.output == "uint8" else "abs"
    lines = [
        f"parity of {report.model} ({report.precision}, {report.output} output) vs float64 PyTorch; "
        f"tolerance max {report.tolerance_max_abs:g}, mean {report.tolerance_mean_abs:g} ({unit})",
        f"  {'case':<18} {'max |Δ|':>10} {'max rel':>10} {'mean |Δ|':>10} {'px max':>8} {'px mean':>8} "
        f"{'tol max':>9}  result",
    ]
    for c in report.cases:
        lines.append(
            f"  {c.name:<18} {c.max_abs:>10.2e} {c.max_rel:>10.2e} {c.mean_abs:>10.2e} "
            f"{c.max_pixel_levels:>8.2f} {c.mean_pixel_levels:>8.3f} {c.tolerance_max:>9.2g}  "
            f"{'ok' if c.passed else 'FAIL'}"
        )
    for key, value in report.vs_fp32.items():
        lines.append(f"  vs the fp32 export: {key} = {value:.4g}")
    lines.append(f"  => {'PASSED' if report.passed else 'FAILED'}")
    return "\n".join(lines)


def write_report(report: ParityReport, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asdict(report), indent=2))
    return path


def raise_if_failed(report: ParityReport, where: str) -> None:
    if report.passed:
        return
    worst = max(report.failures(), key=lambda c: c.max_abs)
    raise ExportError(
        f"{where}: parity check FAILED for {report.precision}: case '{worst.name}' max |Δ| {worst.max_abs:.3g}, "
        f"mean |Δ| {worst.mean_abs:.3g} vs tolerance max {worst.tolerance_max:.3g}, mean {worst.tolerance_mean:.3g}"
    )
