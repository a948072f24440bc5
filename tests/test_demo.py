"""gankit demo: the whole pipeline runs end to end on the bundled data and leaves its files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "gankit", "demo", "--out", str(out), "--epochs", "1", "--quick"],
        cwd=ROOT,
        env={**os.environ, "GANKIT_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "train" / "generator.safetensors").is_file()
    assert (out / "train" / "samples" / "epoch_0001.png").is_file()
    assert (out / "pretrained_grid.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "generator.onnx").is_file() and "PASSED" in result.stdout
    assert (out / "samples" / "manifest.json").is_file() and (out / "bench.json").is_file()
    assert "onnxruntime" in result.stdout
    assert "precision auto -> " in result.stdout and "within the quality tolerance" in result.stdout
    assert (tmp_path / "cache" / "auto-backend.json").is_file()
    assert "demo finished" in result.stdout
