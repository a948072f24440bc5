"""Every CPU sampling path side by side in one run: speed, error and MNIST-FID, held to issue 10's targets.

    python -m benchmarks.run_cpu_paths --out benchmarks/results/cpu-paths-NAME-YYYY-MM-DD

Paths: eager fp32/bf16, torch.compile fp32/bf16, onnxruntime fp32 (with gankit's settings, and exactly as a
user gets it: ``onnxruntime.InferenceSession(path)``), onnxruntime int8 in every ``gankit.onnx.quantize``
option of the matrix below, and OpenVINO fp32/bf16 when installed (bf16 only where the CPU has it) with
gankit's settings and exactly as a user gets it (``core.compile_model(path, "CPU")``, which runs bf16 on
CPUs that have it). For each:

- speed: samples/s at batch 1, 64 and 4096 (median of repeated calls after warm-up, float output);
- error: mean and max |Δ| from eager fp32 in grey levels, on 4,096 standard-normal z;
- quality: MNIST-FID of 2,500 samples (seed 0) and the least common digit's share, beside eager fp32's
  on the same seeds (``gankit.quality.metrics``), and the FID cost relative to it.

Targets (issue 10, batch 4096): the best int8 path >= 2.5x the best fp32 path with MNIST-FID within 5%
of fp32 and every digit covered; the best bf16 path >= OpenVINO's bf16; batch-1 latency of the best
path <= 0.85x the best runtime's own (onnxruntime or OpenVINO with their defaults, as a user gets them).
The ceilings (the best of torch's, onnxruntime's and OpenVINO's GEMMs in fp32, bf16 and int8, and the
best copy, measured in this run; the vector units' paper peak beside them) are stored to show which one
binds. Writes NAME.json (with the environment) and NAME.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import write_results
from gankit.backends import Backend, create_backend
from gankit.checkpoint import PRETRAINED, load_generator
from gankit.cpu import cpu_info
from gankit.errors import GankitError
from gankit.noise import noise
from gankit.onnx.build import build_onnx
from gankit.onnx.graph import DEFAULT_OPSET
from gankit.onnx.quantize import Int8Options
from gankit.perf.ceilings import measure_ceilings, roofline
from gankit.perf.environment import environment
from gankit.quality.metrics import HALF, score
from gankit.timing import time_cpu
from gankit.tolerances import AUTO_COVERAGE_FRACTION

BATCHES = (1, 64, 4096)
INT8_MATRIX = {
    "dynamic-pc-qint8": Int8Options(),
    "dynamic-pt-qint8": Int8Options(per_channel=False),
    "dynamic-pc-quint8": Int8Options(weights="quint8"),
    "dynamic-pc-qint8-keep3": Int8Options(keep_fp32=(3,)),
    "dynamic-pc-qint8-keep1": Int8Options(keep_fp32=(1,)),
    "static-pc-qint8-minmax": Int8Options(mode="static"),
    "static-pc-qint8-percentile": Int8Options(mode="static", calibration="percentile"),
    "static-pc-qint8-entropy": Int8Options(mode="static", calibration="entropy"),
    "static-pc-qint8-minmax-keep3": Int8Options(mode="static", keep_fp32=(3,)),
}
TARGET = {"int8_vs_fp32": 2.5, "fid_cost": 0.05, "latency_ratio": 0.85}


def once(build):
    """A backend maker that builds once and ignores the batch size."""
    built = []

    def make(batch: int):
        if not built:
            built.append(build())
        return built[0]

    return make


class AsShipped(Backend):
    """A runtime exactly as a user gets it from an fp32 export: ``onnxruntime.InferenceSession(path)`` or
    ``openvino.Core().compile_model(path, "CPU")``, with no option set by gankit."""

    name = "as-shipped"

    def __init__(self, runtime: str, path: Path, config) -> None:
        self.runtime, self.config, self.device = runtime, config, torch.device("cpu")
        if runtime == "onnxruntime":
            import onnxruntime as ort

            session = ort.InferenceSession(str(path))
            self._run = lambda z: session.run(None, {"z": z})[0]
            self.precision = "fp32"
        else:
            import openvino as ov
            import openvino.properties.hint as hints

            compiled = ov.Core().compile_model(str(path), "CPU")
            request = compiled.create_infer_request()
            self._run = lambda z: request.infer({0: z}, share_outputs=False)[0]
            self.precision = {"bf16": "bf16", "f32": "fp32"}.get(
                compiled.get_property(hints.inference_precision).get_type_name(), "?"
            )

    def generate_float(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_labels(labels, z.shape[0])  # the bundled, unconditional generator
        return torch.from_numpy(self._run(np.ascontiguousarray(z.numpy())))

    def describe(self) -> str:
        how = "InferenceSession(path)" if self.runtime == "onnxruntime" else "compile_model(path, 'CPU')"
        return f"{self.runtime} as shipped: {how}, runs {self.precision}"


def build_paths(generator, folder: Path, with_compile: bool) -> dict[str, tuple[str, object]]:
    """label -> (precision, make(batch) -> backend). torch.compile gets one static-shape backend a batch size."""
    has_bf16 = cpu_info().has_bf16

    def make(name: str, precision: str, **options):
        return once(lambda: create_backend(name, generator, precision=precision, device="cpu", **options))

    def compiled(precision: str):
        backends = {}

        def make_for(batch: int):
            if batch not in backends:
                backends[batch] = create_backend("compile", generator, precision=precision, batch_size=batch)
            return backends[batch]

        return make_for

    def export_file(options: Int8Options | None, precision: str) -> Path:
        path = folder / f"{precision}-{options.label if options else 'float'}.onnx"
        build_onnx(generator, path, precision, "float", DEFAULT_OPSET, "", int8=options)
        return path

    def ort_file(options: Int8Options | None, precision: str):
        path = export_file(options, precision)
        return once(lambda: create_backend("onnxruntime", path, precision=precision))

    fp32_export = export_file(None, "fp32")
    paths: dict[str, tuple[str, object]] = {
        "eager fp32": ("fp32", make("eager", "fp32")),
        "onnxruntime fp32": ("fp32", ort_file(None, "fp32")),
        "onnxruntime as shipped": ("fp32", once(lambda: AsShipped("onnxruntime", fp32_export, generator.config))),
    }
    if with_compile:
        paths["compile fp32"] = ("fp32", compiled("fp32"))
    try:
        create_backend("openvino", generator, precision="fp32")
        paths["openvino fp32"] = ("fp32", make("openvino", "fp32"))
        if has_bf16:
            paths["openvino bf16"] = ("bf16", make("openvino", "bf16"))
        shipped = AsShipped("openvino", fp32_export, generator.config)
        paths["openvino as shipped"] = (shipped.precision, once(lambda: shipped))
    except GankitError as exc:
        print(f"openvino skipped: {exc}", file=sys.stderr)
    if has_bf16:
        paths["eager bf16"] = ("bf16", make("eager", "bf16"))
        if with_compile:
            paths["compile bf16"] = ("bf16", compiled("bf16"))
    for label, options in INT8_MATRIX.items():
        paths[f"onnxruntime int8 {label}"] = ("int8", ort_file(options, "int8"))
    return paths


def measure(label: str, precision: str, make, z: torch.Tensor, expected: torch.Tensor, fp32_quality) -> dict:
    """One path's row; ``fp32_quality``: eager fp32's, or None when this row is eager fp32 itself."""
    backend = make(4096)
    row: dict = {"path": label, "precision": precision, "describe": backend.describe()}
    images = backend.generate(z).float()
    levels = (images - expected).abs() * 127.5
    row["mean_levels_vs_eager_fp32"] = float(levels.mean())
    row["max_levels_vs_eager_fp32"] = float(levels.max())
    q = score(backend.generate_range(0, 0, HALF, batch_size=1000))[0]
    row.update(fid=q.fid, min_digit_share=q.min_share, coverage=q.coverage, precision_knn=q.precision, recall=q.recall)
    fp32_quality = fp32_quality or q
    row["fid_cost"] = q.fid / fp32_quality.fid - 1
    row["min_coverage_ratio"] = min(a / b for a, b in zip(q.coverage, fp32_quality.coverage) if b > 0)
    row["quality"] = q
    for batch in BATCHES:
        zb, timed_backend = z[:batch].contiguous(), make(batch)
        call = functools.partial(timed_backend.generate, zb)
        median = statistics.median(time_cpu(call, min_seconds=0.5))
        row[f"samples_per_s_b{batch}"] = batch / median
        row[f"latency_s_b{batch}"] = median
    return row


def evaluate_targets(rows: list[dict]) -> list[dict]:
    by = {row["path"]: row for row in rows}
    rate = "samples_per_s_b4096"
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    best_fp32 = max(fp32, key=lambda r: r[rate])
    faithful_int8 = [
        r
        for r in rows
        if r["precision"] == "int8"
        and r["fid_cost"] <= TARGET["fid_cost"]
        and r["min_coverage_ratio"] >= AUTO_COVERAGE_FRACTION
    ]
    verdicts = []

    def add(what: str, value, goal, ok: bool | None, binds: str = "") -> None:
        verdict = "NOT MEASURED" if ok is None else ("PASS" if ok else "FAIL")
        verdicts.append({"what": what, "value": value, "goal": goal, "verdict": verdict, "binding": binds})

    if faithful_int8:
        best = max(faithful_int8, key=lambda r: r[rate])
        ratio = best[rate] / best_fp32[rate]
        add(
            f"best faithful int8 ({best['path']}) / best fp32 ({best_fp32['path']}) at batch 4096",
            ratio,
            TARGET["int8_vs_fp32"],
            ratio >= TARGET["int8_vs_fp32"],
            binds=f"ceilings: see the int8 and fp32 GEMMs; this path's FID cost {best['fid_cost']:+.2%}",
        )
    else:
        add(
            "best faithful int8 / best fp32 at batch 4096",
            None,
            TARGET["int8_vs_fp32"],
            False,
            "no int8 path kept quality",
        )
    bf16 = [r for r in rows if r["precision"] == "bf16" and "as shipped" not in r["path"]]
    reference = by.get("openvino as shipped")
    reference = reference if reference and reference["precision"] == "bf16" else None
    if reference and bf16:
        best = max(bf16, key=lambda r: r[rate])
        ratio = best[rate] / reference[rate]
        torch_best = max((r for r in bf16 if not r["path"].startswith("openvino")), key=lambda r: r[rate], default=None)
        note = (
            f"torch's best bf16 ({torch_best['path']}): {torch_best[rate] / reference[rate]:.2f}x" if torch_best else ""
        )
        add(
            f"best bf16 path ({best['path']}) / OpenVINO as shipped (bf16 on this CPU), batch 4096",
            ratio,
            1.0,
            ratio >= 1.0,
            note,
        )
    else:
        add("best bf16 path / OpenVINO bf16 at batch 4096", None, 1.0, None, "needs OpenVINO and a bf16 CPU")
    runtimes = [by[p] for p in ("onnxruntime as shipped", "openvino as shipped") if p in by]
    best_runtime = min(runtimes, key=lambda r: r["latency_s_b1"])
    ours = min(
        (r for r in rows if r["fid_cost"] <= TARGET["fid_cost"] and r["min_coverage_ratio"] >= AUTO_COVERAGE_FRACTION),
        key=lambda r: r["latency_s_b1"],
    )
    ratio = ours["latency_s_b1"] / best_runtime["latency_s_b1"]
    add(
        f"batch-1 latency: best faithful path ({ours['path']}, {ours['latency_s_b1'] * 1e6:.1f} us) / best runtime "
        f"as shipped ({best_runtime['path']}, {best_runtime['latency_s_b1'] * 1e6:.1f} us)",
        ratio,
        TARGET["latency_ratio"],
        ratio <= TARGET["latency_ratio"],
        binds="batch 1 is 1.1 MFLOP: per-call overhead (session run, thread wake-up), not FLOPs or bytes, binds",
    )
    return verdicts


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# CPU paths side by side ({env['cpu']}, {env['torch_threads']} threads, {env['date']})",
        "",
        f"flags: {' '.join(env['cpu_flags'])}; torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
        f"openvino {env.get('openvino')}; commit {env['git_commit']}",
        "",
        "| path | b=1 µs | b=64 /s | b=4096 /s | × eager fp32 | % roofline | mean Δ (levels) | max Δ | MNIST-FID "
        "| FID cost | min digit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    eager = next(r for r in report["results"] if r["path"] == "eager fp32")["samples_per_s_b4096"]
    for r in sorted(report["results"], key=lambda r: -r["samples_per_s_b4096"]):
        lines.append(
            f"| {r['path']} | {r['latency_s_b1'] * 1e6:.1f} | {r['samples_per_s_b64']:,.0f} | "
            f"{r['samples_per_s_b4096']:,.0f} | {r['samples_per_s_b4096'] / eager:.2f} | "
            f"{100 * r['fraction_of_roofline_b4096']:.0f}% | {r['mean_levels_vs_eager_fp32']:.2f} | "
            f"{r['max_levels_vs_eager_fp32']:.1f} | {r['fid']:.1f} | {100 * r['fid_cost']:+.1f}% | "
            f"{100 * r['min_digit_share']:.1f}% |"
        )
    lines += ["", "Ceilings (measured in this run; the paper peak of the vector units beside them):", ""]
    for precision, c in report["ceilings"].items():
        gemms = ", ".join(f"{label} {rate / 1e9:,.0f}" for label, rate in c["gemms"].items())
        peak = f"{c['peak_flops_per_second'] / 1e9:,.0f} GFLOP/s ({c['peak']})" if c["peak_flops_per_second"] else "?"
        lines.append(
            f"- {precision}: {c['flops_per_second'] / 1e9:,.0f} GFLOP/s ({c['gemm']}; every GEMM in GFLOP/s: {gemms}); "
            f"copy {c['bytes_per_second'] / 1e9:.1f} GB/s; paper peak {peak}"
        )
    lines += ["", "Targets:", ""]
    for t in report["targets"]:
        value = "—" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(
            f"- **{t['verdict']}** {t['what']}: {value} (goal {t['goal']}){'; ' + t['binding'] if t['binding'] else ''}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output stem: writes STEM.json and STEM.md")
    parser.add_argument("--model", default=None, help="generator .safetensors (default: the bundled one)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile paths (slow to build)")
    args = parser.parse_args()
    generator = load_generator(args.model or PRETRAINED)
    config = generator.config
    env = environment(torch.device("cpu"))
    try:
        import openvino

        env["openvino"] = openvino.__version__
    except ImportError:
        env["openvino"] = None
    ceilings = {p: measure_ceilings(torch.device("cpu"), p) for p in ("fp32", "bf16", "int8")}
    z = noise(7, 0, 4096, config.latent_dim)
    with torch.inference_mode():
        expected = generator(z).float()
    rows, fp32_quality = [], None
    with tempfile.TemporaryDirectory() as folder:
        for label, (precision, make) in build_paths(generator, Path(folder), not args.no_compile).items():
            try:
                row = measure(label, precision, make, z, expected, fp32_quality)
            except GankitError as exc:
                print(f"{label}: skipped ({exc})", file=sys.stderr)
                continue
            quality_of_path = row.pop("quality")
            if label == "eager fp32":  # the first path: every later one is compared with it
                fp32_quality = quality_of_path
            bound = roofline(config, ceilings[precision], 4096, precision, "float")
            row["roofline_samples_per_s_b4096"] = bound
            row["fraction_of_roofline_b4096"] = row["samples_per_s_b4096"] / bound
            rows.append(row)
            print(
                f"{label:<44} b1 {row['latency_s_b1'] * 1e6:7.1f} us  b4096 {row['samples_per_s_b4096']:>10,.0f}/s  "
                f"Δ mean {row['mean_levels_vs_eager_fp32']:.2f} lv  FID {row['fid']:.1f} "
                f"({100 * row['fid_cost']:+.1f}%)",
                flush=True,
            )
    report = {
        "environment": env,
        "config": json.loads(config.to_json()),
        "flops_per_sample": config.flops_per_sample,
        "ceilings": {p: asdict(c) for p, c in ceilings.items()},
        "int8_matrix": {label: json.loads(o.to_json()) for label, o in INT8_MATRIX.items()},
        "results": rows,
    }
    report["targets"] = evaluate_targets(rows)
    write_results(args.out.with_suffix(".json"), report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
