"""Predict samples/s at batch 65,536 on an H100 SXM (and H200) from the offline sm_90 compile record: a prediction.

    python -m benchmarks.predict_sm90 --record benchmarks/results/sm90-compile-triton-3.8.0-DATE.json \\
        --out benchmarks/results/sm90-prediction-DATE.json       # also writes the .md beside it
    python -m benchmarks.predict_sm90 --compare tune.json        # measured (gpu_all.sh tune) beside predicted

The model, for every compiled variant (``compile_kernels_sm90.py``) and each device of ``DEVICES``:

- Three ceilings in samples/s. Tensor cores: the datasheet's dense peak of the precision (fp32 with
  IEEE products runs on the FP32 cores: their peak) times ``HMMA_FRACTION`` when the SASS has
  warp-level ``HMMA`` but no warpgroup ``HGMMA``, over the FLOPs the kernel executes a sample
  (padding and recomputation included: ``generator_configs.executed_flops_per_sample``). L2: an
  assumed ``L2_BYTES_PER_S`` over the weight bytes a sample reads from L2 (plus, conditional, the
  class-bias row each output block gathers). HBM: the datasheet bandwidth over the bytes a sample
  moves (z in unless made in the kernel, labels in when conditional, the image out).
- predicted = ``ACHIEVED`` x the smallest ceiling x the wave efficiency (programs over the SM slots
  the occupancy allows, rounded up to whole waves). A variant that spills or exceeds shared memory
  is not launched (its kernel's ``NOT_FOR``): no prediction.
- The per-layer path (three ``fused_linear`` launches): the same ceilings a layer (L2: every program
  reads its slice of W and its rows of x), the best configuration of each, times added.
- Eager and torch.compile from their kernels: each cuBLAS GEMM at ``GEMM_EFFICIENCY`` of the peak or
  at the HBM time of its operands, whichever is longer; each elementwise pass reads and writes its
  tensor once at ``HBM_EFFICIENCY``; ``KERNEL_GAP_S`` between kernels. Eager: 3 GEMMs (bias in the
  epilogue) + 3 activation passes; compile default and reduce-overhead: the same six kernels
  (Inductor calls cuBLAS for the GEMMs and cannot fuse an activation into them); max-autotune: 3 GEMMs
  with the bias and activation fused in the epilogue (Triton templates).

Assumptions (named constants below) are what a GPU run checks: ``--compare`` prints the measured rate
beside each predicted one, and ``gpu_all.sh tune`` runs it.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from pathlib import Path

from benchmarks import generator_configs as space
from benchmarks.bench_gpu_kernels import DATASHEET_H100_SXM
from benchmarks.harness import write_results

BATCH = 65536
SIZES = space.SIZES
RESULTS = Path(__file__).resolve().parent / "results"

# NVIDIA H100 Tensor Core GPU datasheet (SXM5): dense peaks (bench_gpu_kernels.DATASHEET_H100_SXM), HBM3
# 3.35 TB/s, 132 SMs. NVIDIA H200 datasheet (SXM): the same compute, HBM3e 4.8 TB/s.
DEVICES = {
    "H100 SXM": {"peak": DATASHEET_H100_SXM, "hbm_bytes_per_s": 3.35e12, "sms": 132},
    "H200": {"peak": DATASHEET_H100_SXM, "hbm_bytes_per_s": 4.8e12, "sms": 132},
}
L2_BYTES_PER_S = 5.5e12  # assumed (no datasheet figure): the tune run measures an L2-resident copy
HMMA_FRACTION = 0.6  # assumed: warp-level mma.sync reaches about this much of wgmma's rate on Hopper
ACHIEVED = 0.7  # assumed: the fraction of its binding ceiling a kernel reaches
GEMM_EFFICIENCY = 0.7  # assumed: cuBLAS on these skinny GEMMs (K <= 512), of the dense datasheet peak
HBM_EFFICIENCY = 0.9  # a device copy's fraction of the datasheet bandwidth (KINDS.md: ~3.0 of 3.35 TB/s)
KERNEL_GAP_S = 2e-6  # assumed: the drain and ramp between two dependent kernels on one stream
ELEMENT_BYTES = {"bf16": 2, "tf32": 4, "fp32": 4}
LAYERS = ((SIZES[0], SIZES[1]), (SIZES[1], SIZES[2]), (SIZES[2], SIZES[3]))  # (K, N) of the three Linears


def tensor_core_peak(row: dict, device: dict) -> float:
    """FLOP/s the variant's instructions can reach: the precision's dense peak, scaled for mma.sync, or the FP32
    cores' peak when it has no tensor-core instruction at all."""
    ops = row.get("ops", {})
    if row["precision"] == "fp32" or not (ops.get("HGMMA") or ops.get("HMMA")):
        return device["peak"]["fp32"]
    fraction = 1.0 if ops.get("HGMMA") else HMMA_FRACTION
    return device["peak"][row["precision"]] * fraction


