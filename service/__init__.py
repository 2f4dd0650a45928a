"""regfit: train, tune and serve regularized linear models over HTTP."""

from importlib.metadata import PackageNotFoundError, version

try:  # VERSION, through the installed metadata (the client reads the same file)
    __version__ = version("regfit")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
