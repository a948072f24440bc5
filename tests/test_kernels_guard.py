"""The guard against the unrelated PyPI ``kernels`` package shadowing gankit's own ``kernels``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kernels
from gankit._kernels_check import check_kernels_package


def _import_gankit_with(tmp_path: Path, fake_kernels: str | None) -> subprocess.CompletedProcess[str]:
    """``import gankit`` in a fresh interpreter whose sys.path starts with a folder holding a fake ``kernels``."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    if fake_kernels is not None:
        (shadow / "kernels").mkdir()
        (shadow / "kernels" / "__init__.py").write_text(fake_kernels)
    code = f"import sys; sys.path.insert(0, {str(shadow)!r}); import gankit; print('imported', gankit.__name__)"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_own_kernels_package_passes() -> None:
    assert kernels.GANKIT_KERNELS is True
    check_kernels_package()


def test_foreign_kernels_package_makes_import_gankit_fail(tmp_path: Path) -> None:
    result = _import_gankit_with(tmp_path, '"""Stands in for the PyPI project named kernels."""\n')
    assert result.returncode != 0 and "imported" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: 'import kernels' resolves to ")
    assert str(tmp_path / "shadow" / "kernels" / "__init__.py") in last_line
    assert "not gankit's kernels package" in last_line and "pip uninstall kernels" in last_line


def test_shadow_folder_without_kernels_changes_nothing(tmp_path: Path) -> None:
    """The same subprocess without the fake package imports fine: the failure above is the guard's doing."""
    result = _import_gankit_with(tmp_path, None)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "imported gankit"


def test_guard_names_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kernels", None)  # makes 'import kernels' raise ImportError
    with pytest.raises(ImportError, match="'kernels' package is missing: reinstall gankit"):
        check_kernels_package()
