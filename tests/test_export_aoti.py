"""AOTInductor export (gankit.targets.aoti): the package, its parity gate, the aoti backend, and the C++ program
(docs/aoti/gankit_sample.cpp) that runs a package without Python and matches `gankit sample`.

Compiling a package is a C++ build: each package here is compiled once per module (module-scoped fixtures), from
small generators (the tests are about mechanics)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.backends import create_backend
from gankit.checkpoint import load_generator, save_generator
from gankit.config import GeneratorConfig
from gankit.errors import ExportError
from gankit.export import export
from gankit.io import sha256_of
from gankit.model import Generator
from gankit.noise import NOISE_NAME
from gankit.onnx.parity import FP32_FLOOR, FP32_HEADROOM, land_checked
from gankit.targets import fp32_check
from gankit.targets.aoti import load_package, package_runner

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"log": lambda line: None}
pytestmark = pytest.mark.xdist_group("aoti-packages")  # one worker compiles each package once
SMALL = dict(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10))  # latent 20: a row ends mid noise group


def _checkpoint(folder: Path, name: str, seed: int, **config) -> Path:
    torch.manual_seed(seed)
    return save_generator(folder / f"{name}.safetensors", Generator(GeneratorConfig(**SMALL, **config)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{kind: (checkpoint, its .pt2)} for an unconditional and a 10-class conditional generator."""
    folder = tmp_path_factory.mktemp("aoti")
    made = {}
    for kind, extra in (("unconditional", {}), ("conditional", {"num_classes": 10})):
        source = _checkpoint(folder, kind, 7, **extra)
        made[kind] = (source, export(source, folder / f"{kind}.pt2", **QUIET).path)
    return made


@pytest.fixture(scope="module")
def sample_program(tmp_path_factory) -> Path:
    """docs/aoti/gankit_sample.cpp built with the build line of docs/export-targets.md."""
    from torch.utils import cpp_extension

    folder = tmp_path_factory.mktemp("cpp")
    noise = folder / "native.o"
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-pthread"]  # setup.py's: the same noise bits
    c_build = ["gcc", *flags, "-DGANKIT_NOISE_NO_PYTHON", "-c", str(ROOT / "gankit/_noise/native.c"), "-o", str(noise)]
    subprocess.run(c_build, check=True)
    (lib,) = cpp_extension.library_paths()
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    program = folder / "gankit_sample"
    cxx_build = [
        "g++", "-std=c++20", "-O2", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *(f"-I{path}" for path in cpp_extension.include_paths()),
        str(ROOT / "docs/aoti/gankit_sample.cpp"), str(noise),
        f"-L{lib}", "-ltorch", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{lib}", "-pthread", "-o", str(program),
    ]  # fmt: skip
    subprocess.run(cxx_build, check=True)
    return program


