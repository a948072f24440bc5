"""The installed gankit version (from the package metadata when installed, else the source tree's), and others'."""

from importlib import metadata

try:
    __version__ = metadata.version("gankit")
except metadata.PackageNotFoundError:
    __version__ = "0.1.0+source"


def package_version(distribution: str) -> str:
    """An installed package's version from its metadata, or "absent" (importing a runtime to ask costs seconds)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"
