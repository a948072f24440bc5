"""--backend auto / --precision auto on a CPU: measured once per machine and model, cached, explained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import gankit.backends.autoselect as autoselect
import gankit.cache as cache
from gankit.backends import create_backend
from gankit.backends.resolve import open_backend
from gankit.checkpoint import save_generator
from gankit.errors import BackendError


def test_fastest_candidate_wins_and_is_cached(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: ["eager", "onnxruntime"])
    calls = []

    def fake_rate(name, generator, precision):
        calls.append(name)
        return {"eager": 1000.0, "onnxruntime": 3000.0}[name]

    monkeypatch.setattr(autoselect, "_rate", fake_rate)
    name, why = autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    assert name == "onnxruntime"
    assert "measured once per machine and model" in why and "onnxruntime 3,000/s, eager 1,000/s" in why
    assert calls == ["eager", "onnxruntime"] * autoselect.ROUNDS  # interleaved rounds
    assert autoselect.choose_cpu_backend(small_generator, "sha", "fp32")[0] == "onnxruntime"
    assert len(calls) == 2 * autoselect.ROUNDS, "the second choice must come from the cache"
    autoselect.choose_cpu_backend(small_generator, "another-model", "fp32")
    assert len(calls) == 4 * autoselect.ROUNDS, "another model is measured anew"


def test_a_busy_moment_does_not_decide_for_later_runs(tmp_path: Path, monkeypatch, small_generator) -> None:
    """Issue 22, 9: one measurement while other processes came and went ranked eager first, and every later run
    used it. Now each candidate's best of interleaved rounds counts, the load it was taken under is recorded,
    and a choice made on a busy machine is measured again once the machine is quiet."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: ["eager", "openvino"])
    monkeypatch.setattr(cache, "compute_threads", lambda: 2)
    load = {"now": 6.0}
    monkeypatch.setattr(cache.os, "getloadavg", lambda: (load["now"], 0.0, 0.0))
    calls = []

    def fake_rate(name, generator, precision):
        calls.append(name)
        if name == "openvino" and len(calls) == 2:  # the busy moment hits openvino's first timing only
            return 80_000.0
        return {"eager": 120_000.0, "openvino": 200_000.0}[name]

    monkeypatch.setattr(autoselect, "_rate", fake_rate)
    assert autoselect.choose_cpu_backend(small_generator, "sha", "fp32")[0] == "openvino"
    conditions = json.loads(cache.conditions_file().read_text())
    assert [entry["busy_cores"] for entry in conditions.values()] == [4.0]
    measured = len(calls)
    autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    assert len(calls) == measured, "as busy as when measured: the cache stands"
    load["now"] = 2.0  # quiet: only this process's threads
    autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    assert len(calls) == 2 * measured, "measured under load, the machine now quiet: measured again"
    autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    assert len(calls) == 2 * measured, "measured quiet: the cache stands"
    cache.conditions_file().unlink()  # a cache without its conditions (an older gankit's) is measured again
    autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    assert len(calls) == 3 * measured


class _Slow:
    """A backend that takes at least ``seconds`` a call (the real timing path must see it)."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def generate(self, z, output="float"):
        time.sleep(self.seconds)
        return self.inner.generate(z, output=output)


def test_real_timing_picks_the_faster_and_records_true_rates(tmp_path: Path, monkeypatch, small_generator) -> None:
    """No fake rates: one of two real eager backends sleeps 0.5 s a call, so its measured rate must stay
    under 4096 / 0.5 samples/s, the other must be measured faster, and the faster must win."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: ["eager", "onnxruntime"])

    def build(name, generator, precision, device):
        eager = create_backend("eager", generator, precision=precision, device=device)
        return _Slow(eager, 0.5) if name == "onnxruntime" else eager

    monkeypatch.setattr(autoselect, "create_backend", build)
    name, _ = autoselect.choose_cpu_backend(small_generator, "sha", "fp32")
    (rates,) = json.loads((tmp_path / "auto-backend.json").read_text()).values()
    assert rates["onnxruntime"] < autoselect.CALIBRATION_BATCH / 0.5
    assert rates["eager"] > rates["onnxruntime"] and name == "eager"


