"""--backend auto on a CPU: measured once, cached, explained."""

from __future__ import annotations

import json
from pathlib import Path

import gankit.autoselect as autoselect


def test_fastest_candidate_wins_and_is_cached(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: ["eager", "onnxruntime"])
    calls = []

    def fake_rate(name, generator, precision, batch):
        calls.append((name, batch))
        return {"eager": 1000.0, "onnxruntime": 3000.0}[name]

    monkeypatch.setattr(autoselect, "_rate", fake_rate)
    name, why = autoselect.choose_cpu_backend(small_generator, "sha", "fp32", batch=99999)
    assert name == "onnxruntime"
    assert "measured once and cached" in why and "onnxruntime 3,000/s, eager 1,000/s" in why
    assert calls == [("eager", 4096), ("onnxruntime", 4096)]
    assert autoselect.choose_cpu_backend(small_generator, "sha", "fp32", batch=4096)[0] == "onnxruntime"
    assert len(calls) == 2, "the second choice must come from the cache"
    autoselect.choose_cpu_backend(small_generator, "another-model", "fp32", batch=4096)
    assert len(calls) == 4, "another model is measured anew"


def test_real_timing_path_writes_the_cache(tmp_path: Path, monkeypatch, small_generator) -> None:
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "_candidates", lambda precision: ["eager", "eager"])  # real timing, no fakes
    name, why = autoselect.choose_cpu_backend(small_generator, "sha", "fp32", batch=32)
    assert name == "eager" and "eager" in why
    assert (tmp_path / "auto-backend.json").is_file()


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
    monkeypatch.setattr(autoselect, "_rate", lambda name, generator, precision, batch: measured[(name, precision)][0])
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
    name, precision, why = autoselect.choose_cpu_path(small_generator, "sha", batch=4096)
    assert (name, precision) == ("eager", "bf16")
    assert "onnxruntime/int8 400/s, MNIST-FID +7.5% vs fp32 (over tolerance)" in why
    assert "eager/bf16 250/s, MNIST-FID +2.0% vs fp32" in why and "measured once and cached" in why
    count = len(calls)
    assert autoselect.choose_cpu_path(small_generator, "sha", batch=4096)[:2] == ("eager", "bf16")
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
    name, precision, why = autoselect.choose_cpu_path(small_generator, "sha", batch=64)
    assert (name, precision) in {("eager", "fp32"), ("onnxruntime", "int8")}
    assert "grey levels from fp32" in why and "eager/fp32" in why and "onnxruntime/int8" in why
    cached = json.loads((tmp_path / "auto-backend.json").read_text())
    (entry,) = cached.values()
    assert entry["eager/fp32"]["mean_levels"] == 0.0 and 0 < entry["onnxruntime/int8"]["mean_levels"] < 5


def test_sample_cli_precision_auto(tmp_path: Path, monkeypatch, capsys) -> None:
    from gankit.cli import main

    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autoselect, "choose_cpu_path", lambda generator, sha, batch: ("eager", "bf16", "because"))
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
