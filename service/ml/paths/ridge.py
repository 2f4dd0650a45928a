"""Ridge for many alphas at once: one decomposition, then a matrix product per alpha set.

As scikit-learn's ``_ridge.py`` does for ``RidgeCV``: an eigendecomposition of ``XᵀX``
(:func:`eigen_decompose_gram`) when there are more rows than columns, else the thin SVD of
``X`` (:func:`svd_decompose_design`); either gives ``XᵀX = V·diag(d)·Vᵀ`` and every
alpha's exact solution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.ml.paths.problem import PenalizedLeastSquares

Basis = tuple[np.ndarray, np.ndarray, np.ndarray]


def eigen_decompose_gram(gram: np.ndarray, xy: np.ndarray) -> Basis:
    """``(V, d, Vᵀ Xᵀy)`` from the eigendecomposition of the Gram matrix."""
    d, V = np.linalg.eigh(gram)
    d = np.clip(d, 0.0, None)
    return V, d, V.T @ xy


def svd_decompose_design(X: np.ndarray, y: np.ndarray) -> Basis:
    """``(V, s², Vᵀ Xᵀy)`` from the thin SVD of the design (fewer rows than columns)."""
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    V = Vt.T
    return V, s * s, V.T @ (X.T @ y)


def ridge_basis(problem: PenalizedLeastSquares) -> Basis:
    """``(V, d, Vᵀ Xᵀ y)`` with ``XᵀX = V·diag(d)·Vᵀ`` restricted to the numerical row space,
    computed once per problem (folds share it across threads)."""
    with problem.ridge_lock:
        if problem.ridge_cache is None:
            if problem.gram is not None and problem.xy is not None:
                problem.ridge_cache = eigen_decompose_gram(problem.gram, problem.xy)
            else:
                problem.ridge_cache = svd_decompose_design(problem.X, problem.y)
        return problem.ridge_cache


def ridge_path(problem: PenalizedLeastSquares, alphas: Sequence[float]) -> np.ndarray:
    """Exact ``Ridge`` solutions, one column per alpha.

    ``w(α) = V·diag(1/(d + α))·Vᵀ·Xᵀy``; directions where ``d + α`` vanishes (``alpha``
    0 on a rank-deficient design) get no weight, the minimum-norm least-squares answer.
    """
    V, d, proj = ridge_basis(problem)
    a = np.asarray(alphas, dtype=np.float64)
    denom = d[:, None] + a[None, :]
    cutoff = max(float(d.max(initial=0.0)), 1.0) * max(problem.n_samples, problem.n_features)
    cutoff *= np.finfo(np.float64).eps
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(denom > cutoff, proj[:, None] / denom, 0.0)
    return V @ factors


def ridge_positive(problem: PenalizedLeastSquares, estimator: Any) -> np.ndarray:
    """``Ridge(positive=True)`` (L-BFGS-B) has no closed form: one fit of ``estimator``."""
    if problem.gram is not None and problem.X.strides == (0, 0):
        raise ValueError("Ridge(positive=True) needs the design matrix, not only its Gram")
    X = problem.X + problem.x_mean  # the uncentred design; the estimator centres it again
    estimator.fit(X, problem.y + problem.y_mean)
    return np.asarray(estimator.coef_, dtype=np.float64).reshape(-1, 1)
