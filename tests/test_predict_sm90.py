"""The on-paper sm_90 model (benchmarks/predict_sm90.py) and the offline compile's bookkeeping
(benchmarks/compile_kernels_sm90.py): arithmetic on synthetic rows, restated here by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import compile_kernels_sm90 as offline
from benchmarks import predict_sm90 as model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

H100 = model.DEVICES["H100 SXM"]


def generator_row(**changes) -> dict:
    row = {
        "id": "generator-bf16-z-float-uncond-M64-K32-H32-s2-w8-st2",
        "kernel": "generator",
        "precision": "bf16",
        "reads_z": True,
        "output": "float",
        "conditional": False,
        "config": [64, 32, 32, 2, 8, 2],
        "blocks_per_sm": 1,
        "ops": {"HGMMA": 36, "FFMA": 10},
        "fits": True,
    }
    return {**row, **changes}


def test_a_generator_variant_by_hand() -> None:
    got = model.predict_generator(generator_row(), H100)
    # executed: 2 output blocks of 512 columns, each (K 100 -> 128) x 256 + 256 x 512 + 512 x 512
    flops = 2 * 2 * (128 * 256 + 256 * 512 + 512 * 512)
    # L2: each of the 2 blocks reads W1, W2 (bf16) and b1, b2 (fp32); the pair reads W3 and b3 once; over 64 samples
    l2 = (2 * ((100 * 256 + 256 * 512) * 2 + (256 + 512) * 4) + 512 * 784 * 2 + 784 * 4) / 64
    hbm = 100 * 4 + 784 * 4
    ceilings = got["ceilings_samples_per_s"]
    assert ceilings["tensor_core"] == pytest.approx(989.4e12 / flops)
    assert ceilings["l2"] == pytest.approx(5.5e12 / l2)
    assert ceilings["hbm"] == pytest.approx(3.35e12 * 0.9 / hbm)
    assert got["binds"] == "l2"
    programs, slots = (65536 // 64) * 2, 132
    assert got["wave_efficiency"] == pytest.approx(programs / slots / math.ceil(programs / slots))
    assert got["predicted_samples_per_s"] == pytest.approx(0.7 * 5.5e12 / l2 * got["wave_efficiency"])


def test_instruction_kind_conditional_and_uint8_change_the_ceilings() -> None:
    base = model.predict_generator(generator_row(), H100)["ceilings_samples_per_s"]
    hmma = model.predict_generator(generator_row(ops={"HMMA": 4}), H100)["ceilings_samples_per_s"]
    assert hmma["tensor_core"] == pytest.approx(base["tensor_core"] * 0.6)
    none = model.predict_generator(generator_row(ops={"FFMA": 4}), H100)["ceilings_samples_per_s"]
    assert none["tensor_core"] == pytest.approx(base["tensor_core"] * 66.9 / 989.4)  # the FP32 cores
    fp32 = model.predict_generator(generator_row(precision="fp32"), H100)["ceilings_samples_per_s"]
    assert fp32["l2"] < base["l2"] / 1.9  # 4-byte weights: about twice the L2 bytes
    cond = model.predict_generator(generator_row(conditional=True), H100)["ceilings_samples_per_s"]
    assert 5.5e12 / cond["l2"] - 5.5e12 / base["l2"] == pytest.approx(2 * 256 * 4)  # a class-bias row a block
    assert 3.35e12 * 0.9 / cond["hbm"] == pytest.approx(3536 + 8)  # the int64 label
    seed = model.predict_generator(generator_row(reads_z=False, output="uint8"), H100)["ceilings_samples_per_s"]
    assert 3.35e12 * 0.9 / seed["hbm"] == pytest.approx(784)


def test_a_layer_and_the_libraries_by_hand() -> None:
    row = {"precision": "bf16", "layer": 3, "conditional": False, "config": [128, 256, 64, 8, 3], "blocks_per_sm": 1}
    row["ops"] = {"HGMMA": 8}
    got = model.predict_layer(row, H100)
    flops = 2 * 65536 * 512 * 1024  # N 784 padded to 4 blocks of 256
    hbm = 65536 * (512 + 784) * 2 + 512 * 784 * 2
    l2 = 512 * 4 * 512 * (256 + 128) * 2  # 512 x 4 programs, each a 512 x 256 slice of W and 128 rows of x
    seconds = max(flops / 989.4e12, l2 / 5.5e12, hbm / (3.35e12 * 0.9))
    programs = 512 * 4
    waves = programs / 132 / math.ceil(programs / 132)
    assert got["predicted_s"] == pytest.approx(seconds / 0.7 / waves)
    rates = model.library_rates("bf16", H100)
    gemm = sum(
        max(2 * 65536 * k * n / (0.7 * 989.4e12), (65536 * (k + n) + k * n) * 2 / (3.35e12 * 0.9))
        for k, n in ((100, 256), (256, 512), (512, 784))
    )
    passes = sum(2 * 65536 * n * 2 / (3.35e12 * 0.9) for n in (256, 512, 784))
    assert rates["eager"]["samples_per_s"] == pytest.approx(65536 / (gemm + passes + 6 * 2e-6))
    assert rates["compile-max-autotune"]["samples_per_s"] == pytest.approx(65536 / (gemm + 3 * 2e-6))


def test_a_variant_that_does_not_fit_gets_no_prediction() -> None:
    record = {
        "environment": {"triton": "x", "ptxas": "y"},
        "rows": [generator_row(), generator_row(id="spills", fits=False)],
    }
    rows = model.predict(record)["devices"]["H100 SXM"]["generator"]
    assert "predicted_samples_per_s" in rows[0]
    assert "not_launched" in rows[1] and "predicted_samples_per_s" not in rows[1]


def test_measured_beside_predicted_from_a_synthetic_tune_file(tmp_path: Path) -> None:
    record = {"environment": {"triton": "x", "ptxas": "y"}, "rows": [generator_row()]}
    prediction = model.predict(record)
    expected = prediction["devices"]["H200"]["generator"][0]["predicted_samples_per_s"]
    eager = prediction["devices"]["H200"]["libraries"]["bf16"]["eager"]["samples_per_s"]
    measured = {
        "environment": {"gpu": "NVIDIA H200"},
        "baselines": {"eager": eager / 2},
        "throughput": [
            {"case": "z-float", "label": "M64-K32-H32-s2-w8-st2", "batch": 65536, "samples_per_s": expected * 1.5},
            {"case": "z-float", "label": "M99-K32-H32-s2-w8-st2", "batch": 65536, "samples_per_s": 1e8},
        ],
        "sampling": [],
    }
    lines = model.measured_beside_predicted(measured, prediction)
    assert "H200" in lines[0]
    assert any(line.strip().startswith("eager") and line.endswith("(0.50x)") for line in lines)
    assert any("M64-K32-H32-s2-w8-st2" in line and line.endswith("(1.50x)") for line in lines)
    assert any("M99" in line and line.endswith("predicted -") for line in lines)
    (tmp_path / "sm90-prediction-2026-01-01.json").write_text(json.dumps(prediction))
    assert model.beside_latest(measured, tmp_path) == lines
    assert model.beside_latest(measured, tmp_path / "none") == []


def test_occupancy_by_hand() -> None:
    # 254 registers -> 8,192 a warp (units of 256); 8 warps: 65,536, the whole file; 128 KB of shared memory: 1 block
    got = offline.occupancy(254, 131072, 8)
    assert (got["blocks_per_sm"], got["occupancy"], got["occupancy_limited_by"]) == (1, 8 / 64, "registers")
    got = offline.occupancy(128, 0, 4)  # 16,384 registers a block: 4 blocks
    assert (got["blocks_per_sm"], got["warps_per_sm"]) == (4, 16)
    assert offline.occupancy(64, 300_000, 4)["blocks_per_sm"] == 0  # over 227 KB: does not launch


def test_the_instruction_mix_reads_both_sass_formats() -> None:
    sass = "\n".join(
        [
            "Function:generator_kernel",
            "--:-:1:-:1\tLDC R1, c[0x0][0x28];",
            "--:-:-:-:1\tHGMMA.64x128x16.F32.BF16 R24, R100, gdesc[UR8].tnspB, R24, gsb0;",
            "--:-:-:Y:2\t@!P0 STL [R1], R2;",
            "        /*0040*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;",
            "        /*0050*/              @P1 FFMA R0, R1, R2, R3 ;",
        ]
    )
    mix = offline.instruction_mix(sass)
    assert mix["sass_instructions"] == 5 and mix["mma_instructions"] == 2
    assert mix["ops"] == {"HGMMA": 1, "HMMA": 1, "FFMA": 1, "STL": 1}


def test_record_reuse_compiles_absent_keys_and_canaries_only() -> None:
    rows = [
        {"id": "a", "key": "ka", "kernel": "generator", "precision": "bf16", "fits": True},
        {"id": "b", "key": "kb", "kernel": "generator", "precision": "bf16", "fits": True},
        {"id": "c", "key": "kc-old", "kernel": "fused_linear", "precision": "bf16", "fits": False},
        {"id": "d", "key": "kd", "kernel": "fused_linear", "precision": "bf16", "fits": True},
    ]
    keys = {"a": "ka", "b": "kb", "c": "kc-new", "d": "kd", "e": "ke"}
    assert offline.canaries(rows) == ["a", "d"]  # the first fitting row of each (kernel, precision)
    todo, reused = offline.reuse(keys, rows, {"a"})
    assert todo == ["a", "c", "e"] and set(reused) == {"b", "d"} and reused["b"] is rows[1]
    assert offline.reuse({"b": "ka"}, rows)[0] == ["b"]  # another variant's key is not this one's row


def test_not_for_is_the_most_general_rule_that_spares_every_fitting_variant() -> None:
    def row(config, precision, conditional, fits, output="float", reads_z=True):
        return {
            "kernel": "generator",
            "config": config,
            "precision": precision,
            "conditional": conditional,
            "output": output,
            "reads_z": reads_z,
            "fits": fits,
        }

    rows = [row([1], p, c, p != "fp32") for p in ("bf16", "fp32") for c in (False, True)]
    rows += [row([2], p, c, not (p == "tf32" and c)) for p in ("bf16", "tf32") for c in (False, True)]
    rows += [row([3], "bf16", c, True) for c in (False, True)]
    rows += [row([4], "bf16", False, o == "float", output=o) for o in ("float", "uint8")]
    table = offline.derive_not_for(rows, "generator")
    assert table == {(1,): ("fp32",), (2,): ("conditional+tf32",), (4,): ("uint8",)}
    from kernels.fused_linear import ruled_out

    for r in rows:
        assert ruled_out(table, tuple(r["config"]), offline.traits(r)) == (not r["fits"])
