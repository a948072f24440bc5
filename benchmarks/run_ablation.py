"""Ablation of gankit train's recipe options: each alone and combinations, same seed and epoch budget.

    python -m benchmarks.run_ablation --runs runs/ablation --epochs 150 --out benchmarks/results/ablation-DATE.json
    python -m benchmarks.run_ablation ... --only base,pack2      # some runs; finished ones are read back

Every run starts from BASE (the bundled generator's old recipe: Adam beta1 0.5, EMA 0.999), measures
quality every 5 epochs and keeps the best epoch (``--keep-best``). Both the last and the best
generator are scored like ``gankit eval``: 2,500 samples (seed 0, indices 0..2499; conditional: label
i % 10) against the first half of the real digits, with the real-vs-real floor. The best epoch is
picked on those very samples, so its FID is optimistic: each generator is also scored on seed 1
(``fid_seed1``), which played no part in the choice. ``class_mix_fid`` is real digits resampled to
the generator's digit shares: the FID its digit mix alone explains. ``copying`` (best generator):
``gankit.quality.metrics.copying_share`` with per-digit thresholds, the training digits as their own held-out
set. ``minutes``: training wall time on this machine, shared with others.
A finished run's scores are kept in RUN/result.json, so the script resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import write_results
from gankit.checkpoint import load_generator, read_generator_file
from gankit.data import load_bundled
from gankit.io import atomic_path
from gankit.noise import noise
from gankit.perf.environment import environment
from gankit.quality.metrics import (
    HALF,
    class_mix_fid,
    copying_share,
    features,
    label_fidelity,
    quality,
    real_features,
    real_halves,
    score,
)
from gankit.train import BEST_FILE, GENERATOR_FILE, STATE_FILE, resume, train
from gankit.training.presets import build_config, flat_options

BASE: dict[str, Any] = {"betas": (0.5, 0.999), "ema": 0.999, "eval_every": 5, "keep_best": True, "seed": 0}
ADA = {"augment_p": 0.0, "ada_target": 0.6}
COND = {"num_classes": 10}

RUNS: dict[str, dict[str, Any]] = {
    "base": {},
    "pack2": {"pack": 2},
    "pack4": {"pack": 4},
    "mbstd4": {"minibatch_std": 4},
    "r1-1": {"r1": 1.0},
    "r1-10": {"r1": 10.0},
    "lecam0.3": {"lecam": 0.3},
    "ada-translate1": {"augment": {"translate": 1}, **ADA},
    "ada-cutout8": {"augment": {"cutout": 8}, **ADA},
    "ada-ink0.5": {"augment": {"ink": 0.5}, **ADA},
    "dropout0.3": {"d_dropout": 0.3},
    "smooth0.1": {"label_smoothing": 0.1},
    "ttur1e-4/4e-4": {"lr": 1e-4, "d_lr": 4e-4},
    "latent10": {"latent_labels": 10},
    "cond-projection": {**COND, "d_condition": "projection"},
    "cond-concat": {**COND, "d_condition": "concat"},
    "r1-50": {"r1": 50.0},
    "latent10+pack2": {"latent_labels": 10, "pack": 2},
    "cond+pack2": {**COND, "pack": 2},
    "latent10+r1-10": {"latent_labels": 10, "r1": 10.0},
    "cond+r1-10": {**COND, "r1": 10.0},
    "latent10+r1-10+pack2": {"latent_labels": 10, "r1": 10.0, "pack": 2},
    "cond+r1-10+pack2": {**COND, "r1": 10.0, "pack": 2},
    "latent10+r1-10+aux1": {"latent_labels": 10, "r1": 10.0, "aux_weight": 1.0},
    "cond+aux1": {**COND, "aux_weight": 1.0},
    "cond+lecam0.3": {**COND, "lecam": 0.3},
    "cond+mbstd4": {**COND, "minibatch_std": 4},
}


def _generate(path: Path, seed: int) -> tuple[torch.Tensor, np.ndarray | None]:
    generator = load_generator(path)
    z = noise(seed, 0, HALF, generator.config.latent_dim)
    labels = torch.arange(HALF) % generator.config.num_classes if generator.config.num_classes else None
    with torch.no_grad():
        images = torch.cat(
            [generator(z[s : s + 500], None if labels is None else labels[s : s + 500]) for s in range(0, HALF, 500)]
        )
    return images, None if labels is None else labels.numpy()


def score_file(
    path: Path, real: tuple[np.ndarray, np.ndarray], other: np.ndarray, floor: float, copying: bool
) -> dict[str, Any]:
    """gankit eval's measures of the generator file at ``path`` (see the module doc)."""
    out: dict[str, Any] = {"epoch": json.loads(read_generator_file(path)[2]["training"])["epochs"]}
    for seed in (0, 1):
        images, labels = _generate(path, seed)
        q, fake = score(images)
        suffix = "" if seed == 0 else "_seed1"
        out[f"fid{suffix}"] = q.fid
        out[f"fid_over_floor{suffix}"] = q.fid / floor
        if seed == 0:
            out |= {"coverage": q.coverage, "min_share": q.min_share, "precision": q.precision, "recall": q.recall}
            out["class_mix_fid"] = class_mix_fid(q.coverage, halves=(real[0], other))
            if labels is not None:
                per_class = label_fidelity(fake[1], labels)
                out |= {"label_fidelity": float(np.mean(per_class)), "label_fidelity_per_class": per_class}
            if copying:
                training, training_labels = load_bundled()
                check = copying_share(images, training, labels=(training_labels, None), predicted=fake[1])
                out["copying"] = asdict(check)
    return out


