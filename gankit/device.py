"""Where tensors run: device names, precisions as torch dtypes, and the matmul mode a precision means."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.errors import DeviceError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def __getattr__(name: str):
    if name == "TORCH_DTYPES":  # precision -> torch dtype, built with torch on first use
        import torch

        return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    raise AttributeError(f"module 'gankit.device' has no attribute {name!r}")


def cuda_possible() -> bool:
    """False only where no CUDA driver can be reached, known without importing torch: a Linux machine with no
    NVIDIA device node (``/dev/nvidiactl``, ``/dev/nvidia0``, ...), no ``/proc/driver/nvidia`` and no WSL GPU
    (``/dev/dxg``), or macOS. There ``torch.cuda.is_available()`` is False too; anywhere else ask torch."""
    if sys.platform == "darwin":
        return False
    if not sys.platform.startswith("linux"):
        return True
    dev = Path("/dev")
    nodes = [dev / "nvidiactl", dev / "dxg", Path("/proc/driver/nvidia")]
    return any(path.exists() for path in nodes) or any(dev.glob("nvidia[0-9]*"))


def on_gpu(name: str) -> bool:
    """Whether device ``name`` resolves to a CUDA GPU (``resolve_device``), without torch for ``cpu``, and for
    ``auto`` where no GPU can be there (``cuda_possible``)."""
    if name == "cpu" or (name == "auto" and "torch" not in sys.modules and not cuda_possible()):
        return False
    return resolve_device(name).type == "cuda"


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> cuda when a GPU is visible, else cpu; ``cpu``, ``cuda``, ``cuda:N`` as asked.

    DeviceError (one line, with what to do) for an unknown name or a GPU that is not there.
    """
    import torch

    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {text!r}; use {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {text!r}; use {DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {text!r} asked for, but this machine has no CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise DeviceError(f"device {text!r} asked for, but only {count} CUDA GPU(s) are visible")
    return device


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """fp32 means IEEE fp32 matmuls (TF32 off); tf32 allows TF32 tensor cores on GPUs that have them."""
    import torch

    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
