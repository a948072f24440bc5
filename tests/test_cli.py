"""The CLI end to end: help, train -> info -> sample, Ctrl-C, and one-line errors with exit code 2; every default
--help shows is its library owner's; --debug anywhere."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.checkpoint import load_generator, load_state
from gankit.cli import build_parser, main
from gankit.data import load_bundled
from gankit.errors import GankitError

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "sample", "info", "bench", "demo")


def gankit(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gankit", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=load_bundled()[0][:100, 0].numpy())
    return path


# The tests of ``trained`` run on one worker: one training, and the sample runs of its generator share one choice of
# --backend auto in the session's cache (another worker's training would be another file to measure for).
TRAINED_RUN = pytest.mark.xdist_group("cli-trained-run")


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("cli") / "run"
    args = ["--data", str(tiny_data), "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--seed", "5"]
    return out, gankit("train", "--out", str(out), *args)


def test_top_level_help_through_the_console_script() -> None:
    script = Path(sys.executable).parent / "gankit"  # installed by [project.scripts]
    result = subprocess.run([str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gankit")
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("train", "--resume"),
        ("sample", "--num-samples"),
        ("info", "--json"),
        ("bench", "--batch-sizes"),
        ("demo", "--epochs"),
    ],
)
def test_subcommand_help(command: str, option: str) -> None:
    result = gankit(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: gankit {command}") and option in result.stdout


@TRAINED_RUN
def test_train_one_epoch(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, result = trained
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("done: 1 epoch; ")
    assert "Traceback" not in result.stderr
    generator = load_generator(out / "generator.safetensors")
    assert generator.config.image_shape == (1, 28, 28)
    assert (out / "samples" / "epoch_0001.png").is_file() and (out / "losses.png").is_file()
    assert load_state(out / "train_state.pt")["epoch"] == 1


@TRAINED_RUN
def test_info_text_and_json(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = trained
    path = out / "generator.safetensors"
    text = gankit("info", str(path))
    assert text.returncode == 0, text.stderr
    lines = dict(line.strip().split(": ", 1) for line in text.stdout.strip().splitlines())
    assert lines["parameters"] == str(load_generator(path).config.parameter_count)
    assert lines["path"] == str(path) and len(lines["sha256"]) == 64

    as_json = gankit("info", str(path), "--json")
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    assert info["config"]["hidden"] == [256, 512] and info["config"]["image_shape"] == [1, 28, 28]
    assert info["training"]["epochs"] == 1 and info["training"]["batch_size"] == 32
    assert info["sha256"] == lines["sha256"]


def test_bundled_generators_by_name(tmp_path: Path) -> None:
    """'conditional' and 'unconditional' name the bundled files; a file of that name in the working folder wins."""
    from gankit.checkpoint import PRETRAINED, PRETRAINED_CONDITIONAL

    conditional = json.loads(gankit("info", "conditional", "--json", cwd=tmp_path).stdout)
    assert conditional["path"] == str(PRETRAINED_CONDITIONAL) and conditional["config"]["num_classes"] == 10
    unconditional = json.loads(gankit("info", "unconditional", "--json", cwd=tmp_path).stdout)
    assert unconditional["path"] == str(PRETRAINED) and unconditional["config"]["num_classes"] == 0
    (tmp_path / "conditional").write_bytes(b"not a generator")
    local = gankit("info", "conditional", "--json", cwd=tmp_path)
    assert local.returncode == 2 and local.stderr.startswith("gankit info: error: conditional: "), local.stderr


@TRAINED_RUN
def test_sample_grid_png(trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out, _ = trained
    target = tmp_path / "grid.png"
    result = gankit("sample", str(out / "generator.safetensors"), "--n", "16", "--out", str(target), "--quiet")
    assert result.returncode == 0, result.stderr
    with Image.open(target) as grid:
        assert grid.format == "PNG" and grid.size == (4 * 30 + 2, 4 * 30 + 2)


@TRAINED_RUN
def test_sample_npy(trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out, _ = trained
    folder = tmp_path / "npy"
    result = gankit(
        "sample", str(out / "generator.safetensors"), "--n", "10", "--format", "npy", "--out", str(folder), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    images = np.concatenate([np.load(p) for p in sorted(folder.glob("*.npy"))])
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.uint8
    assert images.std() > 0


@TRAINED_RUN
def test_a_log_gets_no_progress_bar(trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    """Without --quiet, a sample run whose output goes to a file or pipe (not a terminal) draws no bar: the log
    holds the result line, not hundreds of carriage-return redraws."""
    out, _ = trained
    result = gankit(
        "sample", str(out / "generator.safetensors"), "--n", "300", "--shard-size", "100", "--out", str(tmp_path / "s")
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "sample/s]" not in result.stderr, result.stderr
    assert "300 samples" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "missing.safetensors"], "missing.safetensors: no such checkpoint file"),
        (["sample", "missing.safetensors", "--out", "x.png"], "missing.safetensors: no such checkpoint file"),
        (["sample", "--n", "0", "--out", "x.png"], "--n must be positive"),
        (["train", "--data", "cifar-10", "--out", "run"], "unknown data source 'cifar-10'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = gankit(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"gankit {args[0]}: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "0"], "epochs must be a positive whole number"),
        (["train", "--lr", "-1"], "lr must be positive"),
        (["train", "--slope", "1.5"], "slope must be in"),
        (["train", "--resume"], "no such training-state file"),
        (["info", "not_a_checkpoint.safetensors"], "not a readable safetensors file"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not_a_checkpoint.safetensors").write_text("hello")
    assert main([*args, "--out", "run"] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gankit {args[0]}: error: ") and message in err and err.count("\n") == 1


def test_offline_torchvision_set_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision.datasets.mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    code = main(["train", "--data", "fashion-mnist", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit train: error: could not find or download fashion-mnist") and err.count("\n") == 1
    assert "--data mnist-5k" in err and "--data-dir" in err


@pytest.mark.slow
def test_sigint_saves_exits_130_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "gankit", "train", "--out", str(out), "--data", str(tiny_data)]
    command += ["--epochs", "100000", "--batch-size", "16", "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "samples" / "epoch_0002.png").exists():  # training (and its Ctrl-C handler) is running
            assert process.poll() is None, process.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stdout.startswith("interrupted, saved: ") and f"gankit train --out {out} --resume" in stdout
    epochs = int(stdout.split(": ", 1)[1].split()[0])
    state = load_state(out / "train_state.pt")
    assert state["epoch"] == epochs >= 2
    assert len(state["history"]) == epochs * 7 + state["step"]  # 100 images / batch 16 = 7 steps an epoch
    load_generator(out / "generator.safetensors")

    resumed = gankit("train", "--out", str(out), "--resume", "--epochs", str(epochs + 1))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.startswith(f"done: {epochs + 1} epochs")
    assert load_state(out / "train_state.pt")["epoch"] == epochs + 1


@pytest.mark.slow
def test_resume_without_epochs_keeps_the_saved_total(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", str(tiny_data), "--epochs", "1", "--batch-size", "32", "--device", "cpu"]
    assert gankit("train", "--out", str(out), *args).returncode == 0
    before = (out / "generator.safetensors").read_bytes()
    result = gankit("train", "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert "done: 1 epoch; " in result.stdout
    assert (out / "generator.safetensors").read_bytes() == before


def test_info_json_is_valid_json_even_with_nan_in_the_metadata(tmp_path: Path, capsys) -> None:
    """Issue 22, 12: a NaN in the training metadata made `gankit info --json` print NaN (invalid JSON)."""
    from gankit.checkpoint import save_generator
    from gankit.config import GeneratorConfig
    from gankit.model import Generator

    path = save_generator(tmp_path / "g.safetensors", Generator(GeneratorConfig(hidden=(8,))), {"fid": float("nan")})
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and json.loads(out)["training"]["fid"] is None


def test_a_reader_that_goes_away_is_one_line_not_a_traceback() -> None:
    """Issue 22, 12: `gankit info --json | head` ended in BrokenPipeError; the pipe's reader is closed at once."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gankit", "info", "--json"],
            cwd=ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["gankit info: error: the output was closed before it was all written"]


