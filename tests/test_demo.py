"""gankit demo: the whole pipeline runs end to end on the bundled data, and what it shows is what it made."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.export import validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
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
    shown = result.stdout
    # 1. training: one epoch of the bundled digits, its grid and loss log
    assert (out / "train" / "generator.safetensors").is_file()
    assert Image.open(out / "train" / "samples" / "epoch_0001.png").size == (242, 242)  # 8 x 8 digits of 28 + 2
    assert len((out / "train" / "losses.csv").read_text().splitlines()) == 1 + 79  # header + 5,000 / 64 steps
    # 2. the export landed only because it passed, and it still passes
    parity = json.loads((out / "generator.parity.json").read_text())
    assert parity["passed"] and "PASSED" in shown
    assert validate(out / "generator.onnx", log=lambda line: None).passed
    # 3. sampling: the grid holds 64 digits; the shards hold what the manifest says, with the path auto chose
    assert Image.open(out / "pretrained_grid.png").size == (242, 242)
    manifest = json.loads((out / "samples" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["samples"] == 20_000
    chosen = re.search(r"precision auto -> (\w+) (\w+) \(fastest path within the quality tolerance", shown)
    assert chosen and chosen.groups() == (manifest["job"]["backend"], manifest["job"]["precision"])
    first = np.load(out / "samples" / "shard_00000.npy")
    assert first.shape == (20_000, 1, 28, 28) and first.dtype == np.uint8 and first.std() > 20  # digits, not blank
    # 4. the benchmark table shows the rows it measured, each checked against eager first
    bench = json.loads((out / "bench.json").read_text())
    timed = [m for m in bench["results"] if m["status"] == "ok"]
    assert {(m["backend"], m["precision"]) for m in timed} >= {("eager", "fp32"), ("onnxruntime", "fp32")}
    assert {(m["backend"], "int8") for m in timed if m["precision"] == "int8"} == {("onnxruntime", "int8")}
    for m in timed:
        assert re.search(
            rf"^{m['backend']}\s+{m['precision']}\s+{m['batch']}\s+{m['samples_per_second']:,.0f}\b", shown, re.M
        )
    assert "ceilings measured in this run" in shown and (tmp_path / "cache" / "auto-backend.json").is_file()
    assert "demo finished" in shown
