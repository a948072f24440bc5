"""Imported generators in every path: a 5-Linear 3x32x32 sigmoid generator through every CPU backend, and ONNX
generator graphs made elsewhere through onnxruntime, OpenVINO, sample, bench and eval.

Tolerance (fp32 backends): the parity rule of ``gankit.onnx.parity``. Each backend's images are held, against
the module's own float64 images, to 3x the error PyTorch's own fp32 forward has on the same z (never below 8
fp32 epsilons): a correct fp32 implementation rounds the same intermediates, differing only in its summation
order. Two backends within that of float64 are within it plus eager's own error of each other.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import gankit.perf.bench as bench
import gankit.perf.ceilings as ceilings
from gankit.backends.resolve import open_backend
from gankit.cli import main
from gankit.errors import ConfigError, ConversionError, ExportError
from gankit.evaluate import evaluate
from gankit.models import ImportOptions
from gankit.noise import noise
from gankit.onnx.graph import read_graph
from gankit.onnx.parity import FP32_FLOOR, FP32_HEADROOM
from gankit.pixels import to_uint8
from gankit.tolerances import BENCH_MAX

CPU_BACKENDS = ("eager", "compile", "onnxruntime", "openvino", "triton")
QUIET = {"log": lambda line: None}


def fp32_tolerance(module: nn.Module, z: torch.Tensor, transform=lambda y: y) -> tuple[torch.Tensor, float]:
    """(float64 images of ``module`` on z, after ``transform``; the tolerance of the parity rule on them)."""
    with torch.no_grad():
        exact = transform(copy.deepcopy(module).double()(z.double()))
        own = transform(module(z).double())
    return exact, max(FP32_FLOOR, FP32_HEADROOM * (own - exact).abs().max().item())


# --- a 5-Linear, 3x32x32 generator from a state dict, through every CPU backend --------------------------

DEEP_FLAGS = {
    "hidden_act": ("relu", "leaky_relu", "leaky_relu", "relu"),
    "slope": (0.2, 0.1, 0.3, 0.2),  # one per hidden layer; relu layers take none
    "output_act": "sigmoid",
    "image_shape": (3, 32, 32),
}


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.manual_seed(11)
    module = nn.Sequential(
        nn.Linear(24, 40),
        nn.ReLU(),
        nn.Linear(40, 56),
        nn.LeakyReLU(0.1),
        nn.Linear(56, 48),
        nn.LeakyReLU(0.3),
        nn.Linear(48, 32),
        nn.ReLU(),
        nn.Linear(32, 3072),
        nn.Sigmoid(),
    ).eval()
    path = tmp_path_factory.mktemp("deep") / "deep.pth"
    torch.save(module.state_dict(), path)
    return module, path


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_deep_wide_generator_on_every_cpu_backend(deep: tuple[nn.Module, Path], name: str) -> None:
    module, path = deep
    options = ImportOptions(**DEEP_FLAGS)
    eager = open_backend(path, "eager", device="cpu", import_options=options, **QUIET)
    backend = open_backend(path, name, device="cpu", batch_size=64, import_options=options, **QUIET)
    assert backend.config.hidden == (40, 56, 48, 32) and backend.config.image_shape == (3, 32, 32)
    z = noise(3, 10, 33, 24)
    exact, tolerance = fp32_tolerance(module, z, lambda y: (2 * y - 1).view(33, 3, 32, 32))
    images = backend.generate_seeded(3, 10, 33).double().cpu()
    expected = eager.generate_seeded(3, 10, 33).double()
    assert images.shape == (33, 3, 32, 32)
    assert (images - exact).abs().max().item() <= tolerance
    assert (images - expected).abs().max().item() <= tolerance + (expected - exact).abs().max().item()
    if name == "triton":
        assert "per-layer" in backend.describe()


@pytest.mark.slow
def test_deep_generator_samples_to_shards_through_the_cli(deep: tuple[nn.Module, Path], tmp_path: Path, capsys) -> None:
    _, path = deep
    flags = ["--hidden-act", "relu,leaky_relu,leaky_relu,relu", "--slope", "0.2,0.1,0.3,0.2"]
    flags += ["--output-act", "sigmoid", "--image-shape", "3,32,32"]
    code = main(["sample", str(path), *flags, "--n", "40", "--out", str(tmp_path / "run"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "converted deep.pth (torch.save state dict: 5 Linear" in out
    shard = np.load(tmp_path / "run" / "shard_00000.npy")
    assert shard.shape == (40, 3, 32, 32) and shard.dtype == np.uint8
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["job"]["config"]["image_shape"] == [3, 32, 32]


def test_three_linear_relu_sigmoid_runs_in_the_whole_generator_kernel(tmp_path: Path) -> None:
    torch.manual_seed(12)
    module = nn.Sequential(nn.Linear(20, 48), nn.ReLU(), nn.Linear(48, 80), nn.LeakyReLU(0.05), nn.Linear(80, 192))
    module = nn.Sequential(*module, nn.Sigmoid()).eval()
    torch.save(module.state_dict(), tmp_path / "g.pt")
    options = ImportOptions(("relu", "leaky_relu"), (0.05,), output_act="sigmoid", image_shape=(3, 8, 8))
    backend = open_backend(tmp_path / "g.pt", "triton", device="cpu", import_options=options, **QUIET)
    assert "whole-generator" in backend.describe()
    exact, tolerance = fp32_tolerance(module, noise(5, 0, 21, 20), lambda y: (2 * y - 1).view(21, 3, 8, 8))
    assert (backend.generate_seeded(5, 0, 21).double() - exact).abs().max().item() <= tolerance


def test_eval_takes_only_digit_shaped_images(deep: tuple[nn.Module, Path], capsys) -> None:
    _, path = deep
    flags = ["--hidden-act", "relu", "--output-act", "sigmoid", "--image-shape", "3,32,32"]
    code = main(["eval", str(path), *flags, "--n", "20", "--backend", "eager"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("gankit eval: error: ")
    assert "gankit eval scores 1x28x28 digit images (its classifier's input); this generator makes 3x32x32" in err


# --- ONNX generator graphs made elsewhere --------------------------------------------------------------


def mlp_graph(
    module: nn.Sequential,
    path: Path,
    input_name: str = "noise",
    output_name: str = "pixels",
    batch: int | str = "n",
    output_dims: tuple[int, ...] | None = None,
    second_output: bool = False,
) -> Path:
    """Write ``module`` (Linear and ReLU/Sigmoid/Tanh layers) as a hand-built ONNX graph: MatMul, Add, the
    activations, and a Reshape to [batch, *output_dims] when given; float32 I/O; no gankit metadata."""
    nodes, inits, x = [], [], input_name
    for i, layer in enumerate(module):
        y = f"t{i}"
        if isinstance(layer, nn.Linear):
            inits.append(numpy_helper.from_array(layer.weight.detach().T.contiguous().numpy(), f"w{i}"))
            inits.append(numpy_helper.from_array(layer.bias.detach().numpy(), f"b{i}"))
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [y]))
        else:
            nodes.append(helper.make_node(type(layer).__name__.replace("ReLU", "Relu"), [x], [y]))
        x = y
    width = module[-2].out_features
    dims = [batch, *(output_dims or (width,))]
    if output_dims:
        inits.append(numpy_helper.from_array(np.array([-1, *output_dims], dtype=np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", [x, "shape"], [output_name]))
    else:
        nodes.append(helper.make_node("Identity", [x], [output_name]))
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, dims)]
    if second_output:
        outputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, width]))
    graph = helper.make_graph(
        nodes,
        "elsewhere",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, module[0].in_features])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def sigmoid_module() -> nn.Sequential:
    torch.manual_seed(13)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid()).eval()


@pytest.fixture(scope="module")
def other_onnx(tmp_path_factory: pytest.TempPathFactory, sigmoid_module: nn.Sequential) -> Path:
    return mlp_graph(sigmoid_module, tmp_path_factory.mktemp("other") / "other.onnx")


def test_foreign_graph_on_onnxruntime(other_onnx: Path, sigmoid_module: nn.Sequential) -> None:
    """Names from the graph; flat output reshaped to the seed's 1x28x28; range [0, 1] mapped to 2y - 1."""
    z = noise(2, 0, 50, 64)
    mapped = open_backend(other_onnx, "onnxruntime", import_options=ImportOptions(output_range=(0.0, 1.0)), **QUIET)
    exact, tolerance = fp32_tolerance(sigmoid_module, z, lambda y: (2 * y - 1).view(50, 1, 28, 28))
    assert (mapped.generate_seeded(2, 0, 50).double() - exact).abs().max().item() <= tolerance
    as_is = open_backend(other_onnx, "onnxruntime", **QUIET)  # default range [-1, 1]: the output taken as it is
    assert (as_is.generate_seeded(2, 0, 50).double() - (exact + 1) / 2).abs().max().item() <= tolerance