def run_one(name: str, options: dict[str, Any], runs: Path, epochs: int, rescore: bool = False) -> dict[str, Any]:
    """Train (or resume) the run, score it, save RUN/result.json; a finished run is read back (and with
    ``rescore`` scored again from its saved generators, keeping its training time)."""
    folder = runs / name.replace("/", "_")
    result_file = folder / "result.json"
    recipe = json.loads(json.dumps({**BASE, **options}))
    saved = json.loads(result_file.read_text()) if result_file.is_file() else None
    if saved is not None and (saved["epochs"], saved["options"]) == (epochs, recipe):
        if not rescore:
            return saved
        minutes = saved["minutes"]
    else:
        started = time.perf_counter()
        if (folder / STATE_FILE).is_file():
            resume(folder, epochs=epochs, progress=False)
        else:
            train(build_config("seed", epochs=epochs, device="cpu", **{**BASE, **options}), folder, progress=False)
        minutes = (time.perf_counter() - started) / 60
    real, other = real_features(), features(real_halves()[1])
    floor = quality(real, other).fid
    result = {
        "name": name,
        "options": recipe,
        "epochs": epochs,
        "minutes": minutes,
        "floor": floor,
        "last": score_file(folder / GENERATOR_FILE, real, other[0], floor, copying=False),
        "best": score_file(folder / BEST_FILE, real, other[0], floor, copying=True),
    }
    with atomic_path(result_file) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def score_final(spec: str) -> dict[str, Any]:
    """``NAME=FOLDER[=MINUTES]``: a finished ``gankit train --preset`` run (any recipe and length), scored as
    the ablation's runs, with its training wall time as read off its progress bar; its recipe is the one
    saved in the run. Kept in FOLDER/result.json like the others."""
    name, folder, *minutes = spec.split("=")
    folder = Path(folder)
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
    recipe = json.loads(state["config"])
    real, other = real_features(), features(real_halves()[1])
    floor = quality(real, other).fid
    result = {
        "name": name,
        "options": flat_options(recipe),
        "epochs": recipe["epochs"],
        "minutes": float(minutes[0]) if minutes else None,
        "floor": floor,
        "last": score_file(folder / GENERATOR_FILE, real, other[0], floor, copying=False),
        "best": score_file(folder / BEST_FILE, real, other[0], floor, copying=True),
    }
    with atomic_path(folder / "result.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def _options_text(options: dict[str, Any]) -> str:
    base = json.loads(json.dumps(BASE))  # as the options were saved: tuples became lists
    changed = {k: v for k, v in options.items() if base.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "base"


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """One row per run: its best epoch's measures (and the last epoch's FID), as in QUALITY.md."""
    lines = [
        "| run | options beyond base | best epoch | MNIST-FID (x floor) | seed 1 | class-mix FID | min digit "
        "| precision | recall | label fidelity | last-epoch FID | minutes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        best, last = run["best"], run["last"]
        fidelity = f"{100 * best['label_fidelity']:.1f} %" if "label_fidelity" in best else "—"
        lines.append(
            f"| {run['name']} | {_options_text(run['options'])} | {best['epoch']} | {best['fid']:.1f} "
            f"({best['fid_over_floor']:.0f}x) | {best['fid_seed1']:.1f} | {best['class_mix_fid']:.1f} "
            f"| {100 * best['min_share']:.1f} % | {best['precision']:.3f} | {best['recall']:.3f} | {fidelity} "
            f"| {last['fid']:.1f} | {'—' if run['minutes'] is None else format(run['minutes'], '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"), help="folder of the run folders")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    # One thread: on 2 cores shared with other jobs, two threads measured 8x slower a step (they wait on each other).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rescore", action="store_true", help="score finished runs again (no training)")
    parser.add_argument(
        "--final",
        action="append",
        default=[],
        metavar="NAME=FOLDER[=MINUTES]",
        help="also score a finished gankit train run (e.g. a --preset's 600 epochs) and add it to the table",
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write (every finished run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else list(RUNS)
    finals = [score_final(spec) for spec in args.final]
    for name in names:
        result = run_one(name, RUNS[name], args.runs, args.epochs, args.rescore)
        best, last = result["best"], result["last"]
        print(
            f"{name:<18} best@{best['epoch']}: FID {best['fid']:7.2f} (seed 1: {best['fid_seed1']:7.2f}), "
            f"min {100 * best['min_share']:4.1f}%, P {best['precision']:.3f} R {best['recall']:.3f}; "
            f"last: FID {last['fid']:7.2f}; {result['minutes']:.1f} min",
            flush=True,
        )
    finished = [json.loads(f.read_text()) for f in sorted(args.runs.glob("*/result.json"))] + finals
    env = environment(torch.device("cpu"))
    write_results(args.out, {"environment": env, "base": BASE, "runs": finished}, markdown_table(finished))
    print(f"wrote {args.out} and its table {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
