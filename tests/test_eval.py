"""Quality metrics: ~0 for identical sets, larger when a digit is missing or noise is added; CLI on both formats."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.backends.base import Backend
from gankit.config import GeneratorConfig
from gankit.data import load_bundled
from gankit.evaluate import format_report, report_json
from gankit.model import Generator
from gankit.quality.classifier import SHIPPED, accuracy, load_classifier, split_bundled
from gankit.quality.metrics import class_mix_fid, features, frechet_distance, precision_recall, quality, real_halves

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def halves():
    first, second = real_halves()
    return features(first), features(second), first, second


def test_shipped_classifier_is_accurate_on_held_out_digits() -> None:
    model, stated = load_classifier(SHIPPED)
    _, _, test_x, test_y = split_bundled()
    measured = accuracy(model, test_x, test_y)
    assert measured == pytest.approx(stated, abs=1e-4) and measured >= 0.95


def test_frechet_distance_is_zero_for_identical_sets_and_exact_for_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    assert abs(frechet_distance(a, a)) < 1e-8
    shifted = a + 3.0  # mean shift of 3 in 8 dims, same covariance: distance 8 * 9
    assert frechet_distance(a, shifted) == pytest.approx(72.0, rel=1e-6)
    scaled = a * 2.0  # cov 4C: tr(C + 4C - 2 sqrt(4C^2)) = tr C, plus |mu - 2 mu|^2
    expected = np.trace(np.cov(a, rowvar=False)) + (a.mean(0) ** 2).sum()
    assert frechet_distance(a, scaled) == pytest.approx(expected, rel=1e-6)


def test_floor_is_small_and_identical_sets_score_zero(halves) -> None:
    real, other, _, _ = halves
    assert abs(quality(real, real).fid) < 1e-4  # float64 round-off on features of magnitude ~10
    floor = quality(real, other)
    assert 0 < floor.fid and min(floor.coverage) > 0.08 and floor.precision > 0.7 and floor.recall > 0.7


def test_a_missing_digit_is_seen(halves) -> None:
    real, other, _, second = halves
    _, labels = features(second)
    keep = labels != 3
    without_three = (other[0][keep], other[1][keep])
    q, floor = quality(real, without_three), quality(real, other)
    assert q.coverage[3] == 0.0 and q.fid > 2 * floor.fid
    assert q.recall < floor.recall


def test_noise_makes_it_worse(halves) -> None:
    real, other, _, second = halves
    noisy = torch.clamp(second.float() / 127.5 - 1 + 0.6 * torch.randn(second.shape), -1, 1)
    q, floor = quality(real, features(noisy)), quality(real, other)
    assert q.fid > 3 * floor.fid and q.precision < floor.precision


def test_precision_recall_bounds() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 4))
    p, r = precision_recall(a, a)
    assert p == 1.0 and r == 1.0
    p, r = precision_recall(a, a + 50.0)
    assert p == 0.0 and r == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["safetensors", "onnx"])
def test_cli_eval_on_checkpoint_and_onnx(tmp_path: Path, bundled_grid_cache: Path, kind: str) -> None:
    model = ROOT / ("exported/generator.onnx" if kind == "onnx" else "gankit/pretrained/generator.safetensors")
    out = tmp_path / "q.json"
    cache = shutil.copytree(bundled_grid_cache / "cache", tmp_path / "cache")  # --backend auto's choice, measured
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "eval", str(model), "--n", "500", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "GANKIT_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "real vs real (floor)" in result.stdout and "MNIST-FID" in result.stdout
    assert "class-mix FID" in result.stdout and "copying check" in result.stdout
    assert "label fidelity" not in result.stdout  # an unconditional generator asks for no labels
    report = json.loads(out.read_text())
    assert report["generated"]["fid"] > report["floor"]["fid"] > 0
    assert 0 < report["class_mix_fid"] < report["generated"]["fid"]
    assert 0 <= report["copying"]["share"] <= 1 and len(report["copying"]["thresholds"]) == 10
    assert report["num_classes"] == 0 and report["label_fidelity"] is None
    # --backend auto: an ONNX file runs on onnxruntime; a checkpoint on the backend measured fastest here, as logged
    chosen = re.search(r"backend auto -> (\w+)", result.stderr).group(1)
    assert chosen == "onnxruntime" if kind == "onnx" else chosen in ("eager", "onnxruntime", "openvino")
    assert report["backend"].startswith(chosen + " ")


class RealDigits(Backend):
    """A conditional "generator" that answers label c with bundled training digits of digit c, except label 3,
    which it answers with 5s; it keeps every image and label it returned."""

    name = "real-digits"

    def __init__(self) -> None:
        self.config, self.device, self.precision = GeneratorConfig(num_classes=10), torch.device("cpu"), "fp32"
        images, labels = load_bundled()
        self.pools = {c: images[labels == (5 if c == 3 else c)] for c in range(10)}
        self.returned: list[tuple[torch.Tensor, torch.Tensor]] = []

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_labels(labels, z.shape[0])
        start = sum(len(batch) for batch, _ in self.returned)
        images = torch.stack([self.pools[c][(start + i) % 300] for i, c in enumerate(labels.tolist())])
        self.returned.append((images, labels))
        return images.float() / 127.5 - 1


def test_eval_of_a_conditional_generator_reports_label_fidelity_and_copying(monkeypatch) -> None:
    import gankit.evaluate as evaluate_module

    fake = RealDigits()
    monkeypatch.setattr(evaluate_module, "open_backend", lambda *args, **kwargs: fake)
    report = evaluate_module.evaluate(seed=4, n=500)
    images = torch.cat([batch for batch, _ in fake.returned])
    asked = torch.cat([labels for _, labels in fake.returned]).numpy()
    assert asked.tolist() == [(i + 4) % 10 for i in range(500)]  # balanced labels
    _, read = features(images)
    expected = [float((read[asked == c] == c).mean()) for c in range(10)]
    assert report.label_fidelity == pytest.approx(expected, abs=1e-12)
    assert report.label_fidelity[3] < 0.05 and min(report.label_fidelity[c] for c in range(10) if c != 3) > 0.9
    assert report.label_fidelity_mean == pytest.approx(sum(expected) / 10, abs=1e-12)
    assert report.labels == {"kind": "balanced", "digit": None} and report.num_classes == 10
    assert report.copying.share > 0.9 and report.copying.expected == 0.05  # training digits, returned as they are
    assert report.class_mix_fid == pytest.approx(
        class_mix_fid(
            report.generated.coverage, 4, halves=(features(real_halves()[0])[0], features(real_halves()[1])[0])
        )
    )
    text = format_report(report)
    assert "label fidelity" in text and f"mean {100 * report.label_fidelity_mean:.1f}%" in text and "3:" in text
    data = report_json(report)
    assert data["label_fidelity"] == report.label_fidelity and data["copying"]["share"] == report.copying.share


def test_one_scorer_for_every_caller(monkeypatch):
    """eval, the training monitor, auto-select and the benchmarks score through gankit.quality.metrics.score: a
    change there reaches them all (no copy keeps its own real features)."""
    import gankit.backends.autoselect as autoselect
    import gankit.training.monitor as monitor
    from gankit.quality import metrics

    calls = []
    marker = metrics.Quality(fid=123.0, coverage=[0.1] * 10, precision=0.5, recall=0.5)

    def fake_score(images):
        calls.append(len(images))
        return marker, (np.zeros((len(images), 128)), np.zeros(len(images), dtype=np.int64))

    monkeypatch.setattr(metrics, "score", fake_score)
    monkeypatch.setattr(monitor, "score", fake_score)
    assert autoselect._mnist_quality(torch.zeros(4, 1, 28, 28)) is marker
    quality_monitor = monitor.QualityMonitor(Generator().config, 8, torch.device("cpu"))
    assert quality_monitor.measure(Generator().eval(), 1).fid == 123.0
    assert calls == [4, 8]


def test_precision_recall_in_blocks_equals_the_whole_matrix(monkeypatch) -> None:
    """Issue 22, 5: the full (n, n) distance matrices needed 8 TB at --n 1,000,000. In blocks of a few rows the
    scores are the same as from the whole matrices (seed 0, 300 fake and 200 real features)."""
    import gankit.quality.metrics as metrics

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(200, 16)), rng.normal(0.3, 1.1, size=(300, 16))
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    real_radii = torch.cdist(r, r).kthvalue(4, dim=1).values
    fake_radii = torch.cdist(f, f).kthvalue(4, dim=1).values
    cross = torch.cdist(f, r)
    whole = (
        (cross <= real_radii[None, :]).any(1).double().mean().item(),
        (cross.T <= fake_radii[None, :]).any(1).double().mean().item(),
    )
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK_BYTES", 8 * 300 * 7)  # 7 rows a block: many, and a short last
    assert metrics._row_blocks(300, 300).step == 7
    assert precision_recall(real, fake) == whole and 0 < whole[0] < 1 and 0 < whole[1] < 1


def test_eval_that_cannot_fit_is_refused_before_generating(monkeypatch, capsys) -> None:
    """Issue 22, 5: eval --n 1,000,000 generated every sample before asking for memory it did not have."""
    from gankit.cli import main

    monkeypatch.setattr("gankit.limits.available_memory", lambda: 2**30)
    monkeypatch.setattr("gankit.evaluate.open_backend", lambda *a, **k: pytest.fail("generated before the check"))
    assert main(["eval", "--n", "1000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit eval: error: eval --n 1,000,000 needs ") and "of memory; 1.00 GiB is available" in err


def test_too_few_samples_are_refused_before_anything_runs(monkeypatch) -> None:
    """The rule is evaluate's, for every caller (the CLI only parses): under 20 samples, no covariance estimate."""
    from gankit.errors import SamplingError
    from gankit.evaluate import evaluate

    monkeypatch.setattr(
        "gankit.evaluate.open_backend", lambda *a, **k: pytest.fail("opened a backend before the check")
    )
    with pytest.raises(SamplingError, match="^--n must be at least 20 for a covariance estimate, got 19$"):
        evaluate(n=19)