@pytest.mark.parametrize("output_range", ["0,1", "-1,1"])
def test_foreign_graph_on_openvino_in_its_own_process(
    other_onnx: Path, sigmoid_module: nn.Sequential, tmp_path: Path, output_range: str
) -> None:
    """The same through OpenVINO, in a process of its own: after OpenVINO models built from this graph were
    freed, a later SIGINT to this process (test_train's Ctrl-C test) was seen to crash it (a kernel SIGSEGV
    while delivering the signal, on a Xeon with AMX). float16 shards: each value is also rounded to fp16,
    within 2**-12 in [-1, 1]."""
    out = tmp_path / "run"
    args = ["sample", str(other_onnx), "--backend", "openvino", f"--output-range={output_range}", "--n", "50"]
    args += ["--out", str(out), "--dtype", "float16", "--quiet"]
    result = subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    shard = torch.from_numpy(np.load(out / "shard_00000.npy")).double()
    mapped = output_range == "0,1"
    exact, tolerance = fp32_tolerance(
        sigmoid_module, noise(0, 0, 50, 64), lambda y: (2 * y - 1 if mapped else y).view(50, 1, 28, 28)
    )
    assert (shard - exact).abs().max().item() <= tolerance + 2**-12


def test_cli_sample_of_a_foreign_graph(other_onnx: Path, sigmoid_module: nn.Sequential, tmp_path: Path, capsys) -> None:
    args = ["sample", str(other_onnx), "--output-range", "0,1", "--n", "64", "--out", str(tmp_path / "run"), "--quiet"]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "running other.onnx, an ONNX generator made elsewhere: input 'noise' [batch, 64] -> output 'pixels' as "
        "(1, 28, 28), range [0, 1] mapped to [-1, 1] (2y - 1)"
    ) in out
    with torch.no_grad():
        expected = to_uint8((2 * sigmoid_module.double()(noise(0, 0, 64, 64).double()) - 1).view(64, 1, 28, 28))
    shard = torch.from_numpy(np.load(tmp_path / "run" / "shard_00000.npy"))
    assert (shard.int() - expected.int()).abs().max().item() <= 1  # fp32 vs float64 rounding at a half level


