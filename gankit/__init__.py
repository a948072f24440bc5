"""gankit: take a trained MLP GAN generator to fast, exact, portable inference.

The public API is imported on first use, so that a command running on onnxruntime or OpenVINO never imports
torch: ``import gankit`` alone costs nothing but the name guard of the ``kernels`` package.
"""

from __future__ import annotations

import importlib

from gankit._kernels_check import check_kernels_package

check_kernels_package()

_PUBLIC = {
    "Discriminator": "gankit.model",
    "DiscriminatorConfig": "gankit.config",
    "GankitError": "gankit.errors",
    "GeneratedDataset": "gankit.sampling.dataset",
    "Generator": "gankit.model",
    "GeneratorConfig": "gankit.config",
    "LabelSpec": "gankit.labels",
    "TrainConfig": "gankit.config",
    "__version__": "gankit.version",
    "from_module": "gankit.models",
    "load_generator": "gankit.checkpoint",
    "noise": "gankit.noise",
    "save_generator": "gankit.checkpoint",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gankit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