def wave_efficiency(programs: int, slots: int) -> float:
    """Work over whole waves: the last, partial wave runs as long as a full one."""
    waves = programs / slots
    return waves / math.ceil(waves)


def generator_needs(row: dict) -> dict[str, float]:
    """Per sample: FLOPs executed, bytes read from L2, bytes moved through HBM; and the programs a batch makes."""
    config = tuple(row["config"])
    weight_bytes = ELEMENT_BYTES[row["precision"]]
    blocks, _ = space.output_blocks(config[3], SIZES[3])
    # z in (fp32) unless made in the kernel, the image out: generator_configs.hbm_bytes_per_sample, all four cases
    hbm = (4 * SIZES[0] if row["reads_z"] else 0) + SIZES[3] * (1 if row["output"] == "uint8" else 4)
    l2 = space.weight_bytes_per_sample(config, SIZES, weight_bytes)
    if row["conditional"]:
        hbm += 8  # the label (int64)
        l2 += blocks * SIZES[1] * 4  # each output block gathers the sample's class-bias row (fp32)
    return {
        "flops": space.executed_flops_per_sample(config, SIZES),
        "l2_bytes": l2,
        "hbm_bytes": hbm,
        "programs": math.ceil(BATCH / config[0]) * blocks,
    }


def predict_generator(row: dict, device: dict) -> dict:
    """Ceilings, wave efficiency and predicted samples/s of one whole-generator variant on one device."""
    need = generator_needs(row)
    ceilings = {
        "tensor_core": tensor_core_peak(row, device) / need["flops"],
        "l2": L2_BYTES_PER_S / need["l2_bytes"],
        "hbm": device["hbm_bytes_per_s"] * HBM_EFFICIENCY / need["hbm_bytes"],
    }
    binds = min(ceilings, key=ceilings.get)
    waves = wave_efficiency(need["programs"], device["sms"] * row["blocks_per_sm"])
    return {
        "ceilings_samples_per_s": ceilings,
        "binds": binds,
        "wave_efficiency": waves,
        "predicted_samples_per_s": ACHIEVED * ceilings[binds] * waves,
    }


def predict_layer(row: dict, device: dict) -> dict:
    """Seconds a fused_linear variant takes for its layer at BATCH, and what binds it."""
    bm, bn, bk, _, _ = row["config"]
    k, n = LAYERS[row["layer"] - 1]
    element = ELEMENT_BYTES[row["precision"]]
    flops = 2 * BATCH * math.ceil(k / bk) * bk * math.ceil(n / bn) * bn
    hbm = BATCH * (k + n) * element + k * n * element + (BATCH * 8 if row["conditional"] else 0)
    n_blocks = math.ceil(n / bn)
    # L2: each program reads its (K, BLOCK_N) slice of W and its (BLOCK_M, K) rows of x
    l2 = math.ceil(BATCH / bm) * n_blocks * k * (bn + bm) * element
    times = {
        "tensor_core": flops / tensor_core_peak(row, device),
        "l2": l2 / L2_BYTES_PER_S,
        "hbm": hbm / (device["hbm_bytes_per_s"] * HBM_EFFICIENCY),
    }
    binds = max(times, key=times.get)
    programs = math.ceil(BATCH / bm) * n_blocks
    waves = wave_efficiency(programs, device["sms"] * row["blocks_per_sm"])
    return {"binds": binds, "wave_efficiency": waves, "predicted_s": times[binds] / ACHIEVED / waves}


def library_rates(precision: str, device: dict) -> dict[str, dict]:
    """Eager and torch.compile at BATCH from their kernels (the module docstring's model): samples/s and kernels."""
    element = ELEMENT_BYTES[precision]
    hbm = device["hbm_bytes_per_s"] * HBM_EFFICIENCY
    gemms = [
        max(
            2 * BATCH * k * n / (GEMM_EFFICIENCY * device["peak"][precision]), (BATCH * (k + n) + k * n) * element / hbm
        )
        for k, n in LAYERS
    ]
    passes = [2 * BATCH * n * element / hbm for _, n in LAYERS]  # read and write each activation once
    unfused = sum(gemms) + sum(passes) + 6 * KERNEL_GAP_S
    fused = sum(gemms) + 3 * KERNEL_GAP_S
    return {
        "eager": {"kernels": 6, "samples_per_s": BATCH / unfused},
        "compile-default": {"kernels": 6, "samples_per_s": BATCH / unfused},
        "compile-reduce-overhead": {"kernels": 6, "samples_per_s": BATCH / unfused},
        "compile-max-autotune": {"kernels": 3, "samples_per_s": BATCH / fused},
    }


