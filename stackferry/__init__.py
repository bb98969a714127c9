"""stackferry: move OpenStack tenants and their data between clouds."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stackferry")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
