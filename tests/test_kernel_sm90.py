"""Every kernel variant the launchers can launch compiles for sm_90 (H100/H200), spills nothing, and fits shared memory.

The CPU twin of running the kernels on a GPU: compiled offline with the ptxas Triton's wheel ships
(``benchmarks/compile_kernels_sm90.py``, in a subprocess with TRITON_INTERPRET unset). Compiling all
the variants takes tens of minutes, so the committed record (``benchmarks/results/sm90-compile-triton-
<version>-<date>.json``, rows keyed by Triton's cache key) stands for those whose key it holds: a
variant is compiled here only when its key is absent (the kernel source, its configuration, the
launcher's signature or Triton changed), plus one canary a (kernel, precision), compiled every time
and compared with the record. A variant is "kept" unless its kernel's NOT_FOR table rules it out for
the kinds of launch it stands for; every kept variant must fit, and each table must be what the
record derives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton

from benchmarks import compile_kernels_sm90 as offline
from kernels import fused_linear, generator
from kernels.fused_linear import ruled_out

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TABLES = {"generator": generator.NOT_FOR, "fused_linear": fused_linear.NOT_FOR}

pytestmark = [
    pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA machine runs the kernels themselves (tests/test_generator_kernel.py)"
    ),
    pytest.mark.xdist_group("sm90-compile"),  # one worker compiles the variants (``checked``) once
]


def record_path() -> Path | None:
    """The newest committed record made with this Triton, or None."""
    found = sorted((BENCHMARKS / "results").glob(f"sm90-compile-triton-{triton.__version__}-*.json"))
    return found[-1] if found else None


def run_script(*args: str, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(ROOT), TRITON_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.compile_kernels_sm90", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def kept(row: dict) -> bool:
    return not ruled_out(TABLES[row["kernel"]], tuple(row["config"]), offline.traits(row))


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict:
    """Every variant's row (the record's, or compiled here), the canaries' rows compiled here, the record's rows."""
    tmp = tmp_path_factory.mktemp("sm90")
    cache = tmp / "triton-cache"  # empty: the canaries are compiled, not loaded
    run_script("--keys", str(tmp / "keys.json"), cache=cache)
    keys = json.loads((tmp / "keys.json").read_text())["keys"]
    path = record_path()
    recorded = json.loads(path.read_text())["rows"] if path else []
    variants = {v["id"]: v for v in offline.variants()}
    todo_keys = {vid: key for vid, key in keys.items() if kept(variants[vid])}
    birds = set(offline.canaries(recorded))
    todo, reused = offline.reuse(todo_keys, recorded, birds)
    compiled = {}
    if todo:
        run_script("--out", str(tmp / "rows.json"), "--only", ",".join(todo), cache=cache)
        compiled = {row["id"]: row for row in json.loads((tmp / "rows.json").read_text())["rows"]}
    return {"rows": {**reused, **compiled}, "compiled": compiled, "canaries": birds, "keys": keys, "record": recorded}


def test_the_canaries_compile_as_recorded(checked) -> None:
    recorded = {row["id"]: row for row in checked["record"]}
    assert len(checked["canaries"]) == 6, (  # 2 kernels x 3 precisions
        f"no complete record for Triton {triton.__version__}: run python -m benchmarks.compile_kernels_sm90 "
        f"--out benchmarks/results/sm90-compile-triton-{triton.__version__}-DATE.json and commit it"
    )
    for vid in checked["canaries"]:
        now, then = checked["compiled"][vid], recorded[vid]
        assert now["key"] == then["key"] == checked["keys"][vid]  # the key computed without compiling is Triton's
        for field in ("registers", "stack_bytes", "shared_bytes", "spill_stores", "mma_instructions"):
            assert now[field] == then[field], (vid, field)


def test_every_kept_variant_compiles_without_spills_within_shared_memory(checked) -> None:
    kept_ids = [vid for vid, v in ((v["id"], v) for v in offline.variants()) if kept(v)]
    assert set(kept_ids) <= set(checked["rows"])
    bad = {
        vid: {k: checked["rows"][vid].get(k) for k in ("error", "stack_bytes", "spill_stores", "shared_bytes")}
        for vid in kept_ids
        if not checked["rows"][vid]["fits"]
    }
    assert not bad
    for vid in kept_ids:
        row = checked["rows"][vid]
        assert row["stack_bytes"] == 0 and row["spill_stores"] == 0 and row["shared_bytes"] <= 227 * 1024


def test_every_kind_of_launch_keeps_a_configuration() -> None:
    kinds = {}
    for variant in offline.variants():
        kinds.setdefault(frozenset(offline.traits(variant)) | {variant["kernel"]}, []).append(kept(variant))
    assert all(any(group) for group in kinds.values())


def test_the_not_for_tables_are_the_records_derivation(checked) -> None:
    for kernel, table in TABLES.items():
        assert table == offline.derive_not_for(checked["record"], kernel), kernel


def test_cache_keys_do_not_depend_on_the_checkout_path_or_the_cache_dir(checked, tmp_path: Path) -> None:
    """Else every other checkout (CI's clone) would find no key of the record and compile everything."""
    import shutil

    elsewhere = tmp_path / "another" / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "pretrained", "*.onnx", "*.pt")
    for folder in ("kernels", "gankit"):
        shutil.copytree(ROOT / folder, elsewhere / folder, ignore=ignore)
    shutil.copytree(BENCHMARKS, elsewhere / "benchmarks", ignore=shutil.ignore_patterns("__pycache__", "results"))
    some = [v["id"] for v in offline.variants()][::50]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(elsewhere), TRITON_CACHE_DIR=str(tmp_path / "another-cache"))
    command = [sys.executable, "-m", "benchmarks.compile_kernels_sm90", "--keys", "keys.json", "--only", ",".join(some)]
    done = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads((elsewhere / "keys.json").read_text())["keys"]
    assert there == {vid: checked["keys"][vid] for vid in some}
