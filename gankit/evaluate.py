"""``gankit eval``: generate samples through any backend and score them against the real digits.

The scores are ``gankit.quality.metrics``' (MNIST-FID, coverage, precision/recall); the real-vs-real
floor is the same distance between two disjoint halves of the bundled digits. The classifier reads 1x28x28
images, so only generators of that shape are scored (any file ``open_backend`` takes: a gankit checkpoint, a
state dict from elsewhere, an ONNX file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gankit.backends.resolve import open_backend
from gankit.checkpoint import PRETRAINED
from gankit.errors import ConfigError
from gankit.imports import ImportOptions
from gankit.io import write_json
from gankit.quality.classifier import load_classifier
from gankit.quality.metrics import HALF, Quality, features, quality, real_halves


@dataclass
class EvalReport:
    model: str
    backend: str
    samples: int
    seed: int
    classifier_accuracy: float
    floor: Quality
    generated: Quality
    notes: list[str] = field(default_factory=list)

    @property
    def fid_ratio(self) -> float:
        return self.generated.fid / self.floor.fid


DIGIT_SHAPE = (1, 28, 28)


def evaluate(
    model: str | Path | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    seed: int = 0,
    n: int = HALF,
    import_options: ImportOptions | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> EvalReport:
    """Generate ``n`` samples (seed, indices 0..n-1) through ``backend`` and score them against real digits.

    ``import_options``: what a foreign file cannot say; ``log``: gets the line saying a file was converted."""
    engine = open_backend(model, backend, precision, log=log, import_options=import_options)
    if tuple(engine.config.image_shape) != DIGIT_SHAPE:
        shape = "x".join(map(str, engine.config.image_shape))
        raise ConfigError(
            f"gankit eval scores 1x28x28 digit images (its classifier's input); this generator makes {shape} images"
        )
    _, accuracy = load_classifier()
    first, second = real_halves()
    real = features(first)
    floor = quality(real, features(second))
    images = engine.generate_range(seed, 0, n, batch_size=1000)
    report = EvalReport(
        str(model or PRETRAINED), engine.describe(), n, seed, accuracy, floor, quality(real, features(images))
    )
    if n != HALF:
        report.notes.append(
            f"{n} generated samples vs {HALF} real: FID is biased by sample size; compare like with like"
        )
    return report


def format_report(report: EvalReport) -> str:
    def row(name: str, q: Quality) -> str:
        return f"  {name:<22} {q.fid:>10.3f} {100 * q.min_share:>8.1f}% {q.precision:>10.3f} {q.recall:>8.3f}"

    lines = [
        f"quality of {report.model} via {report.backend}: {report.samples} samples of seed {report.seed}",
        f"  feature extractor: gankit digit classifier, held-out accuracy {100 * report.classifier_accuracy:.1f}%",
        f"  {'':<22} {'MNIST-FID':>10} {'min digit':>9} {'precision':>10} {'recall':>8}",
        row("real vs real (floor)", report.floor),
        row("generated", report.generated),
        f"  FID / floor = {report.fid_ratio:.2f}; digit shares: "
        + " ".join(f"{d}:{100 * s:.1f}%" for d, s in enumerate(report.generated.coverage)),
        *[f"  note: {note}" for note in report.notes],
    ]
    return "\n".join(lines)


def write_report(report: EvalReport, path: Path) -> Path:
    return write_json(path, {**asdict(report), "fid_ratio": report.fid_ratio})