def test_a_precision_only_one_backend_has_picks_that_backend(tmp_path: Path, monkeypatch, small_generator) -> None:
    """--precision int8 --backend auto: onnxruntime, the only CPU backend with int8 (not eager, which has none)."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    path = save_generator(tmp_path / "g.safetensors", small_generator)
    logged = []
    backend = open_backend(path, "auto", "int8", device="cpu", log=logged.append)
    assert backend.name == "onnxruntime" and backend.precision == "int8"
    assert logged == ["backend auto -> onnxruntime (the only CPU backend here with int8)"]
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: [])
    with pytest.raises(BackendError, match="no backend available on this CPU runs int8"):
        open_backend(path, "auto", "int8", device="cpu", log=logged.append)


# ----------------------------------------------------------------------------- --precision auto


def fake_paths(monkeypatch, measured: dict[tuple[str, str], tuple[float, float]]) -> list:
    """Replace measurement: (backend, precision) -> (samples/s, MNIST-FID); eager fp32's FID is the reference."""
    calls = []
    monkeypatch.setattr(autoselect, "_paths", lambda: list(measured))

    def fake_images(name, generator, precision):
        calls.append((name, precision))
        return (name, precision)

    def fake_quality(images, reference, reference_quality=None):
        return {
            "mean_levels": 0.5,
            "fid": measured[images][1],
            "fid_fp32": measured[("eager", "fp32")][1],
            "min_coverage_ratio": 0.9,
        }

    monkeypatch.setattr(autoselect, "_seeded_images", fake_images)
    monkeypatch.setattr(autoselect, "_quality", fake_quality)
    monkeypatch.setattr(autoselect, "_reference_quality", lambda reference: None)
    monkeypatch.setattr(autoselect, "_rate", lambda name, generator, precision: measured[(name, precision)][0])
    return calls


