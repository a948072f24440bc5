"""How a benchmark reads: a table for the terminal, markdown for the README, JSON with the environment, a plot."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from gankit.io import atomic_path, write_json
from gankit.perf.bench import BenchReport, Measurement

BACKEND_COLORS = {
    "eager": "tab:blue",
    "compile": "tab:orange",
    "onnxruntime": "tab:green",
    "triton": "tab:red",
    "openvino": "tab:purple",
}


HEADER = (
    f"{'backend':<12} {'prec':<5} {'batch':>8} {'samples/s':>13} {'p50':>10} {'p90':>10} "
    f"{'vs eager':>8} {'roofline':>8} {'max|err|':>9}  status   (vs eager = vs eager fp32, same batch)"
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def format_row(m: Measurement) -> str:
    rate = f"{m.samples_per_second:,.0f}" if m.samples_per_second else "-"
    speed = f"{m.speedup_vs_eager:.2f}x" if m.speedup_vs_eager else "-"
    roof = f"{100 * m.fraction_of_roofline:.1f}%" if m.fraction_of_roofline else "-"
    err = f"{m.max_abs_error:.1e}" if m.max_abs_error is not None else "-"
    status = m.status + (f" ({m.note})" if m.note and m.status != "ok" else "")
    return (
        f"{m.backend:<12} {m.precision:<5} {m.batch:>8} {rate:>13} {_duration(m.median_seconds):>10} "
        f"{_duration(m.p90_seconds):>10} {speed:>8} {roof:>8} {err:>9}  {status}"
    )


def describe_ceilings(report: BenchReport) -> list[str]:
    """One line a precision: the ceilings that bound its rows, every GEMM measured, and the paper peak."""
    return [ceilings.describe(precision) for precision, ceilings in report.ceilings.items()]


def format_table(report: BenchReport) -> str:
    """One line a measurement; backends without the precision are left out (they stay in the JSON)."""
    shown = [m for m in report.results if m.status != "skipped"]
    skipped = sorted({f"{m.backend} {m.precision}" for m in report.results if m.status == "skipped"})
    footer = [f"(no such path, not timed: {', '.join(skipped)})"] if skipped else []
    warnings = [f"warning: {line}" for line in report.warnings]
    return "\n".join([HEADER, *(format_row(m) for m in shown), *footer, *warnings])


def markdown_table(report: BenchReport) -> str:
    rows = [
        "| backend | precision | batch | samples/s | p50 | vs eager fp32 | % of roofline | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report.results:
        if m.samples_per_second is None:
            continue
        rows.append(
            f"| {m.backend} | {m.precision} | {m.batch} | {m.samples_per_second:,.0f} | {_duration(m.median_seconds)} "
            f"| {m.speedup_vs_eager or 0:.2f}x | {100 * (m.fraction_of_roofline or 0):.1f}% | {m.max_abs_error:.1e} |"
        )
    return "\n".join(rows)


def write_report(report: BenchReport, stem: Path) -> tuple[Path, Path]:
    """``stem``.json (everything) and ``stem``.png (samples/s vs batch, one line a backend, roofline)."""
    json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
    write_json(json_path, asdict(report))
    plot_report(report, png_path)
    return json_path, png_path


def plot_report(report: BenchReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precisions = list(report.ceilings)
    fig, axes = plt.subplots(1, len(precisions), figsize=(6 * len(precisions), 4.5), dpi=100, squeeze=False)
    device = report.environment.get("gpu") or report.environment.get("cpu")
    for ax, precision in zip(axes[0], precisions):
        rows = [m for m in report.results if m.precision == precision and m.samples_per_second]
        for name in dict.fromkeys(m.backend for m in rows):
            points = sorted((m.batch, m.samples_per_second) for m in rows if m.backend == name)
            ax.plot(*zip(*points), marker="o", label=name, color=BACKEND_COLORS.get(name))
        roof = sorted({(m.batch, m.roofline_samples_per_second) for m in rows if m.roofline_samples_per_second})
        if roof:
            ax.plot(*zip(*roof), linestyle="--", color="black", label="roofline (measured ceilings)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples / s")
        ax.set_title(f"{precision} on {device}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