def test_outputs_that_cannot_be_written_are_one_line_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, 8: eval, import and export with --out under a regular file (as on a read-only file system) ended
    in a traceback, eval after all its work; now one line, exit 2, before any work."""
    import gankit.evaluate

    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(gankit.evaluate, "evaluate", lambda *a, **k: pytest.fail("eval worked before the check"))
    for args in (
        ["eval", "--n", "20", "--out", str(tmp_path / "file" / "r.json")],
        ["import", "conditional", "--out", str(tmp_path / "file" / "g.safetensors")],
        ["export", "--out", str(tmp_path / "file" / "g.onnx")],
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"gankit {args[0]}: error: cannot write --out") and err.count("\n") == 1, err


def test_an_os_error_anywhere_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Issue 22, 8: one handler for every failure of the outside world (here a full disk in the middle of info)."""
    import errno

    import gankit.models

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/file")

    monkeypatch.setattr(gankit.models, "model_info", full)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err == "gankit info: error: No space left on device: /somewhere/file\n"


def test_export_without_out_writes_into_the_working_folder_and_never_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, 13: export with no --out replaced exported/generator.onnx of the working folder (in a checkout,
    the tracked file); now ./generator.onnx, refused when it exists unless --force."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "generator.onnx").write_bytes(b"mine")
    assert main(["export"]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "generator.onnx").read_bytes() == b"mine"
    assert main(["export", "--force"]) == 0
    assert (tmp_path / "generator.onnx").read_bytes() != b"mine" and not (tmp_path / "exported").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--debug", "info", "missing.safetensors"],
        ["info", "--debug", "missing.safetensors"],
        ["info", "missing.safetensors", "--debug"],
    ],
    ids=["before the command", "after the command", "last"],
)
def test_debug_anywhere_raises_instead_of_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GankitError, match="missing.safetensors: no such checkpoint file"):
        main(args)
    assert main([a for a in args if a != "--debug"]) == 2  # without it: the one line
    assert capsys.readouterr().err.startswith("gankit info: error: missing.safetensors")


