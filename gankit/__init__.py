"""gankit: take a trained MLP GAN generator to fast, exact, portable inference."""

from gankit._kernels_check import check_kernels_package

check_kernels_package()

from gankit.checkpoint import load_generator, save_generator  # noqa: E402
from gankit.config import DiscriminatorConfig, GeneratorConfig, TrainConfig  # noqa: E402
from gankit.errors import GankitError  # noqa: E402
from gankit.imports import from_module  # noqa: E402
from gankit.labels import LabelSpec  # noqa: E402
from gankit.model import Discriminator, Generator  # noqa: E402
from gankit.noise import noise  # noqa: E402
from gankit.sampling.dataset import GeneratedDataset  # noqa: E402  (8 ms: no need to defer it)
from gankit.version import __version__  # noqa: E402

__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "GankitError",
    "GeneratedDataset",
    "Generator",
    "GeneratorConfig",
    "LabelSpec",
    "TrainConfig",
    "__version__",
    "from_module",
    "load_generator",
    "noise",
    "save_generator",
]
