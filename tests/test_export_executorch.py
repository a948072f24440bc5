"""ExecuTorch export (gankit.targets.executorch): the .pte with the XNNPACK delegate, its parity gate through
executorch.runtime, the executorch backend in sample and bench, a foreign state dict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import gankit.perf.bench as bench
from gankit.backends import create_backend
from gankit.checkpoint import load_generator, save_generator
from gankit.config import GeneratorConfig
from gankit.errors import BackendError, ExportError
from gankit.export import export
from gankit.io import sha256_of
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.parity import land_checked
from gankit.targets import fp32_check
from gankit.targets.executorch import load_program, program_runner

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"log": lambda line: None}
pytestmark = pytest.mark.xdist_group("executorch-programs")  # one worker makes ``exported`` once
SMALL = dict(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{kind: (checkpoint, its .pte)} for an unconditional and a 10-class conditional generator."""
    folder = tmp_path_factory.mktemp("pte")
    made = {}
    for kind, extra in (("unconditional", {}), ("conditional", {"num_classes": 10})):
        torch.manual_seed(5)
        source = save_generator(folder / f"{kind}.safetensors", Generator(GeneratorConfig(**SMALL, **extra)))
        made[kind] = (source, export(source, folder / f"{kind}.pte", **QUIET).path)
    return made


def test_the_program_carries_config_noise_and_a_passing_report(exported) -> None:
    for kind, (source, path) in exported.items():
        program = load_program(path)
        assert program.config == load_generator(source).config
        assert program.metadata["gankit_noise"] == NOISE_NAME
        assert program.metadata["gankit_source_sha256"] == sha256_of(source)
        report = json.loads(path.with_name(f"{kind}.pte.parity.json").read_text())
        assert report["passed"] and [c["batch"] for c in report["cases"]] == [1, 2, 7, 64, 1000, 64, 64]
        assert report["versions"]["executorch"] not in ("", "absent")
        assert all(case["max_abs"] <= case["tolerance_max"] for case in report["cases"])
        assert report["model"] == path.name


def test_the_backend_matches_eager_and_splits_large_batches(exported) -> None:
    for source, path in exported.values():
        generator = load_generator(source)
        backend = create_backend("executorch", path)
        backend.max_batch = 4  # the program's bound, lowered so that a batch of 11 is run in three pieces
        z = torch.randn(11, 20)
        labels = torch.randint(0, 10, (11,)) if generator.config.num_classes else None
        with torch.no_grad():
            expected = generator(z, *(() if labels is None else (labels,)))
        got = backend.generate(z, labels=labels)
        assert got.shape == (11, 1, 10, 10) and (got - expected).abs().max() <= 1e-5  # fp32: a few ulps
    with pytest.raises(BackendError, match="runs on the CPU"):
        create_backend("executorch", path, device="cuda")


def test_sample_runs_a_pte_like_any_model(tmp_path: Path, exported) -> None:
    source, path = exported["conditional"]
    images = {}
    for name, model, backend in (("pte", path, "auto"), ("eager", source, "eager")):
        args = ["sample", str(model), "--backend", backend, "--n", "30", "--seed", "9", "--start", "5", "--quiet"]
        done = subprocess.run(
            [sys.executable, "-m", "gankit", *args, "--out", str(tmp_path / name)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        images[name] = np.load(tmp_path / name / "shard_00000.npy")
    assert np.abs(images["pte"].astype(int) - images["eager"].astype(int)).max() <= 1


def test_a_program_of_another_generator_is_refused_and_not_landed(tmp_path: Path, exported) -> None:
    _, path = exported["unconditional"]
    torch.manual_seed(6)
    other = Generator(GeneratorConfig(**SMALL))
    out = tmp_path / "g.pte"
    with pytest.raises(ExportError, match="parity check FAILED"):
        land_checked(out, lambda tmp: shutil.copyfile(path, tmp), fp32_check(other, program_runner, {}, **QUIET))
    assert not out.exists() and json.loads((tmp_path / "g.pte.parity.failed.json").read_text())["passed"] is False
    bogus = tmp_path / "bogus.pte"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(ExportError, match="not a loadable ExecuTorch program"):
        load_program(bogus)


def test_a_foreign_state_dict_exports(tmp_path: Path) -> None:
    """A classic-script G.pth (Linear/LeakyReLU(0.2)/Tanh, 100 -> 256 -> 512 -> 784) exports to a passing .pte."""
    torch.manual_seed(3)
    classic = nn.Sequential(
        nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2), nn.Linear(512, 784), nn.Tanh()
    )
    torch.save(classic.state_dict(), tmp_path / "G.pth")
    result = export(tmp_path / "G.pth", tmp_path / "g.pte", **QUIET)
    assert result.report.passed
    z = torch.randn(6, 100)
    with torch.no_grad():
        expected = classic(z).reshape(6, 1, 28, 28)
    assert (create_backend("executorch", result.path).generate(z) - expected).abs().max() <= 1e-5


def test_bench_has_an_executorch_row(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    model = save_generator(tmp_path / "g.safetensors", small_generator)
    report = bench.run_bench(model, backends=["eager", "executorch"], batch_sizes=[8], device="cpu", **QUIET)
    rows = {m.backend: m for m in report.results}
    assert rows["executorch"].status == "ok" and rows["executorch"].samples_per_second > 0
    assert rows["executorch"].max_abs_error <= 1e-5  # checked against eager fp32 before it was timed