def kept(row: dict) -> bool:
    return "error" not in row and row.get("fits", False)


def predict(record: dict) -> dict:
    """The prediction: per device, every generator variant, the per-layer path and the library baselines."""
    result = {
        "kind": "sm90-prediction",
        "note": "a prediction on paper, from an offline compile; no GPU measurement",
        "batch": BATCH,
        "useful_flops_per_sample": sum(2 * k * n for k, n in LAYERS),
        "compile_record": record["environment"],
        "assumptions": {
            "l2_bytes_per_s": L2_BYTES_PER_S,
            "hmma_fraction": HMMA_FRACTION,
            "achieved": ACHIEVED,
            "gemm_efficiency": GEMM_EFFICIENCY,
            "hbm_efficiency": HBM_EFFICIENCY,
            "kernel_gap_s": KERNEL_GAP_S,
        },
        "devices": {},
    }
    for name, device in DEVICES.items():
        rows, layers = [], {}
        for row in record["rows"]:
            base = {k: row[k] for k in ("id", "kernel", "precision", "conditional", "config") if k in row}
            if not kept(row):
                rows.append({**base, "not_launched": row.get("error") or "spills or exceeds shared memory"})
            elif row["kernel"] == "generator":
                rows.append(
                    {**base, "reads_z": row["reads_z"], "output": row["output"], **predict_generator(row, device)}
                )
            else:
                key = (row["precision"], row["conditional"], row["layer"])
                layers.setdefault(key, []).append({**base, "layer": row["layer"], **predict_layer(row, device)})
        per_layer = {}
        for precision in ELEMENT_BYTES:
            for conditional in (False, True):
                best = [
                    min(
                        layers.get((precision, conditional and i == 1, i), []),
                        key=lambda r: r["predicted_s"],
                        default=None,
                    )
                    for i in (1, 2, 3)
                ]
                if all(best):
                    label = f"{precision}-{'cond' if conditional else 'uncond'}"
                    seconds = sum(b["predicted_s"] for b in best) + 3 * KERNEL_GAP_S
                    per_layer[label] = {"samples_per_s": BATCH / seconds, "configs": [b["id"] for b in best]}
        result["devices"][name] = {
            "device": device,
            "generator": rows,
            "layers": [r for group in layers.values() for r in group],
            "per_layer_path": per_layer,
            "libraries": {p: library_rates(p, device) for p in ELEMENT_BYTES},
        }
    return result


def markdown(prediction: dict) -> str:
    """The prediction as tables: per device, the best variants per case and the baselines."""
    lines = [
        f"# sm_90 prediction (on paper, batch {prediction['batch']:,}): no GPU measurement",
        "",
        f"From the offline compile with Triton {prediction['compile_record']['triton']} "
        f"({prediction['compile_record']['ptxas']}); model and assumptions in benchmarks/TUNING.md "
        f"and benchmarks/predict_sm90.py. Assumptions: {json.dumps(prediction['assumptions'])}.",
    ]
    for name, part in prediction["devices"].items():
        lines += [
            "",
            f"## {name}",
            "",
            "| kernel / path | precision | case | config | binds | samples/s |",
            "|---|---|---|---|---|---:|",
        ]
        for lib, rate in part["libraries"]["bf16"].items():
            lines.append(
                f"| {lib} ({rate['kernels']} kernels) | bf16 | z -> image | - | - | {rate['samples_per_s']:.3g} |"
            )
        for precision in ("tf32", "fp32"):
            rate = part["libraries"][precision]["eager"]
            lines.append(f"| eager | {precision} | z -> image | - | - | {rate['samples_per_s']:.3g} |")
        for label, path in part["per_layer_path"].items():
            lines.append(
                f"| fused_linear x3 | {label} | z -> image | {', '.join(path['configs'])} | - "
                f"| {path['samples_per_s']:.3g} |"
            )
        launched = [r for r in part["generator"] if "predicted_samples_per_s" in r]
        groups = {}
        for row in launched:
            case = f"{'z' if row['reads_z'] else 'seed'} -> {row['output']}{', cond' if row['conditional'] else ''}"
            groups.setdefault((row["precision"], case), []).append(row)
        for (precision, case), group in groups.items():
            best = max(group, key=lambda r: r["predicted_samples_per_s"])
            label = space.label(tuple(best["config"]))
            lines.append(
                f"| generator (best of {len(group)}) | {precision} | {case} | {label} | {best['binds']} "
                f"| {best['predicted_samples_per_s']:.3g} |"
            )
        dropped = [r["id"] for r in part["generator"] if "not_launched" in r]
        lines += ["", f"Not launched (spill or shared memory): {len(dropped)} generator variants."]
    lines += ["", "## Every launched bf16 generator variant (H100 SXM)", ""]
    lines += ["| variant | TC / L2 / HBM ceilings (samples/s) | binds | waves | predicted |", "|---|---|---|---:|---:|"]
    for row in prediction["devices"]["H100 SXM"]["generator"]:
        if row["precision"] == "bf16" and "predicted_samples_per_s" in row:
            c = row["ceilings_samples_per_s"]
            lines.append(
                f"| {row['id']} | {c['tensor_core']:.3g} / {c['l2']:.3g} / {c['hbm']:.3g} | {row['binds']} "
                f"| {row['wave_efficiency']:.2f} | {row['predicted_samples_per_s']:.3g} |"
            )
    return "\n".join(lines) + "\n"