def test_precision_auto_skips_paths_over_the_quality_tolerance(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    calls = fake_paths(
        monkeypatch,
        {
            ("eager", "fp32"): (100.0, 200.0),
            ("onnxruntime", "int8"): (400.0, 215.0),  # fastest, but MNIST-FID +7.5%: over the 5% tolerance
            ("eager", "bf16"): (250.0, 204.0),  # +2%: within
            ("onnxruntime", "fp32"): (150.0, 200.0),
        },
    )
    name, precision, why = autoselect.choose_cpu_path(small_generator, "sha")
    assert (name, precision) == ("eager", "bf16")
    assert "onnxruntime/int8 400/s, MNIST-FID +7.5% vs fp32 (over tolerance)" in why
    assert "eager/bf16 250/s, MNIST-FID +2.0% vs fp32" in why and "measured once per machine and model" in why
    count = len(calls)
    assert autoselect.choose_cpu_path(small_generator, "sha")[:2] == ("eager", "bf16")
    assert len(calls) == count, "the second choice must come from the cache"


def test_quality_rule() -> None:
    base = {"mean_levels": 0.7, "fid_fp32": 100.0, "min_coverage_ratio": 0.9}
    assert autoselect.quality_ok({**base, "fid": 104.9})
    assert not autoselect.quality_ok({**base, "fid": 105.1})
    assert not autoselect.quality_ok({**base, "fid": 100.0, "min_coverage_ratio": 0.4})  # a digit half gone
    assert autoselect.quality_ok({"mean_levels": 0.9}) and not autoselect.quality_ok({"mean_levels": 1.1})


def test_bf16_is_a_candidate_only_where_the_cpu_has_it(monkeypatch) -> None:
    from gankit.cpu import CpuInfo

    monkeypatch.setattr(autoselect, "cpu_info", lambda: CpuInfo("test cpu", frozenset({"avx2"})))
    paths = autoselect._paths()
    assert paths[0] == ("eager", "fp32") and ("onnxruntime", "int8") in paths
    assert not any(precision == "bf16" for _, precision in paths)
    monkeypatch.setattr(autoselect, "cpu_info", lambda: CpuInfo("test cpu", frozenset({"avx512_bf16"})))
    assert ("eager", "bf16") in autoselect._paths()


def test_precision_auto_measures_for_real_and_says_why(tmp_path: Path, monkeypatch, small_generator) -> None:
    """No fakes: a 10x10 generator is judged by its mean pixel difference from eager fp32."""
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_paths", lambda: [("eager", "fp32"), ("onnxruntime", "int8")])
    name, precision, why = autoselect.choose_cpu_path(small_generator, "sha")
    assert "grey levels from fp32" in why and "eager/fp32" in why and "onnxruntime/int8" in why
    cached = json.loads((tmp_path / "auto-backend.json").read_text())
    (entry,) = cached.values()
    assert entry["eager/fp32"]["mean_levels"] == 0.0 and 0 < entry["onnxruntime/int8"]["mean_levels"] < 5
    keeping = {label: e for label, e in entry.items() if autoselect.quality_ok(e)}
    assert f"{name}/{precision}" == max(keeping, key=lambda label: keeping[label]["rate"])


def test_sample_cli_precision_auto(tmp_path: Path, monkeypatch, capsys) -> None:
    from gankit.cli import main

    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "choose_cpu_path", lambda generator, sha: ("eager", "bf16", "because"))
    assert main(["sample", "--precision", "auto", "--n", "8", "--out", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "precision auto -> eager bf16 (because)" in out and (tmp_path / "g.png").is_file()
    assert (
        main(
            ["sample", "--precision", "auto", "--backend", "onnxruntime", "--n", "8", "--out", str(tmp_path / "h.png")]
        )
        == 2
    )
    assert "use it with --backend auto" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the CLI and torchrun


def test_tf32_on_a_cpu_is_refused_in_one_line(tmp_path: Path, capsys, small_generator) -> None:
    """Issue 22, 11: --precision tf32 on a CPU ran fp32 silently (tf32 is a mode of GPU tensor cores)."""
    from gankit.cli import main

    model = save_generator(tmp_path / "g.safetensors", small_generator)
    args = ["sample", str(model), "--precision", "tf32", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main([*args, "--backend", "eager"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit sample: error: --precision tf32 is a GPU mode") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_sample_cli_any_precision_with_backend_auto(tmp_path: Path, monkeypatch, capsys, small_generator, precision):
    """``gankit sample --precision P`` (--backend auto): a backend that has P, and shards made with it."""
    from gankit.backends import backend_class
    from gankit.cli import main

    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    model = save_generator(tmp_path / "g.safetensors", small_generator)
    out = tmp_path / "out"
    args = ["sample", str(model), "--precision", precision, "--n", "300", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    job = json.loads((out / "manifest.json").read_text())["job"]
    assert job["precision"] == precision and precision in backend_class(job["backend"]).precisions
    assert f"backend auto -> {job['backend']} (" in capsys.readouterr().out
    assert len(list(out.glob("shard_*.npy"))) == 1


CALIBRATION_SPY = """
import json, os
import gankit.backends.autoselect as autoselect

autoselect._paths = lambda: [("eager", "fp32"), ("onnxruntime", "int8")]
_real = autoselect.cached


def _spied(key, measure):
    def logged():
        with open(os.environ["SPY_LOG"], "a") as log:
            log.write(json.dumps({"rank": os.environ.get("RANK"), "key": json.loads(key)[0]}) + "\\n")
        return measure()

    return _real(key, logged)


autoselect.cached = _spied
"""


@pytest.mark.slow
def test_torchrun_ranks_calibrate_once(tmp_path: Path, small_generator) -> None:
    """Two gloo ranks, --precision auto, an empty cache: rank 0 measures the paths once, both ranks use its choice."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "spy").mkdir()
    (tmp_path / "spy" / "sitecustomize.py").write_text(CALIBRATION_SPY)  # runs first in every process
    model = save_generator(tmp_path / "g.safetensors", small_generator)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "spy"), str(root)]),
        "GANKIT_CACHE_DIR": str(tmp_path / "cache"),
        "SPY_LOG": str(tmp_path / "calibrations.jsonl"),
        "OMP_NUM_THREADS": "1",
    }
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["-m", "gankit", "sample", str(model), "--num-samples", "500", "--shard-size", "100", "--batch-size", "50"]
    args += ["--precision", "auto", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")]
    run = subprocess.run([*launcher, *args], cwd=root, env=env, capture_output=True, text=True, check=True)
    calibrations = [json.loads(line) for line in (tmp_path / "calibrations.jsonl").read_text().splitlines()]
    assert calibrations == [{"rank": "0", "key": "precision-auto"}], run.stdout
    assert run.stdout.count("precision auto -> ") == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["samples"] == 500
    assert (manifest["job"]["backend"], manifest["job"]["precision"]) in [("eager", "fp32"), ("onnxruntime", "int8")]
