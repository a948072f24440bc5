"""Make sure ``import kernels`` is gankit's own package and not the unrelated PyPI ``kernels``."""

from __future__ import annotations

import importlib


def check_kernels_package() -> None:
    """Raise ImportError with what to do when ``kernels`` resolves to another package."""
    try:
        module = importlib.import_module("kernels")
    except ImportError as exc:
        raise ImportError(
            "gankit's 'kernels' package is missing: reinstall gankit (pip install -e .) from its source tree"
        ) from exc
    if not getattr(module, "GANKIT_KERNELS", False):
        location = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
        raise ImportError(
            f"'import kernels' resolves to {location}, which is not gankit's kernels package "
            "(the unrelated PyPI project 'kernels' is probably installed). "
            "Run 'pip uninstall kernels', then reinstall gankit."
        )
