"""CPU flag detection: the facts that pick the low-precision paths, and the clear message where absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from gankit.cpu import CpuInfo, cpu_info, require_bf16
from gankit.errors import BackendError

WITH_BF16 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16\n"
WITHOUT = "processor\t: 0\nmodel name\t: Intel Xeon E5-2686\nflags\t\t: fpu sse avx2 fma\n"


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(WITH_BF16)
    info = cpu_info(path)
    assert info.model == "AMD EPYC 9R14"
    assert info.has_bf16 and info.has_int8_dot
    assert info.relevant_flags() == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]


def test_no_bf16_gives_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(WITHOUT)
    info = cpu_info(path)
    assert not info.has_bf16 and not info.has_int8_dot
    with pytest.raises(BackendError, match=r"Intel Xeon E5-2686\) has no native bf16.*--precision fp32"):
        require_bf16(info)
    require_bf16(CpuInfo("x", frozenset({"amx_bf16"})))


def test_missing_cpuinfo_is_not_fatal(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "absent")
    assert info.flags == frozenset() and info.model
