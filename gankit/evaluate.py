"""``gankit eval``: generate samples through any backend and score them against the real digits.

The scores are ``gankit.quality.metrics``' (MNIST-FID, coverage, precision/recall); the real-vs-real
floor is the same distance between two disjoint halves of the bundled digits. The classifier reads 1x28x28
images, so only generators of that shape are scored (any file ``open_backend`` takes: a gankit checkpoint, a
state dict from elsewhere, an ONNX file).

Beside them, for every generator:

- **class-mix FID** (``class_mix_fid``): the FID that real digits drawn in the generated digit shares score;
  the part of the generator's FID that its digit mix alone explains (a perfect generator with that mix).
- **copying check** (``copying_share``, per-digit thresholds): the share of samples closer (L2 in pixels) to
  their nearest training digit than 5% of real digits come to theirs (leave-one-out over the training digits,
  per digit as the classifier reads each sample). The training digits are the bundled 5,000 (``gankit train``'s
  default data): a generator that does not copy scores about 5%, one that reproduces training digits far more.
  For a generator trained on other data it only compares with digits it did not see.

A class-conditional generator (``num_classes`` = K > 0) is sampled with balanced labels (``gankit.labels``:
sample i asks for digit (i + seed) mod K), so its FID is that of balanced labels, and the report adds its
**label fidelity**: for each asked label, the share of its samples the digit classifier reads as that label,
and their mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gankit.backends.resolve import open_backend
from gankit.checkpoint import model_path
from gankit.data import load_bundled
from gankit.errors import ConfigError, SamplingError
from gankit.io import write_json
from gankit.labels import BALANCED
from gankit.limits import require_memory
from gankit.models import ImportOptions
from gankit.quality.classifier import load_classifier
from gankit.quality.metrics import (
    HALF,
    CopyCheck,
    Quality,
    class_mix_fid,
    copying_share,
    features,
    label_fidelity,
    quality,
    real_features,
    real_halves,
    score,
)


@dataclass
class EvalReport:
    """``label_fidelity``: per asked label (0..K-1), the share of its samples read as that label (None: never
    asked), with ``label_fidelity_mean`` their mean; both None for an unconditional generator (``num_classes`` 0).
    ``labels``: the label spec the samples were made with (None when unconditional)."""

    model: str
    backend: str
    samples: int
    seed: int
    classifier_accuracy: float
    floor: Quality
    generated: Quality
    class_mix_fid: float
    copying: CopyCheck
    num_classes: int = 0
    labels: dict[str, object] | None = None
    label_fidelity: list[float | None] | None = None
    label_fidelity_mean: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fid_ratio(self) -> float:
        return self.generated.fid / self.floor.fid


DIGIT_SHAPE = (1, 28, 28)
MIN_SAMPLES = 20  # the fewest generated samples eval scores: a covariance estimate needs several
# What eval holds a sample: its float32 image and the copying check's flat copy, its float64 features and
# their centred copy in the covariance.
EVAL_BYTES_A_SAMPLE = 2 * 4 * 784 + 2 * 8 * 128


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
    if n < MIN_SAMPLES:
        raise SamplingError(f"--n must be at least {MIN_SAMPLES} for a covariance estimate, got {n}")
    require_memory(f"eval --n {n:,}", n * EVAL_BYTES_A_SAMPLE)  # before generating any; distances go in blocks
    engine = open_backend(model, backend, precision, log=log, import_options=import_options)
    if tuple(engine.config.image_shape) != DIGIT_SHAPE:
        shape = "x".join(map(str, engine.config.image_shape))
        raise ConfigError(
            f"gankit eval scores 1x28x28 digit images (its classifier's input); this generator makes {shape} images"
        )
    _, accuracy = load_classifier()
    real, other = real_features(), features(real_halves()[1])
    floor = quality(real, other)
    classes = engine.num_classes
    labels = BALANCED if classes else None
    images = engine.generate_range(seed, 0, n, batch_size=1000, labels=labels)
    scores, generated = score(images)
    training, training_labels = load_bundled()
    report = EvalReport(
        str(model_path(model)),
        engine.describe(),
        n,
        seed,
        accuracy,
        floor,
        scores,
        class_mix_fid(scores.coverage, seed, halves=(real[0], other[0])),
        copying_share(images, training, labels=(training_labels, None), predicted=generated[1]),
        classes,
    )
    if labels is not None:
        per_label = label_fidelity(generated[1], labels.labels(seed, 0, n, classes).numpy(), classes)
        asked = [share for share in per_label if share == share]  # NaN: a label no sample asked for
        report.labels = labels.to_json()
        report.label_fidelity = [share if share == share else None for share in per_label]
        report.label_fidelity_mean = sum(asked) / len(asked)
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
        f"  class-mix FID {report.class_mix_fid:.3f}: real digits in these digit shares score this (the part of "
        "the FID the digit mix alone explains)",
        f"  copying check: {100 * report.copying.share:.1f}% of samples are closer to a training digit than "
        f"{100 * report.copying.expected:.0f}% of real digits are to theirs (per digit; about "
        f"{100 * report.copying.expected:.0f}% = no copying; median distance {report.copying.generated_median:.2f} "
        f"vs real {report.copying.held_out_median:.2f})",
    ]
    if report.label_fidelity is not None:
        lines.append(
            f"  label fidelity (balanced labels: sample i asks for (i + seed) mod {report.num_classes}): "
            f"mean {100 * report.label_fidelity_mean:.1f}%; "
            + " ".join(f"{c}:{'-' if f is None else f'{100 * f:.1f}%'}" for c, f in enumerate(report.label_fidelity))
        )
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def report_json(report: EvalReport) -> dict[str, object]:
    """The report as JSON-ready data (``gankit eval --json`` prints it, ``--out`` writes it)."""
    return {**asdict(report), "fid_ratio": report.fid_ratio}


def write_report(report: EvalReport, path: Path) -> Path:
    return write_json(path, report_json(report))