def test_bench_of_a_foreign_graph(other_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ceilings, "CPU_GEMM_SIZE", 256)  # the ceilings' size does not matter here: speed
    report = bench.run_bench(
        other_onnx,
        backends=["onnxruntime", "openvino", "eager"],
        batch_sizes=[16],
        device="cpu",
        import_options=ImportOptions(output_range=(0.0, 1.0)),
        **QUIET,
    )
    rows = {m.backend: m for m in report.results}
    assert rows["onnxruntime"].status == "ok" and rows["onnxruntime"].max_abs_error == 0.0
    assert rows["openvino"].status == "ok" and rows["openvino"].max_abs_error <= BENCH_MAX["fp32"]
    assert rows["eager"].status == "skipped" and "ONNX file runs on" in rows["eager"].note
    assert report.flops_per_sample == 2 * (64 * 128 + 128 * 784)
    assert rows["onnxruntime"].fraction_of_roofline is not None


def test_eval_of_a_foreign_graph(other_onnx: Path) -> None:
    report = evaluate(other_onnx, n=40, import_options=ImportOptions(output_range=(0.0, 1.0)))
    assert report.backend.startswith("onnxruntime") and report.samples == 40
    assert np.isfinite(report.generated.fid) and report.generated.fid > report.floor.fid


