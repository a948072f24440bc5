"""Errors meant for people: the CLI prints each as one line, with what to do."""


class GankitError(Exception):
    """Base class of every failure gankit reports to a user."""


class ConfigError(GankitError):
    """A generator/discriminator configuration or option is invalid."""


class DataError(GankitError):
    """A data set cannot be found, downloaded or read."""


class CheckpointError(GankitError):
    """A checkpoint or training-state file is missing, corrupt, foreign or mismatched."""


class TrainingError(GankitError):
    """Training cannot go on (for example a non-finite loss)."""


class NoiseError(GankitError, ValueError):
    """A seed or sample range outside what the noise contract defines (also a ValueError for library callers)."""


class DeviceError(GankitError):
    """A device name is unknown, or names a device this machine does not have."""


class BackendError(GankitError):
    """A backend is unknown, unavailable, or was given inputs it cannot take."""


class ExportError(GankitError):
    """An export failed or did not pass its parity check."""


class SamplingError(GankitError):
    """A sampling run cannot start, resume or write its output."""


class ConversionError(GankitError):
    """A generator made elsewhere (a module, a state dict, an ONNX graph) cannot become a gankit generator."""


class OutputError(GankitError):
    """An output cannot be written (read-only, not a folder, no space), or exists and --force was not given."""


class ResourceError(GankitError):
    """A job needs more memory or disk than the machine has, or a size beyond what gankit supports."""


class NonFiniteError(GankitError):
    """A model made NaN or inf: no such image is written as data. ``index``: the first bad sample's."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(
            f"sample {index} is not a finite image (the model made NaN or inf); stopped, and nothing of it was "
            "written: check the model (gankit info) or its --output-range"
        )
