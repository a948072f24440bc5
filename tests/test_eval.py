"""Quality metrics: ~0 for identical sets, larger when a digit is missing or noise is added; CLI on both formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.quality.classifier import SHIPPED, accuracy, load_classifier, split_bundled
from gankit.quality.metrics import features, frechet_distance, precision_recall, quality, real_halves

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


@pytest.mark.parametrize("kind", ["safetensors", "onnx"])
def test_cli_eval_on_checkpoint_and_onnx(tmp_path: Path, kind: str) -> None:
    model = ROOT / ("exported/generator.onnx" if kind == "onnx" else "gankit/pretrained/generator.safetensors")
    out = tmp_path / "q.json"
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "eval", str(model), "--n", "500", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "real vs real (floor)" in result.stdout and "MNIST-FID" in result.stdout
    report = json.loads(out.read_text())
    assert report["generated"]["fid"] > report["floor"]["fid"] > 0
    assert ("onnxruntime" in report["backend"]) == (kind == "onnx")
