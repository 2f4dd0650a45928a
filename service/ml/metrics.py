"""Regression metrics, as scikit-learn computes them, as JSON-safe floats."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)


def finite_or_none(value: float) -> float | None:
    """Return ``value`` as a plain float (``-0.0`` as ``0.0``), or None when not finite."""
    value = float(value)
    return value + 0.0 if math.isfinite(value) else None


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """Return ``r2``, ``mse``, ``rmse`` and ``mae`` of predictions against the truth.

    ``r2`` is None for fewer than two rows, where scikit-learn leaves it undefined.
    """
    return {
        "r2": finite_or_none(r2_score(y_true, y_pred)) if len(y_true) >= 2 else None,
        "mse": finite_or_none(mean_squared_error(y_true, y_pred)),
        "rmse": finite_or_none(root_mean_squared_error(y_true, y_pred)),
        "mae": finite_or_none(mean_absolute_error(y_true, y_pred)),
    }
