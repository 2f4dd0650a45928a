"""The folds of a search: each fold's least-squares problem and validation rows.

:class:`TrainingMoments` gives every fold's Gram matrix from one pass over the training
rows; :meth:`CVFold.from_columns` builds a fold from its own preprocessing where the
moments do not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

from service.ml.paths.problem import PenalizedLeastSquares
from service.ml.preprocessing import Columns, DesignTransformer, FeatureLayout
from service.ml.spec import PreprocessingSpec

# TrainingMoments shifts the rows by the mean of about this many of them.
SHIFT_SAMPLE_ROWS = 1024


class CVFold:
    """One fold: its training rows as a :class:`PenalizedLeastSquares`, its validation rows.

    The validation design is in the fold's own preprocessing (fitted on its training rows).
    """

    def __init__(self, problem: PenalizedLeastSquares, X_val: np.ndarray, y_val: np.ndarray):
        self.problem, self.X_val, self.y_val = problem, X_val, y_val
        # Solutions found so far per chain (Bayesian search warm-starts from the nearest).
        self.solved: dict[tuple[str, float | None], dict[float, np.ndarray]] = {}

    @classmethod
    def from_columns(
        cls,
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        y: np.ndarray,
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
        *,
        fit_intercept: bool,
    ) -> CVFold:
        """Fit the preprocessing on ``fit_rows`` (a ``DesignTransformer``), as a pipeline does.

        A numeric column without an observed value on ``fit_rows`` is a zero column there,
        as good as the pipeline's ``SimpleImputer`` dropping it.
        """
        design = DesignTransformer(layout, prep, empty_columns="zero")
        X_fit = design.fit_transform(columns, fit_rows)
        problem = PenalizedLeastSquares.from_design(X_fit, y[fit_rows], fit_intercept=fit_intercept)
        return cls(problem, design.transform(columns, val_rows), y[val_rows])

    def evaluate(
        self, coefs: np.ndarray, metrics: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validation metrics (one row per column of ``coefs``) and nonzero counts.

        ``metrics(y_val, X_val·coefs + intercepts)``: the family's fold metrics.
        """
        predictions = self.X_val @ coefs + self.problem.intercepts(coefs)
        return metrics(self.y_val, predictions), np.count_nonzero(coefs, axis=0)


def _is_constant(var: np.ndarray, mean: np.ndarray, n_samples: int) -> np.ndarray:
    # StandardScaler's test for a constant feature (its scale then becomes 1).
    eps = np.finfo(np.float64).eps
    return var <= n_samples * eps * var + (n_samples * mean * eps) ** 2


class _Serial:
    """``Executor.map`` in the calling thread."""

    @staticmethod
    def map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return map(fn, items)


_SERIAL = _Serial()