def _command(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def _owner_default(owner: object, name: str) -> object:
    if dataclasses.is_dataclass(owner):
        return {f.name: f.default for f in dataclasses.fields(owner)}[name]
    return inspect.signature(owner).parameters[name].default


@pytest.mark.parametrize(
    ("command", "owner", "names"),
    [
        ("sample", "gankit.sampling.job:SampleJob", "seed start backend precision batch_size dtype shard_size device "
         "compile_mode engine"),
        ("eval", "gankit.evaluate:evaluate", "backend precision seed n"),
        ("eval", "gankit.backends.resolve:open_backend", "backend precision"),
        ("bench", "gankit.perf.bench:run_bench", "output device compile_mode"),
        ("bench", "gankit.backends.resolve:open_backend", "device compile_mode"),
        ("export", "gankit.export:export", "precision output"),
        ("demo", "gankit.demo:run_demo", "epochs"),
        ("train", "gankit.training.presets:build_config", "preset"),
    ],
)  # fmt: skip
def test_every_default_is_its_library_owners(command: str, owner: str, names: str) -> None:
    """What an option left out means on the command line is what the library function or dataclass it goes to
    does by default (eval, bench and demo import torch: their defaults are held here, not read at parse time)."""
    module, _, attribute = owner.partition(":")
    owner_object = getattr(__import__(module, fromlist=[attribute]), attribute)
    parser = _command(command)
    assert {name: parser.get_default(name) for name in names.split()} == {
        name: _owner_default(owner_object, name) for name in names.split()
    }


def test_help_shows_what_the_dataclass_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bracketed defaults are read from the owners: change the dataclass and --help follows."""
    from gankit.config import TrainConfig
    from gankit.onnx.quantize import Int8Options
    from gankit.sampling.job import SampleJob

    for owner, name, value in (
        (SampleJob, "shard_size", 1234),
        (Int8Options, "calibration_samples", 4321),
        (Int8Options, "calibration", "entropy"),
        (TrainConfig, "r1_every", 7),
    ):
        monkeypatch.setattr(next(f for f in dataclasses.fields(owner) if f.name == name), "default", value)
    assert _command("sample").get_default("shard_size") == 1234 and "[1234]" in _command("sample").format_help()
    assert "[4321]" in _command("export").format_help() and "[entropy]" in _command("export").format_help()
    assert "[7]" in _command("train").format_help()


def test_bench_help_and_defaults_share_one_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """gankit bench's device defaults live in gankit.perf (torch-free): --help shows them and run_bench's
    ``default_backends`` picks from them."""
    import gankit.perf as perf
    from gankit.perf.bench import default_backends

    monkeypatch.setitem(perf.BATCH_SIZES, "CPU", (3, 5))
    monkeypatch.setitem(perf.BACKENDS, "CPU", ("onnxruntime", "eager"))
    text = " ".join(_command("bench").format_help().split())
    assert "CPU: 3,5]" in text and "CPU: onnxruntime,eager;" in text
    assert default_backends(on_gpu=False) == ["onnxruntime", "eager"]
    assert default_backends(on_gpu=True) == list(perf.BACKENDS["GPU"])


def _bracket(command: str, flag: str) -> str:
    action = next(a for a in _command(command)._actions if flag in a.option_strings)
    return action.help.rsplit("[", 1)[1].rstrip("]")


def test_the_import_flags_show_what_leaving_them_out_does(tmp_path: Path) -> None:
    """Giving each import flag the default its help shows reads a file as leaving the flag out does."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    from gankit.models import ImportOptions, load
    from gankit.onnx.graph import read_graph

    shown = {flag: _bracket("sample", flag) for flag in ("--hidden-act", "--slope", "--output-act", "--image-shape",
                                                         "--bn-eps", "--output-range")}  # fmt: skip
    assert shown == {"--hidden-act": "leaky_relu", "--slope": "0.2", "--output-act": "tanh",
                     "--image-shape": "1,28,28", "--bn-eps": "1e-5", "--output-range": "-1,1"}  # fmt: skip
    torch.manual_seed(0)
    chain = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 784)
    )
    chain[1].running_var.uniform_(1e-6, 1e-5)  # so that eps matters
    torch.save(chain.state_dict(), tmp_path / "G.pth")
    given = ImportOptions(
        hidden_act=(shown["--hidden-act"],),
        slope=(float(shown["--slope"]),),
        output_act=shown["--output-act"],
        image_shape=tuple(int(size) for size in shown["--image-shape"].split(",")),
        bn_eps=float(shown["--bn-eps"]),
    )
    left_out, explicit = (load(tmp_path / "G.pth", options, log=lambda line: None) for options in (None, given))
    assert explicit.config == left_out.config
    for name, tensor in left_out.generator().state_dict().items():
        assert torch.equal(explicit.generator().state_dict()[name], tensor), name

    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [8, 784], [0.0] * 8 * 784)
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 28, 28])
    nodes = [
        helper.make_node("MatMul", ["z", "w"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(nodes, "foreign", [z], [image], [weight, shape])
    onnx.save(helper.make_model(graph), tmp_path / "foreign.onnx")
    output_range = tuple(float(v) for v in shown["--output-range"].split(","))
    assert read_graph(tmp_path / "foreign.onnx", output_range=output_range).config == (
        read_graph(tmp_path / "foreign.onnx").config
    )


def test_eval_needs_20_samples_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--n", "19"]) == 2
    assert capsys.readouterr().err == "gankit eval: error: --n must be at least 20 for a covariance estimate, got 19\n"
