"""gankit.tolerances: one table, and the gates that read it."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from gankit import tolerances
from gankit.perf.bench import gate

GANKIT = Path(__file__).resolve().parents[1] / "gankit"


def test_no_other_module_defines_a_tolerance():
    """A bound named TOLERANCE/_TOL/MARGIN defined at a module's top level anywhere but gankit/tolerances.py is a
    second home for it."""
    found = []
    for path in GANKIT.rglob("*.py"):
        if path.name == "tolerances.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                name = getattr(target, "id", "")
                if any(word in name for word in ("TOLERANCE", "_TOL", "MARGIN", "HEADROOM")):
                    found.append(f"{path.relative_to(GANKIT)}:{name}")
    assert found == []


def test_bf16_rule_is_fp16_parity_scaled_by_its_lost_bits():
    assert tolerances.BENCH_QUANTILE_RULE["bf16"] == (
        2 ** (11 - 8) * tolerances.PARITY_MAX["fp16"],
        2 ** (11 - 8) * tolerances.PARITY_MEAN["fp16"],
    )


def test_gate_reads_the_table():
    for precision, bound in tolerances.BENCH_MAX.items():
        assert gate(torch.full((4, 4), bound * 0.999, dtype=torch.float64), precision) is None
        assert "tolerance" in gate(torch.full((4, 4), bound * 1.01), precision)
    for precision, (top, mean) in tolerances.BENCH_QUANTILE_RULE.items():
        assert gate(torch.full((1000,), mean * 0.999, dtype=torch.float64), precision) is None
        assert gate(torch.full((1000,), mean * 1.01), precision) is not None
        few_far = torch.zeros(100_000, dtype=torch.float64)
        few_far[:50] = top * 10  # 0.05 % of the pixels: above the 99.9th percentile, inside the mean
        assert gate(few_far, precision) is None
