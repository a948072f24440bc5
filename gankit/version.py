"""The installed gankit version (from the package metadata when installed, else the source tree's)."""

from importlib import metadata

try:
    __version__ = metadata.version("gankit")
except metadata.PackageNotFoundError:
    __version__ = "0.1.0+source"
