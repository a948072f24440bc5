"""--backend auto on a CPU: measured once, cached, explained."""

from __future__ import annotations

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
