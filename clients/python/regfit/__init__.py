"""regfit: the Python client of the regfit service (train, tune and serve penalized
linear models over HTTP).

>>> from regfit import Client
>>> client = Client("http://127.0.0.1:8000")
>>> job = client.train(client.upload("data.csv"), target="y", penalty="l1", alpha=0.1)
>>> model = job.wait(progress=True).model()
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regfit-client")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

from regfit.client import Client
from regfit.errors import JobFailed, RegfitError, ServiceUnreachable
from regfit.resources import Dataset, Job, Model
from regfit.schemas import RegularizationPath

__all__ = [
    "Client",
    "Dataset",
    "Job",
    "JobFailed",
    "Model",
    "RegfitError",
    "RegularizationPath",
    "ServiceUnreachable",
    "__version__",
]
