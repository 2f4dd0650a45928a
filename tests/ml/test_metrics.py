"""The service's regression metrics are scikit-learn's, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

from service.ml.metrics import finite_list, finite_or_none, prediction_metrics, regression_metrics


def _sklearn(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    return {
        "r2": float(r2_score(y, p)) if len(y) >= 2 else None,
        "mse": float(mean_squared_error(y, p)),
        "rmse": float(root_mean_squared_error(y, p)),
        "mae": float(mean_absolute_error(y, p)),
    }


def test_random_targets_and_predictions_match_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 3000))
        scale, offset = 10 ** rng.uniform(-3, 6), rng.uniform(-1e4, 1e4)
        y = rng.standard_normal(n) * scale + offset
        p = y + rng.standard_normal(n) * 10 ** rng.uniform(-4, 3)
        assert regression_metrics(y, p) == _sklearn(y, p)


@pytest.mark.parametrize(
    ("y", "p"),
    [
        (np.full(5, 3.0), np.full(5, 3.0)),  # constant target, perfect: r2 1.0
        (np.full(5, 3.0), np.arange(5.0)),  # constant target, imperfect: r2 0.0
        (np.arange(6.0), np.arange(6.0)),  # perfect fit
        (np.array([1.0]), np.array([2.0])),  # one row: r2 undefined
    ],
)
def test_edge_cases_match(y: np.ndarray, p: np.ndarray) -> None:
    assert regression_metrics(y, p) == _sklearn(y, p)


def test_columns_are_scored_separately() -> None:
    # Several columns (the search's candidates) reduce along a strided axis, which sums in
    # another order: equal to rounding, not to the bit.
    rng = np.random.default_rng(3)
    y = rng.standard_normal(200)
    predictions = y[:, None] + rng.standard_normal((200, 4))
    table = prediction_metrics(y, predictions)
    for j in range(4):
        expected = _sklearn(y, predictions[:, j])
        reference = [expected[k] for k in ("r2", "mse", "rmse", "mae")]
        np.testing.assert_allclose(table[j], reference, rtol=1e-13)  # type: ignore[arg-type]


def test_finite_list_is_finite_or_none_of_each_value() -> None:
    values = np.array([1.5, -0.0, 0.0, 2e300, -3.25])
    assert finite_list(values) == [finite_or_none(v) for v in values]
    assert [str(v) for v in finite_list(values)][1] == "0.0"  # no negative zero in JSON
    with_gaps = np.array([1.0, np.nan, np.inf, -np.inf, -0.0])
    assert finite_list(with_gaps) == [1.0, None, None, None, 0.0]