class TrainingMoments:
    """The training split's second moments per CV block: every fold's Gram without its design.

    The preprocessing of :mod:`service.ml.preprocessing` is, per column, ``x = (z − c)·d``: the
    imputer changes nothing when no numeric training value is missing, ``StandardScaler``
    subtracts the fold's mean and divides by its standard deviation, and one-hot columns
    (from an encoder fitted on all training rows; a category a fold never sees is a zero
    column there, which gets a zero coefficient as in the fold's own encoding) are kept as
    they are. With the intercept fitted, the estimators centre ``x`` again, so a fold's
    centred Gram is ``D·(Sᶠ − nᶠ·z̄ᶠz̄ᶠᵀ)·D`` with ``Sᶠ`` the sum of ``zzᵀ`` over the fold's
    training rows — the training total minus the fold's validation block. One pass over the
    training rows (the blocks' ``ZᵀZ``) thus gives every fold, where building each fold's
    design and Gram would cost ``folds − 1`` passes. ``z`` is shifted close to the training
    means first, so the subtractions lose no precision to a large mean (a shift ``k``
    standard deviations off costs about ``log2(1 + k²)`` bits): by the mean of an evenly
    spaced sample of about ``SHIFT_SAMPLE_ROWS`` rows, each block shifting its own copy.

    Use :meth:`applies` first: it needs ``fit_intercept``, no missing numeric training value
    and more fold training rows than columns.
    """

    def __init__(
        self,
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        y: np.ndarray,
        train: np.ndarray,
        blocks: Sequence[np.ndarray],
        Z: np.ndarray | None = None,
        pool: Executor | None = None,
    ) -> None:
        """``pool``, when given, computes the blocks' moments in parallel."""
        if Z is None:
            Z = self.raw_design(columns, layout, prep, train)
        n, p = Z.shape
        self.n_numeric = len(layout.numeric)
        self.scaled = prep.scaling == "standard"
        shift = Z[:: max(1, n // SHIFT_SAMPLE_ROWS)].mean(axis=0)
        self.shift = shift
        self.Z = Z  # unshifted
        self.y = y[train]
        self.y_shift = float(self.y.mean())
        ys = self.y - self.y_shift
        self.blocks = [np.asarray(b) for b in blocks]

        def moments(b: np.ndarray) -> tuple[np.ndarray, ...]:
            Zb = Z[b]  # one copy; ``Zb.T @ Zb`` of one array is a symmetric rank-k update
            Zb -= shift
            return Zb.T @ Zb, Zb.min(axis=0), Zb.max(axis=0), Zb.sum(axis=0), Zb.T @ ys[b]

        per_block = list((pool or _SERIAL).map(moments, self.blocks))
        self.block_gram = [m[0] for m in per_block]
        self.block_min = [m[1] for m in per_block]
        self.block_max = [m[2] for m in per_block]
        self.block_sum = [m[3] for m in per_block]
        self.block_zy = [m[4] for m in per_block]
        self.block_ysum = [float(ys[b].sum()) for b in self.blocks]
        self.gram = np.sum(self.block_gram, axis=0)
        self.total_sum = np.sum(self.block_sum, axis=0)
        self.zy = np.sum(self.block_zy, axis=0)
        self.ysum = float(np.sum(self.block_ysum))
        self.n_samples, self.n_features = n, p

    @staticmethod
    def raw_design(
        columns: Columns,
        layout: FeatureLayout,
        prep: PreprocessingSpec,
        rows: np.ndarray,
        *,
        numeric: np.ndarray | None = None,
    ) -> np.ndarray:
        """The unscaled, unimputed design of ``rows`` (NaN where a numeric value is missing).

        ``numeric``: the rows' numeric block, when the caller has it (it becomes part of
        the result).
        """
        raw = prep.model_copy(update={"scaling": "none", "impute": "none"})
        return DesignTransformer(layout, raw).fit_transform(columns, rows, numeric=numeric)

    @staticmethod
    def applies(
        Z: np.ndarray, layout: FeatureLayout, n_fold_rows: int, fit_intercept: bool
    ) -> bool:
        """Whether the moments give the folds exactly (see the class doc)."""
        return (
            fit_intercept
            # The training split's encoder groups rare values as no fold's own one would.
            and not layout.grouped
            and n_fold_rows > Z.shape[1]
            and not (layout.with_missing and np.isnan(Z[:, : len(layout.numeric)]).any())
        )

    def fold(self, k: int | None) -> CVFold:
        """Fold ``k`` (trained on every block but ``k``), or all training rows for None."""
        others = [j for j in range(len(self.blocks)) if j != k]
        if k is None:
            rows, S, zsum, zy, ysum = None, self.gram, self.total_sum, self.zy, self.ysum
            n = self.n_samples
        else:
            rows = self.blocks[k]
            S = self.gram - self.block_gram[k]
            zsum = self.total_sum - self.block_sum[k]
            zy = self.zy - self.block_zy[k]
            ysum = self.ysum - self.block_ysum[k]
            n = self.n_samples - len(rows)
        z_mean = zsum / n
        y_mean = ysum / n
        centred = S - n * np.outer(z_mean, z_mean)
        xy = zy - z_mean * ysum  # Σ(z − z̄)(y − ȳ) = Σ z·y' − z̄·Σy' with y' = y − shift
        # A column constant on the fold's rows (a category it never sees, a numeric column
        # with one value there) is exactly zero once centred, as in the fold's own pipeline;
        # its moments would only hold rounding noise, which scaling could blow up.
        lows = np.min([self.block_min[j] for j in others], axis=0)
        highs = np.max([self.block_max[j] for j in others], axis=0)
        constant = lows == highs
        centred[constant, :] = 0.0
        centred[:, constant] = 0.0
        xy[constant] = 0.0
        d = np.ones(self.n_features)
        c = -self.shift  # unscaled columns keep their raw values
        if self.scaled and self.n_numeric:
            m = self.n_numeric
            var = np.clip(np.diag(centred)[:m] / n, 0.0, None)
            raw_mean = z_mean[:m] + self.shift[:m]
            scale = np.sqrt(var)
            scale[_is_constant(var, raw_mean, n) | constant[:m]] = 1.0
            d[:m] = 1.0 / scale
            c = c.copy()
            c[:m] = z_mean[:m]
        gram = centred * d[:, None] * d[None, :]
        xy = xy * d
        train_positions = (
            np.arange(self.n_samples)
            if k is None
            else np.concatenate([self.blocks[j] for j in others])
        )
        y_fit = self.y[np.sort(train_positions)]
        problem = PenalizedLeastSquares.from_gram(
            gram,
            xy,
            y_fit - (y_mean + self.y_shift),
            x_mean=(z_mean - c) * d,
            y_mean=y_mean + self.y_shift,
        )
        if rows is None:
            return CVFold(problem, np.empty((0, self.n_features)), np.empty(0))
        X_val = self.Z[rows]  # a new array: preprocessed in place
        X_val -= c + self.shift  # Z is not shifted
        X_val *= d
        return CVFold(problem, X_val, self.y[rows])
