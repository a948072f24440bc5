"""The environment a measurement needs to be read later: device, versions, threads, commit and date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from gankit.cpu import cpu_info
from gankit.noise import NOISE_NAME, cpu_implementation
from gankit.version import __version__


def git_commit() -> str:
    """The checkout's HEAD commit, with ``+dirty`` when files differ from it; ``unknown`` outside git."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions, threads, commit and date: everything a result needs to be read later."""
    cpu = cpu_info()
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "gankit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device_type": device.type,
        "cpu": cpu.model,
        "cpu_flags": cpu.relevant_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "noise": f"{NOISE_NAME} ({cpu_implementation()})",
    }
    for module in ("triton", "onnxruntime", "onnx", "numpy", "openvino"):
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            env["driver"] = smi.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env