def latest_prediction(results: Path = RESULTS) -> Path | None:
    """The newest committed prediction file (by the date in its name), or None."""
    found = sorted(glob.glob(str(results / "sm90-prediction-*.json")))
    return Path(found[-1]) if found else None


def device_of(gpu: str, prediction: dict) -> str:
    """The prediction's device for a measured GPU name (an H200 is an H200; anything else the H100 SXM)."""
    return next((name for name in prediction["devices"] if name.split()[0] in gpu), "H100 SXM")


def measured_beside_predicted(tune_report: dict, prediction: dict) -> list[str]:
    """Lines of 'what: measured M/s, predicted P/s (M/P)' for every bf16 unconditional generator configuration and
    baseline that ``tune_report`` (``tune_generator_kernel.py``'s JSON) measured and the prediction covers."""
    gpu = tune_report.get("environment", {}).get("gpu", "")
    name = device_of(gpu, prediction)
    part = prediction["devices"][name]
    predicted = {
        (("z-float" if r["reads_z"] else "seed-uint8"), space.label(tuple(r["config"]))): r["predicted_samples_per_s"]
        for r in part["generator"]
        if r["precision"] == "bf16"
        and not r["conditional"]
        and "predicted_samples_per_s" in r
        and (r["reads_z"], r["output"]) in (space.CASES["z-float"], space.CASES["seed-uint8"])
    }
    lines = [f"measured on {gpu or '?'} beside the prediction for {name} (bf16, batch {prediction['batch']:,}):"]

    def line(what: str, measured: float, expected: float | None) -> None:
        if expected:
            lines.append(
                f"  {what:<48} measured {measured:>12,.0f}/s  predicted {expected:>12,.0f}/s  "
                f"({measured / expected:.2f}x)"
            )
        else:
            lines.append(f"  {what:<48} measured {measured:>12,.0f}/s  predicted -")

    for path, rate in sorted(tune_report.get("baselines", {}).items()):
        expected = part["libraries"]["bf16"].get(path, {}).get("samples_per_s")
        line(path, rate, expected)
    for section in ("throughput", "sampling"):
        for row in tune_report.get(section, []):
            if "samples_per_s" in row and row.get("batch", BATCH) == BATCH:
                line(f"{row['case']} {row['label']}", row["samples_per_s"], predicted.get((row["case"], row["label"])))
    return lines


def beside_latest(tune_report: dict, results: Path = RESULTS) -> list[str]:
    """``measured_beside_predicted`` against the newest committed prediction; no lines when there is none."""
    path = latest_prediction(results)
    return measured_beside_predicted(tune_report, json.loads(path.read_text())) if path else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="the compile record (compile_kernels_sm90.py --out)")
    parser.add_argument("--out", type=Path, help="the prediction JSON to write (the .md beside it)")
    parser.add_argument("--compare", type=Path, help="a tune_generator_kernel.py JSON: print measured beside predicted")
    parser.add_argument("--prediction", type=Path, default=None, help="for --compare (default: the newest committed)")
    args = parser.parse_args()
    if args.compare:
        path = args.prediction or latest_prediction()
        if path is None or not args.compare.exists():
            sys.exit(f"nothing to compare: prediction {path}, measured {args.compare}")
        print("\n".join(measured_beside_predicted(json.loads(args.compare.read_text()), json.loads(path.read_text()))))
        return
    if not (args.record and args.out):
        parser.error("give --record and --out, or --compare")
    prediction = predict(json.loads(args.record.read_text()))
    write_results(args.out, prediction, markdown(prediction))


if __name__ == "__main__":
    main()
