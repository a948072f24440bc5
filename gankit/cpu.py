"""What this CPU can do: model name and the instruction-set flags that decide the fast paths."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from gankit.errors import BackendError

# Flags that change which low-precision path is fast (as /proc/cpuinfo spells them).
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def has_bf16(self) -> bool:
        """Native bf16 dot products (AVX-512 BF16 or AMX): where bf16 beats fp32 instead of emulating it."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def has_int8_dot(self) -> bool:
        """VNNI (AVX-512 or AVX) or AMX int8: where int8 GEMMs run at several times the fp32 rate."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    def relevant_flags(self) -> list[str]:
        return [flag for flag in RELEVANT_FLAGS if flag in self.flags]


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Read the CPU model and flags (Linux /proc/cpuinfo; elsewhere the model only, no flags)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = cpuinfo.read_text()
    except OSError:
        return CpuInfo(model, flags)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags)


def require_bf16(info: CpuInfo | None = None) -> None:
    """Raise a clear BackendError when the CPU has no native bf16 (it would be emulated, and slower than fp32)."""
    info = info or cpu_info()
    if not info.has_bf16:
        raise BackendError(
            f"this CPU ({info.model}) has no native bf16 (no avx512_bf16 or amx_bf16 flag): bf16 would be "
            "emulated and slower than fp32; use --precision fp32 (or int8)"
        )


def compute_threads() -> int:
    """The threads gankit's CPU work uses: torch's intra-op count when torch is loaded (so ``torch.set_num_threads``
    governs both), else the CPUs this process may run on. Values never depend on it, only speed."""
    import os
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
