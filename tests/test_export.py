"""ONNX export: every precision and output, metadata, dynamic batch, parity gate, bad inputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gankit.backends.onnxruntime import OnnxRuntimeBackend
from gankit.checkpoint import save_generator
from gankit.cli import main
from gankit.config import GeneratorConfig
from gankit.errors import BackendError, CheckpointError, ExportError, NoiseError, OutputError
from gankit.export import export, export_format, validate
from gankit.io import sha256_of
from gankit.labels import LabelError
from gankit.model import Generator
from gankit.onnx.graph import read_metadata
from gankit.onnx.parity import PARITY_INPUTS

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"log": lambda line: None}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(99)
    config = GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10))
    return save_generator(tmp_path_factory.mktemp("ckpt") / "small.safetensors", Generator(config))


@pytest.fixture(scope="module")
def fp32_graph(tmp_path_factory, checkpoint: Path) -> Path:
    """``checkpoint`` exported once (fp32, float output) for the tests that run or edit a graph; an edit goes to a
    copy (``_copy``)."""
    return export(checkpoint, tmp_path_factory.mktemp("fp32") / "g.onnx", **QUIET).path


def _copy(graph: Path, folder: Path) -> Path:
    return Path(shutil.copy(graph, folder / graph.name))


@pytest.mark.parametrize(
    ("precision", "output"),
    [("fp32", "float"), ("fp16", "float"), ("int8", "float"), ("fp32", "uint8"), ("fp16", "uint8")],
)
def test_export_each_precision_and_output(tmp_path: Path, checkpoint: Path, precision: str, output: str) -> None:
    result = export(checkpoint, tmp_path / "g.onnx", precision=precision, output=output, **QUIET)
    assert result.path.is_file() and result.report.passed
    onnx.checker.check_model(str(result.path), full_check=True)
    props = read_metadata(result.path)
    assert props["gankit_precision"] == precision and props["gankit_output"] == output
    assert props["gankit_opset"] == "20" and props["gankit_source_sha256"] == sha256_of(checkpoint)
    assert json.loads(props["gankit_config"])["latent_dim"] == 20
    report = json.loads(result.report_path.read_text())
    assert report["passed"] and [c["batch"] for c in report["cases"]] == [1, 2, 7, 64, 1000, 64, 64]
    assert {"onnxruntime", "onnx", "torch"} <= set(report["versions"])
    model = onnx.load(str(result.path))
    (z_input,) = model.graph.input
    assert [d.dim_param or d.dim_value for d in z_input.type.tensor_type.shape.dim] == ["batch", 20]
    assert z_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out_type = model.graph.output[0].type.tensor_type.elem_type
    assert out_type == (onnx.TensorProto.UINT8 if output == "uint8" else onnx.TensorProto.FLOAT)
    if precision != "fp32" and output == "float":
        assert report["vs_fp32"]["mean_pixel_levels_vs_fp32"] < 1.0


def test_uint8_output_is_the_rounded_image(tmp_path: Path, checkpoint: Path, small_generator) -> None:
    path = export(checkpoint, tmp_path / "u8.onnx", output="uint8", **QUIET).path
    backend = OnnxRuntimeBackend(path)
    z = torch.randn(33, 20)
    from gankit.checkpoint import load_generator

    expected = torch.clamp(torch.round((load_generator(checkpoint)(z) + 1) * 127.5), 0, 255)
    got = backend.generate(z, output="uint8")
    assert got.dtype == torch.uint8 and (got.float() - expected.detach()).abs().max() <= 1


def test_dynamic_batch_runs_any_size(fp32_graph: Path) -> None:
    backend = OnnxRuntimeBackend(fp32_graph)
    for batch in (1, 3, 257):
        assert backend.generate(torch.randn(batch, 20)).shape == (batch, 1, 10, 10)


def test_a_perturbed_model_fails_validation(tmp_path: Path, checkpoint: Path, fp32_graph: Path) -> None:
    path = _copy(fp32_graph, tmp_path)
    model = onnx.load(str(path))
    initializer = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = onnx.numpy_helper.to_array(initializer).copy()
    weights.flat[0] += 0.05
    initializer.CopyFrom(onnx.numpy_helper.from_array(weights, initializer.name))
    onnx.save(model, str(path))
    with pytest.raises(ExportError, match="parity check FAILED for fp32.*tolerance"):
        validate(path, checkpoint=checkpoint, **QUIET)
    assert (tmp_path / "g.parity.failed.json").is_file()


def test_fp16_rounded_weights_fail_the_fp32_gate(tmp_path: Path, checkpoint: Path, fp32_graph: Path) -> None:
    """The derived fp32 tolerance is tight: an "fp32" export whose weights went through fp16 is refused."""
    path = _copy(fp32_graph, tmp_path)
    model = onnx.load(str(path))
    for initializer in model.graph.initializer:
        values = onnx.numpy_helper.to_array(initializer)
        if values.dtype == np.float32:
            rounded = values.astype(np.float16).astype(np.float32)
            initializer.CopyFrom(onnx.numpy_helper.from_array(rounded, initializer.name))
    onnx.save(model, str(path))
    with pytest.raises(ExportError, match="parity check FAILED for fp32"):
        validate(path, checkpoint=checkpoint, **QUIET)


def test_each_case_records_its_seed_and_replays(tmp_path: Path, checkpoint: Path, fp32_graph: Path) -> None:
    path = _copy(fp32_graph, tmp_path)
    first = validate(path, checkpoint=checkpoint, seed=1234, **QUIET)
    assert first.seed == 1234 and [c.seed for c in first.cases] == list(range(1234, 1234 + len(first.cases)))
    assert json.loads((tmp_path / "g.parity.json").read_text())["cases"][3]["seed"] == 1237
    assert json.loads((tmp_path / "g.parity.json").read_text())["inputs"] == PARITY_INPUTS
    for bad in (-1, 2**64):  # outside the project's seeds (gankit.noise.check_seed): one line, nothing written
        with pytest.raises(NoiseError, match=r"seed must be in \[0, 2\*\*64\)"):
            validate(path, checkpoint=checkpoint, seed=bad, **QUIET)
    assert json.loads((tmp_path / "g.parity.json").read_text())["seed"] == 1234
    again = validate(path, checkpoint=checkpoint, seed=1234, **QUIET)
    assert [c.max_abs for c in again.cases] == [c.max_abs for c in first.cases]
    other = validate(path, checkpoint=checkpoint, seed=99, **QUIET)
    assert [c.max_abs for c in other.cases] != [c.max_abs for c in first.cases]
    for case in first.cases:  # the fp32 yardstick: the source's own fp32 error on the same z, beside ours
        assert case.fp32_own_max_abs is not None and 0 < case.fp32_own_max_abs < case.tolerance_max


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(latent_dim=20, hidden=(48, 80), image_shape=(1, 10, 10)),
        GeneratorConfig(
            latent_dim=7,
            hidden=(9, 11, 13),
            image_shape=(3, 2, 5),
            slope=(0.1, 0.0, 0.3),
            num_classes=4,
            output_activation="sigmoid",
        ),
    ],
    ids=["small", "deep-conditional-sigmoid"],
)
def test_the_parity_reference_is_the_generators_forward_in_float64(tmp_path: Path, config: GeneratorConfig) -> None:
    """gankit.onnx.parity.Reference runs Generator.forward in NumPy, from the Generator's weights or its file's
    (read without torch), on fresh inputs (seed 5). Bound: both sides are float64 with different summation
    orders, on outputs in [-1, 1]: the difference is a few float64 epsilons x the layers' widths (< 1e-13), so
    1e-12 leaves headroom while an fp32 rounding anywhere (~1e-7) fails it."""
    from gankit.models import load
    from gankit.onnx.parity import Reference

    torch.manual_seed(5)
    generator = Generator(config).eval()
    for parameter in generator.parameters():  # large weights: pre-activations of both signs and far into tanh
        parameter.data.mul_(3)
    path = save_generator(tmp_path / "g.safetensors", generator)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((33, config.latent_dim)).astype(np.float32)
    labels = rng.integers(0, config.num_classes, 33) if config.num_classes else None
    with torch.no_grad():
        given = (torch.from_numpy(z).double(),) + (() if labels is None else (torch.from_numpy(labels),))
        expected = generator.double()(*given).numpy()
    generator.float()
    for reference in (Reference.of(generator), Reference.of(load(path))):
        wrong = "conditional on" if config.num_classes else "unconditional"
        with pytest.raises(LabelError, match=f"the parity reference is {wrong}"):
            reference.images(z, None if config.num_classes else np.zeros(33, dtype=np.int64))
        images = reference.images(z, labels)
        assert images.dtype == np.float64 and images.shape == expected.shape
        assert np.abs(images - expected).max() < 1e-12
        # the fp32 yardstick rounds: a few float32 epsilons (1.2e-7) x widths <= 80 x |pre-activations| <~ 10
        assert 0 < np.abs(reference.images(z, labels, np.float32) - expected).max() < 1e-4


def test_a_float64_checkpoint_is_checked_against_its_float32_weights(tmp_path: Path, checkpoint: Path) -> None:
    """A gankit file may store float64 weights; every path rounds them to float32 first (the Generator, the export
    cache's digest), so the parity reference of the file read without torch is the float32 one too."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from gankit.checkpoint import generator_arrays, load_generator
    from gankit.models import load

    with safe_open(str(checkpoint), framework="np") as handle:
        metadata = handle.metadata()
        wide = {name: handle.get_tensor(name).astype(np.float64) + 1e-12 for name in handle.keys()}
    save_file(wide, str(tmp_path / "wide.safetensors"), metadata=metadata)
    arrays = load(tmp_path / "wide.safetensors").weight_arrays()
    expected = generator_arrays(load_generator(tmp_path / "wide.safetensors"))
    assert all(arrays[name].dtype == np.float32 and np.array_equal(arrays[name], expected[name]) for name in expected)


def test_a_failed_export_is_not_left_looking_valid(tmp_path: Path, checkpoint: Path, monkeypatch) -> None:
    """A failed export names its --out (never the temporary file it checked, which is gone), lands nothing there
    and leaves an earlier export at that name with its passing report as they were."""
    import gankit.onnx.parity as parity

    out = tmp_path / "g.onnx"
    monkeypatch.setattr(parity, "FP32_HEADROOM", 0.0)  # no fp32 result is within 0 of float64
    monkeypatch.setattr(parity, "FP32_FLOOR", 0.0)
    with pytest.raises(ExportError, match=f"^{re.escape(str(out))}: parity check FAILED"):
        export(checkpoint, out, **QUIET)
    assert not out.exists()
    assert json.loads((tmp_path / "g.parity.failed.json").read_text())["passed"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    earlier = export(checkpoint, out, **QUIET)
    kept = {p.name: p.read_bytes() for p in (earlier.path, earlier.report_path)}
    monkeypatch.setattr(parity, "FP32_HEADROOM", 0.0)
    monkeypatch.setattr(parity, "FP32_FLOOR", 0.0)
    with pytest.raises(ExportError, match=f"^{re.escape(str(out))}: parity check FAILED"):
        export(checkpoint, out, force=True, **QUIET)
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept


def test_a_passing_report_never_outlives_an_artifact_that_did_not_land(tmp_path: Path, monkeypatch) -> None:
    """land_checked: when the checked file cannot be moved to --out (the rename fails, or Ctrl-C lands there), its
    passing report is removed with it and nothing temporary is left."""
    import gankit.onnx.parity as parity

    out = tmp_path / "g.pt2"
    report = parity.ParityReport(out.name, "fp32", "float", 0, passed=True, tolerance_rule="test")
    replace = os.replace

    def refuse_the_artifact(source, target):  # the report's own atomic write still renames
        if Path(target) == out:
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(os, "replace", refuse_the_artifact)
    with pytest.raises(OSError, match="No space left"):
        parity.land_checked(out, lambda tmp: tmp.write_bytes(b"artifact"), lambda tmp, name: report)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_passing_check_clears_the_failed_report_of_an_earlier_one(
    tmp_path: Path, checkpoint: Path, monkeypatch
) -> None:
    """One owner lands every report (gankit.onnx.parity.land_report): a failed export or validation leaves
    NAME.parity.failed.json; the next one that passes, export or validate alike, lands NAME.parity.json and removes
    it."""
    import gankit.onnx.parity as parity

    failed = tmp_path / "g.parity.failed.json"
    with monkeypatch.context() as strict:
        strict.setattr(parity, "FP32_HEADROOM", 0.0)
        strict.setattr(parity, "FP32_FLOOR", 0.0)
        with pytest.raises(ExportError, match="FAILED"):
            export(checkpoint, tmp_path / "g.onnx", **QUIET)
    assert failed.is_file()
    result = export(checkpoint, tmp_path / "g.onnx", **QUIET)
    assert result.report_path == tmp_path / "g.parity.json" and not failed.exists()
    exported = result.path.read_bytes()
    model = onnx.load(str(result.path))
    initializer = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = onnx.numpy_helper.to_array(initializer).copy()
    weights.flat[0] += 0.05
    initializer.CopyFrom(onnx.numpy_helper.from_array(weights, initializer.name))
    onnx.save(model, str(result.path))
    with pytest.raises(ExportError, match="parity check FAILED"):
        validate(result.path, checkpoint=checkpoint, **QUIET)
    assert json.loads(failed.read_text())["passed"] is False
    assert not result.report_path.exists()  # it described the file before the change, not the one checked
    result.path.write_bytes(exported)
    assert validate(result.path, checkpoint=checkpoint, **QUIET).passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx", "g.parity.json"]
    assert json.loads((tmp_path / "g.parity.json").read_text())["passed"] is True


def test_bad_inputs(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        export(tmp_path / "missing.safetensors", tmp_path / "g.onnx", **QUIET)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        export(corrupt, tmp_path / "g.onnx", **QUIET)
    with pytest.raises(ExportError, match="must end in .onnx"):
        export(checkpoint, tmp_path / "g.bin", **QUIET)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write --out .*is a file, not a folder"):  # before the work
        export(checkpoint, blocker / "g.onnx", **QUIET)
    existing = tmp_path / "there.onnx"
    existing.write_bytes(b"someone's model")
    with pytest.raises(OutputError, match="already exists .*--force"):  # issue 22, 13: one overwrite rule
        export(checkpoint, existing, **QUIET)
    assert existing.read_bytes() == b"someone's model"
    with pytest.raises(ExportError, match="not a readable ONNX"):
        read_metadata(corrupt)


def test_wrong_z_at_inference_is_a_clear_error(fp32_graph: Path) -> None:
    backend = OnnxRuntimeBackend(fp32_graph)
    with pytest.raises(BackendError, match=r"takes z of shape \[batch, 20\] float32; got \[4, 7\]"):
        backend.generate(torch.randn(4, 7))
    with pytest.raises(BackendError, match="float64"):
        backend.generate(torch.randn(4, 20, dtype=torch.float64))


@pytest.mark.slow
def test_cli_export_validate_and_info(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "cli.onnx"
    run = [sys.executable, "-m", "gankit"]
    done = subprocess.run(
        [*run, "export", str(checkpoint), "--out", str(out), "--precision", "fp16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stdout
    done = subprocess.run(
        [*run, "validate", str(out), "--checkpoint", str(checkpoint)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and "PASSED" in done.stdout
    done = subprocess.run([*run, "validate", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "pass its checkpoint with --checkpoint" in done.stderr
    done = subprocess.run([*run, "info", str(out), "--json"], cwd=ROOT, capture_output=True, text=True)
    assert json.loads(done.stdout)["gankit_precision"] == "fp16"
    done = subprocess.run(
        [*run, "export", str(tmp_path / "nope.safetensors"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("gankit export: error:") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_bundled_export_passes_every_time_on_fresh_seeds(tmp_path: Path) -> None:
    """A correct export is never refused: 3 exports of the bundled generator and 30 more validations of one,
    each on fresh random inputs (their seeds are in the message if one fails)."""
    failed = []
    for attempt in range(3):
        out = tmp_path / f"g{attempt}.onnx"
        try:
            export(None, out, **QUIET)
        except ExportError as exc:
            failed.append(str(exc))
    path = tmp_path / "g0.onnx"
    for _ in range(30):
        try:
            validate(path, **QUIET)
        except ExportError as exc:
            failed.append(str(exc))
    assert not failed, failed


# --- --format: onnx, aoti, executorch, web ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "format", "expected"),
    [
        (None, None, ("onnx", "generator.onnx")),
        (None, "aoti", ("aoti", "generator.pt2")),
        (None, "web", ("web", "generator-web")),
        ("a/g.onnx", None, ("onnx", "a/g.onnx")),
        ("a/g.pt2", None, ("aoti", "a/g.pt2")),
        ("a/g.pte", "executorch", ("executorch", "a/g.pte")),
        ("a/site", None, ("web", "a/site")),
    ],
)
def test_the_format_comes_from_the_flag_or_the_suffix(out, format, expected) -> None:
    assert export_format(out, format) == (expected[0], Path(expected[1]))


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_exports_a_pte_from_its_suffix(tmp_path: Path, checkpoint: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "export", checkpoint, "--out", tmp_path / "g.pte")
    assert code == 0, err
    assert "PASSED" in out and (tmp_path / "g.pte").is_file() and (tmp_path / "g.pte.parity.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "aoti", "--out", "{tmp}/g.onnx"], "--format aoti: --out must end in .pt2"),
        (["--out", "{tmp}/g.bin"], "--out must end in .onnx, .pt2 or .pte"),
        (["--out", "{tmp}/g.pte", "--precision", "fp16"], "--format executorch exports fp32 with float output"),
        (["--out", "{tmp}/site", "--output", "uint8"], "--format web exports fp32 with float output"),
    ],
)
def test_cli_bad_format_choices_are_one_line(tmp_path: Path, checkpoint: Path, capsys, args, message) -> None:
    code, out, err = run_cli(capsys, "export", checkpoint, *(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not [p for p in tmp_path.iterdir()]


@pytest.mark.parametrize("target", ["g.pt2", "g.pte"])
def test_cli_an_existing_compiled_target_is_kept_without_force(
    tmp_path: Path, checkpoint: Path, capsys, target
) -> None:
    """The one overwrite rule holds for every format: refused before any export work, the file untouched."""
    (tmp_path / target).write_bytes(b"a user's file")
    code, out, err = run_cli(capsys, "export", checkpoint, "--out", tmp_path / target)
    assert code == 2 and "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / target).read_bytes() == b"a user's file"


@pytest.mark.parametrize("target", ["g.pt2", "g.pte"])
def test_cli_an_onnx_graph_to_a_compiled_target_is_one_line(tmp_path: Path, fp32_graph: Path, capsys, target) -> None:
    code, out, err = run_cli(capsys, "export", fp32_graph, "--out", tmp_path / target)
    assert code == 2 and "is an ONNX graph" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / target).exists()


def test_cli_web_goes_to_gankit_web(tmp_path: Path, capsys, monkeypatch) -> None:
    """A folder --out (or --format web) calls gankit.web.export_web(model, out_dir, force=...), which says what it
    wrote: the CLI adds no line of its own; the page itself is gankit.web's (tests/test_web.py)."""
    calls = []

    def export_web(model, out_dir, force=False):
        calls.append((model, out_dir, force))
        return out_dir

    monkeypatch.setitem(sys.modules, "gankit.web", types.SimpleNamespace(export_web=export_web))
    code, out, err = run_cli(capsys, "export", "conditional", "--out", tmp_path / "site", "--force")
    assert code == 0, err
    assert calls == [("conditional", tmp_path / "site", True)] and out == ""


def test_the_web_rule_lives_in_the_library() -> None:
    """``gankit export --format web`` refuses the ONNX and import options through gankit.export, not the CLI."""
    from gankit.export import refuse_options_for_web
    from gankit.models import ImportOptions

    refuse_options_for_web()
    refuse_options_for_web(import_options=ImportOptions())
    for refused in (
        {"precision": "int8"},
        {"output": "uint8"},
        {"opset": 18},
        {"import_options": ImportOptions(slope=(0.1,))},
    ):
        with pytest.raises(ExportError, match="--format web exports fp32"):
            refuse_options_for_web(**refused)