def test_foreign_graph_with_image_output(tmp_path: Path) -> None:
    """A [batch, 3, 8, 8] output says its own image shape; a flag that contradicts it is refused."""
    torch.manual_seed(14)
    module = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 192), nn.Tanh()).eval()
    path = mlp_graph(module, tmp_path / "img.onnx", "z_in", "img", output_dims=(3, 8, 8))
    graph = read_graph(path)
    assert (graph.input_name, graph.output_name, graph.config.image_shape) == ("z_in", "img", (3, 8, 8))
    assert graph.config.flops_per_sample == 2 * (10 * 16 + 16 * 192) and graph.foreign
    with pytest.raises(ConfigError, match=r"'img' is \['n', 3, 8, 8\], which image shape \(1, 8, 24\) does not fit"):
        read_graph(path, image_shape=(1, 8, 24))
    backend = open_backend(path, "onnxruntime", **QUIET)
    exact, tolerance = fp32_tolerance(module, noise(1, 0, 9, 10), lambda y: y.view(9, 3, 8, 8))
    assert (backend.generate_seeded(1, 0, 9).double() - exact).abs().max().item() <= tolerance


def test_foreign_graphs_gankit_cannot_run(tmp_path: Path, sigmoid_module: nn.Sequential) -> None:
    fixed = mlp_graph(sigmoid_module, tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(ConversionError, match="input 'noise' has a fixed batch of 1; export it with a dynamic batch"):
        read_graph(fixed)
    two = mlp_graph(sigmoid_module, tmp_path / "two.onnx", second_output=True)
    with pytest.raises(ConversionError, match=r"has inputs \['noise'\] and outputs \['pixels', 't3'\]: a generator"):
        read_graph(two)
    wide = mlp_graph(nn.Sequential(nn.Linear(4, 30), nn.Tanh()), tmp_path / "wide.onnx")
    with pytest.raises(ConfigError, match=r"output 'pixels' is \['n', 30\]: give its image shape with --image-shape"):
        read_graph(wide)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ExportError, match="empty.onnx: the file is empty"):
        read_graph(tmp_path / "empty.onnx")


def test_flags_a_file_does_not_take_are_refused(other_onnx: Path, tmp_path: Path, capsys) -> None:
    shipped = Path(__file__).resolve().parents[1] / "exported" / "generator.onnx"
    cases = [
        (["sample", str(other_onnx), "--slope", "0.1"], "other.onnx is an ONNX graph (its layers are inside it)"),
        (["sample", str(shipped), "--output-range", "0,1"], "generator.onnx is a gankit export: its metadata states"),
    ]
    for args, message in cases:
        code = main([*args, "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_foreign_graph_that_makes_nan_stops_sampling_and_eval_in_one_line(
    sigmoid_module: nn.Sequential, tmp_path: Path, capsys
) -> None:
    """Issue 22, 7: a foreign ONNX whose output is NaN wrote all-black images with exit 0, and eval of it ended in
    a LinAlgError traceback. Now both stop in one line naming the first bad sample; no shard is recorded."""
    broken = copy.deepcopy(sigmoid_module).float()  # another test may have left the shared module in float64
    with torch.no_grad():
        broken[2].weight[0, 0] = float("nan")
    path = mlp_graph(broken, tmp_path / "nan.onnx")
    out = tmp_path / "out"
    args = ["sample", str(path), "--n", "40", "--start", "5", "--shard-size", "20", "--out", str(out), "--quiet"]
    assert main([*args, "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit sample: error: sample 5 is not a finite image") and err.count("\n") == 1
    assert json.loads((out / "manifest.json").read_text())["shards"] == [] and not list(out.glob("shard_*"))
    assert main(["eval", str(path), "--n", "20", "--backend", "onnxruntime"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after eval's own "running ..." notice
    assert last.startswith("gankit eval: error: sample 0 is not a finite image")


def test_a_graph_onnxruntime_cannot_load_is_one_line(sigmoid_module: nn.Sequential, tmp_path: Path, capsys) -> None:
    """Issue 22, 8: onnxruntime failing to load a foreign graph (here opset 99) ended in a traceback."""
    path = mlp_graph(copy.deepcopy(sigmoid_module).float(), tmp_path / "g.onnx")  # loads at opset 17
    model = onnx.load(str(path))
    model.opset_import[0].version = 99
    onnx.save(model, str(path))
    assert main(["sample", str(path), "--n", "4", "--out", str(tmp_path / "o"), "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit sample: error: onnxruntime cannot load") and err.count("\n") == 1
