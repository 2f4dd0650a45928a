"""The errors :mod:`service.ml` raises.

They carry a message for the user and, where it helps, per-field details (``loc``: a JSON
pointer into the input, ``msg``), but no HTTP status: the layers that call ``ml`` (the job
runner, the job and model routes) decide what an error means to a client.
"""

from __future__ import annotations


class MLError(Exception):
    """Base of every error of :mod:`service.ml`.

    Parameters
    ----------
    detail : str
        What went wrong, in words a user can act on.
    errors : list of dict, optional
        ``{"loc": "/rows/3/2", "msg": "..."}`` entries, one per bad field or cell.
    """

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class FitError(MLError):
    """A fit cannot proceed with the data or split it was given (e.g. missing target values)."""


class FitCancelled(MLError):
    """``should_stop`` asked a fit or a search to stop (the job was cancelled or taken over)."""


class InvalidModelInput(MLError):
    """Prediction inputs a portable model cannot use (wrong shape, missing values, overflow)."""
