"""The train/test split of a job, exactly as ``train_test_split`` draws it."""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split

from service.ml.errors import FitError
from service.ml.spec import SplitSpec


def split_rows(n_rows: int, split: SplitSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train, test)`` row indices exactly as ``train_test_split`` picks them.

    ``test_size`` 0 trains on every row (in order) with an empty test set.

    Raises
    ------
    FitError
        If the split leaves no training row, or ``test_size`` exceeds the rows.
    """
    rows = np.arange(n_rows)
    if split.test_size == 0:
        return rows, rows[:0]
    try:
        train, test = train_test_split(
            rows, test_size=split.test_size, shuffle=split.shuffle, random_state=split.random_state
        )
    except ValueError as exc:
        raise FitError(
            f"cannot split {n_rows} rows with test_size={split.test_size}: {exc}"
        ) from exc
    return np.asarray(train), np.asarray(test)


def split_sizes(n_rows: int, split: SplitSpec) -> tuple[int, int]:
    """``(n_train, n_test)`` of :func:`split_rows`, without drawing the rows.

    ``train_test_split``'s arithmetic: a fractional ``test_size`` takes ``ceil(test_size·n)``
    test rows, an integer one that many.

    Raises
    ------
    FitError
        If the split leaves no training row, or ``test_size`` exceeds the rows.
    """
    if split.test_size == 0:
        return n_rows, 0
    if isinstance(split.test_size, int):
        n_test = split.test_size
        if n_test >= n_rows:
            raise FitError(
                f"cannot split {n_rows} rows with test_size={n_test}: it must be less than "
                f"the number of rows"
            )
    else:
        n_test = math.ceil(split.test_size * n_rows)
    n_train = n_rows - n_test
    if n_train < 1:
        raise FitError(
            f"cannot split {n_rows} rows with test_size={split.test_size}: no training row "
            f"would be left"
        )
    return n_train, n_test