def _sample_cli(model: Path, out: Path, seed: int, start: int, n: int, *extra: str) -> np.ndarray:
    """`gankit sample`'s uint8 images (eager backend, the project's reference) of samples start .. start+n-1."""
    args = ["sample", str(model), "--backend", "eager", "--n", str(n), "--seed", str(seed), "--start", str(start)]
    done = subprocess.run(
        [sys.executable, "-m", "gankit", *args, "--out", str(out), "--quiet", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return np.concatenate([np.load(path) for path in sorted(out.glob("shard_?????.npy"))])


def test_the_package_carries_config_noise_and_source(exported) -> None:
    for kind, (source, path) in exported.items():
        package = load_package(path)
        assert package.config == load_generator(source).config
        assert package.metadata["gankit_noise"] == NOISE_NAME
        assert package.metadata["gankit_source_sha256"] == sha256_of(source)
        assert package.metadata["gankit_device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        report = json.loads(path.with_name(f"{kind}.pt2.parity.json").read_text())
        assert report["passed"] and [c["batch"] for c in report["cases"]] == [1, 2, 7, 64, 1000, 64, 64]
        assert report["versions"]["aoti_device"] == package.metadata["gankit_device"]
        for case in report["cases"]:  # the ONNX export's derived fp32 rule, case by case
            own = max(case["fp32_own_max_abs"], *(c["fp32_own_max_abs"] for c in report["cases"][:5]))
            assert case["tolerance_max"] == pytest.approx(max(FP32_FLOOR, FP32_HEADROOM * own))
            assert case["max_abs"] <= case["tolerance_max"]
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_one_name_exported_to_every_target_keeps_a_report_each(exported) -> None:
    """NAME.onnx beside NAME.pt2 (and NAME.pte, gankit.onnx.parity.report_path): each report names its own artifact
    and a later export under the same name leaves the others' reports as they were."""
    source, package = exported["unconditional"]
    package_report = package.with_name(package.name + ".parity.json")
    before = package_report.read_bytes()
    onnx = export(source, package.with_suffix(".onnx"), force=True, **QUIET)
    assert onnx.report_path == package.with_name("unconditional.parity.json")
    assert json.loads(onnx.report_path.read_text())["model"] == "unconditional.onnx"
    assert package_report.read_bytes() == before and json.loads(before)["model"] == "unconditional.pt2"


def test_the_batch_is_dynamic_and_matches_eager(exported) -> None:
    for source, path in exported.values():
        generator = load_generator(source)
        backend = create_backend("aoti", path)
        for batch in (1, 3, 257):
            z = torch.randn(batch, 20)
            labels = torch.randint(0, 10, (batch,)) if generator.config.num_classes else None
            extra = () if labels is None else (labels,)
            with torch.no_grad():
                expected = generator(z, *extra)
            got = backend.generate(z, labels=labels).cpu()
            assert got.shape == (batch, 1, 10, 10)
            assert (got - expected).abs().max() <= 1e-5  # fp32 vs fp32: a few ulps of the [-1, 1] output


def test_a_package_of_another_generator_is_refused_and_not_landed(tmp_path: Path, exported) -> None:
    """The parity gate holds a package to the generator it claims to be: one compiled from other weights fails,
    leaves NAME.pt2.parity.failed.json and no artifact."""
    _, path = exported["unconditional"]
    torch.manual_seed(8)
    other = Generator(GeneratorConfig(**SMALL))
    out = tmp_path / "g.pt2"
    with pytest.raises(ExportError, match="parity check FAILED"):
        land_checked(out, lambda tmp: shutil.copyfile(path, tmp), fp32_check(other, package_runner, {}, **QUIET))
    assert not out.exists() and json.loads((tmp_path / "g.pt2.parity.failed.json").read_text())["passed"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_not_a_package_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "g.pt2"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="not a loadable AOTInductor package"):
        load_package(bogus)


def test_the_cpp_program_equals_gankit_sample(tmp_path: Path, exported, sample_program: Path) -> None:
    """Without Python: the C++ program's uint8 images of a 64-bit seed, from an index past 2^32 counters, equal
    `gankit sample`'s within 1 level (fp32 summation order may differ; the noise bits are the same)."""
    seed, start, n = 2**40 + 12345, 2**32 - 3, 37
    for kind, (source, path) in exported.items():
        for extra in ([], ["3"]) if kind == "conditional" else ([],):
            out = tmp_path / f"{kind}{''.join(extra)}.npy"
            done = subprocess.run(
                [str(sample_program), str(path), str(seed), str(start), str(n), str(out), *extra],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
            got = np.load(out)
            digit = ["--digit", extra[0]] if extra else []
            expected = _sample_cli(source, tmp_path / f"cli-{kind}{''.join(extra)}", seed, start, n, *digit)
            assert got.shape == expected.shape == (n, 1, 10, 10) and got.dtype == np.uint8
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
            assert len(np.unique(got)) > 50  # real images, not a constant


def test_the_cpp_program_refuses_a_bad_package(tmp_path: Path, sample_program: Path) -> None:
    bogus = tmp_path / "g.pt2"
    bogus.write_bytes(b"not a zip")
    done = subprocess.run(
        [str(sample_program), str(bogus), "0", "0", "4", str(tmp_path / "o.npy")], capture_output=True
    )
    assert done.returncode != 0 and not (tmp_path / "o.npy").exists()


def test_the_backend_compiles_a_generator_once_per_machine(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    backend = create_backend("aoti", small_generator, device="cpu")
    (cached,) = (tmp_path / "aoti").glob("*.pt2")
    z = torch.randn(5, 20)
    with torch.no_grad():
        assert (backend.generate(z) - small_generator(z)).abs().max() <= 1e-5
    stamp = cached.stat().st_mtime_ns
    again = create_backend("aoti", small_generator, device="cpu")
    assert again.path == cached and cached.stat().st_mtime_ns == stamp
