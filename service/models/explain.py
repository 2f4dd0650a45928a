"""Explanations: each input feature's share of a prediction, and the model's importance ranking.

A linear model's prediction is ``intercept + sum(coef * column)`` over its design columns, so
the contribution of a feature is exact: a numeric feature's coefficient times its
standardized (and, if missing, imputed) value; a categorical feature's one-hot columns summed
back to it, i.e. the coefficient of its value's column (the infrequent column's for an
unseen value, or 0 without one). The contributions plus the intercept are the prediction.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np

from service.ml import portable


def contributions(model: portable.CompiledModel, inputs: portable.PredictInputs) -> np.ndarray:
    """Per row and feature (in ``model.feature_names`` order) the feature's contribution.

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    X = np.asarray(inputs.numeric, dtype=np.float64)
    if model.impute_values is not None:
        X = np.where(np.isnan(X), model.impute_values, X)
    if model.means is not None and model.scales is not None:
        X = (X - model.means) / model.scales
    out = np.empty((X.shape[0], model.n_features), dtype=np.float64)
    out[:, list(model.numeric_index)] = X * model.numeric_coef
    for j, values, coef_of, other in zip(
        model.categorical_index,
        inputs.categorical,
        model.category_coef,
        model.other_coef,
        strict=True,
    ):
        out[:, j] = np.fromiter(map(coef_of.get, values, repeat(other)), np.float64, len(values))
    return out


def explanation_body(
    model: portable.CompiledModel, inputs: portable.PredictInputs
) -> dict[str, Any]:
    """``{"intercept", "contributions": [{feature: value}]}`` for a prediction response."""
    names = model.feature_names
    return {
        "intercept": model.intercept,
        "contributions": [
            dict(zip(names, row, strict=True)) for row in contributions(model, inputs).tolist()
        ],
    }


def importance(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's columns ranked by the magnitude of their standardized coefficient.

    ``coef_norm`` is H2O's: the coefficient on the standardized design (``coefficients.scaled``,
    the numeric features scaled to unit variance when ``scaling`` is ``standard``; one-hot
    columns as they are), so magnitudes compare across features of different units.
    """
    scaled = (summary.get("coefficients") or {}).get("scaled") or {}
    if isinstance(scaled, list):  # a classifier's table: a column's largest |coef| over rows
        columns = summary["coefficients"]["columns"]
        scaled = {
            name: max((abs(row[j] or 0.0) for row in scaled), default=0.0)
            for j, name in enumerate(columns)
        }
    ranked = sorted(scaled.items(), key=lambda item: -abs(item[1] or 0.0))
    return [{"feature": name, "coef_norm": value} for name, value in ranked]
