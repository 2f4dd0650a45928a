"""Regression metrics, as scikit-learn computes them, as JSON-safe floats."""

from __future__ import annotations

import math

import numpy as np


def finite_or_none(value: float) -> float | None:
    """Return ``value`` as a plain float (``-0.0`` as ``0.0``), or None when not finite."""
    value = float(value)
    return value + 0.0 if math.isfinite(value) else None


def finite_list(values: np.ndarray) -> list[float | None]:
    """``finite_or_none`` of each value of a 1-d array, at C speed when all are finite."""
    if bool(np.isfinite(values).all()):
        return (np.asarray(values, dtype=np.float64) + 0.0).tolist()  # + 0.0: -0.0 → 0.0
    return [finite_or_none(v) for v in values]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """Return ``r2``, ``mse``, ``rmse`` and ``mae`` of predictions against the truth.

    ``r2`` is None for fewer than two rows, where scikit-learn leaves it undefined. The
    values are scikit-learn's to the bit (``tests/ml/test_metrics.py``), without its
    per-call input validation.
    """
    r2, mse, rmse, mae = prediction_metrics(y_true, np.reshape(y_pred, (-1, 1)))[0]
    return {
        "r2": finite_or_none(r2) if len(y_true) >= 2 else None,
        "mse": finite_or_none(mse),
        "rmse": finite_or_none(rmse),
        "mae": finite_or_none(mae),
    }


def prediction_metrics(y_true: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """``r2``, ``mse``, ``rmse``, ``mae`` (columns) of each column of ``predictions``.

    Vectorised forms of scikit-learn's metrics (``r2`` with ``force_finite``: 1.0 for a
    perfect fit of a constant target, 0.0 otherwise; NaN for fewer than two rows).
    """
    residuals = y_true[:, None] - predictions
    squares = residuals**2
    mse = squares.mean(axis=0)
    mae = np.abs(residuals).mean(axis=0)
    numerator = squares.sum(axis=0)
    denominator = float(((y_true - y_true.mean()) ** 2).sum())
    if len(y_true) < 2:
        r2 = np.full(mse.shape, np.nan)
    elif denominator == 0.0:
        r2 = np.where(numerator == 0.0, 1.0, 0.0)
    else:
        r2 = 1.0 - numerator / denominator
    return np.column_stack([r2, mse, np.sqrt(mse), mae])
