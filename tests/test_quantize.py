"""int8 export options (gankit.onnx.quantize): each builds a valid graph, passes parity, keeps quality, says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from gankit.backends.onnxruntime import OnnxRuntimeBackend
from gankit.checkpoint import PRETRAINED
from gankit.cli import main
from gankit.errors import ExportError
from gankit.export import export
from gankit.noise import noise
from gankit.onnx.graph import read_metadata
from gankit.onnx.quantize import Int8Options, linear_nodes, parse_layers
from gankit.pixels import LEVELS_PER_UNIT
from gankit.tolerances import PARITY_MEAN

QUIET = {"log": lambda line: None}
pytestmark = pytest.mark.xdist_group("int8-exports")  # one worker makes ``exports`` once
# The bundled generator is a trained one: quantization error depends on trained weight and activation ranges.
OPTIONS = {
    "default": Int8Options(),
    "per-tensor-quint8": Int8Options(per_channel=False, weights="quint8"),
    "keep3": Int8Options(keep_fp32=(3,)),
    "static-minmax": Int8Options(mode="static", calibration_samples=512),
    "static-entropy-keep13": Int8Options(
        mode="static", calibration="entropy", keep_fp32=(1, 3), calibration_samples=512
    ),
}
# Mean |Δ| from the fp32 export, in grey levels, on standard-normal z: the int8 parity rule's mean
# (gankit.onnx.parity), which a correct int8 export meets against float64 (measured on the 2026-11-26
# bundled generator: dynamic 1.3, per-tensor 1.6, static 1.6-2.0, keep3 0.7 levels).
MEAN_LEVELS_BOUND = PARITY_MEAN["int8"] * LEVELS_PER_UNIT


@pytest.fixture(scope="module")
def fp32_images() -> tuple[np.ndarray, np.ndarray]:
    folder = Path(__file__).resolve().parents[1] / "exported"
    z = noise(5, 0, 2048, 100).numpy()
    return z, OnnxRuntimeBackend(folder / "generator.onnx").run_numpy(z)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("int8")
    return {
        name: export(PRETRAINED, folder / f"{name}.onnx", precision="int8", int8=options, **QUIET).path
        for name, options in OPTIONS.items()
    }


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_exports_passes_parity_and_keeps_quality(name: str, exports, fp32_images) -> None:
    path, options = exports[name], OPTIONS[name]
    onnx.checker.check_model(str(path), full_check=True)
    assert json.loads(path.with_name(path.stem + ".parity.json").read_text())["passed"]
    assert Int8Options.from_json(read_metadata(path)["gankit_int8"]) == options
    backend = OnnxRuntimeBackend(path)
    assert options.label in backend.describe()
    z, reference = fp32_images
    levels = np.abs(backend.run_numpy(z) - reference) * 127.5
    assert levels.mean() <= MEAN_LEVELS_BOUND, (name, levels.mean())
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    integer_ops = sum(op in ("MatMulInteger", "QGemm") for op in ops)
    if options.mode == "dynamic":
        assert integer_ops == 3 - len(options.keep_fp32)
        assert ops.count("MatMul") + ops.count("Gemm") == len(options.keep_fp32)
    else:
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_keeping_the_output_layer_in_fp32_halves_the_error(exports, fp32_images) -> None:
    z, reference = fp32_images
    default = np.abs(OnnxRuntimeBackend(exports["default"]).run_numpy(z) - reference).mean()
    keep3 = np.abs(OnnxRuntimeBackend(exports["keep3"]).run_numpy(z) - reference).mean()
    assert keep3 < 0.75 * default


def test_static_keep_removes_those_layers_quantization(exports) -> None:
    model = onnx.load(str(exports["static-entropy-keep13"]))
    names = linear_nodes(onnx.load(str(Path(__file__).resolve().parents[1] / "exported" / "generator.onnx")))
    fp32_gemms = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul") and n.name in (names[0], names[2])]
    assert len(fp32_gemms) == 2
    weights = {init.name: init for init in model.graph.initializer}
    for node in fp32_gemms:  # their weights are still float
        assert weights[node.input[1]].data_type == onnx.TensorProto.FLOAT


def test_option_validation() -> None:
    with pytest.raises(ExportError, match="mode must be one of"):
        Int8Options(mode="weird")
    with pytest.raises(ExportError, match="calibration samples"):
        Int8Options(mode="static", calibration_samples=0)
    assert parse_layers("1, 3") == (1, 3) and parse_layers(None) == ()
    with pytest.raises(ExportError, match="layer numbers"):
        parse_layers("last")
    assert Int8Options(keep_fp32=(3, 1, 3)).keep_fp32 == (1, 3)
    assert (
        Int8Options(mode="static", per_channel=False, keep_fp32=(3,)).label == "static-pt-qint8-a_quint8-minmax-keep3"
    )


def test_bad_layer_and_options_without_int8_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="Linear layers 1..3, not \\[4\\]"):
        export(PRETRAINED, tmp_path / "x.onnx", precision="int8", int8=Int8Options(keep_fp32=(4,)), **QUIET)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ExportError, match="add --precision int8"):
        export(PRETRAINED, tmp_path / "y.onnx", precision="fp32", int8=Int8Options(), **QUIET)


def test_cli_int8_flags(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    code = main(["export", "--precision", "int8", "--int8-keep-fp32", "3", "--int8-per-tensor", "--out", str(out)])
    assert code == 0
    options = Int8Options.from_json(read_metadata(out)["gankit_int8"])
    assert options == Int8Options(per_channel=False, keep_fp32=(3,))
    assert "int8 dynamic-pt-qint8-keep3" in capsys.readouterr().out
    assert main(["export", "--int8-mode", "static", "--out", str(tmp_path / "bad.onnx")]) == 2
    assert "add --precision int8" in capsys.readouterr().err
