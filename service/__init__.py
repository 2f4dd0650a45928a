"""regfit: train, tune and serve regularized linear models over HTTP."""

__version__ = "0.1.0"
