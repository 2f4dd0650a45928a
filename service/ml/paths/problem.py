"""One penalized least-squares problem on fixed rows, prepared once for many alphas."""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np


class PathSolution(NamedTuple):
    """A path solver's answer for alphas ``a_1 > … > a_k``.

    Attributes
    ----------
    coefs : ndarray of shape (n_features, k)
        One solution per alpha.
    gaps : ndarray of shape (k,)
        Each solution's duality gap relative to ``‖y − ȳ‖²`` (0 for exact solutions).
    work : ndarray of shape (k,)
        Each alpha's share of the work as the solver counts it, in any unit: coordinate
        descent's sweeps (``n_iter``), one each for a closed form, seconds for separate
        fits. The search splits a path's measured time across its alphas by it.
    """

    coefs: np.ndarray
    gaps: np.ndarray
    work: np.ndarray


class PenalizedLeastSquares:
    """Penalized least squares on fixed rows, prepared once and solved for many alphas.

    Build it with :meth:`from_design` (a design matrix) or :meth:`from_gram` (the centred
    Gram matrix of rows that were never materialised, see :class:`TrainingMoments`).

    Attributes
    ----------
    n_samples, n_features : int
    X : ndarray
        The centred design (Fortran-ordered) when coordinate descent runs on it; with a Gram
        matrix a zero-strided stand-in of the same shape (``enet_path`` then only reads its
        shape).
    y : ndarray
        The centred target.
    gram, xy : ndarray or None
        ``XᵀX`` and ``Xᵀy`` of the centred design, when there are more rows than columns.
    x_mean, y_mean
        The means the rows were centred with (zeros without ``fit_intercept``); the
        intercept of a solution ``w`` is ``ȳ − x̄·w``.

    Notes
    -----
    With more rows than columns coordinate descent costs ``O(p²)`` per sweep on the Gram
    matrix instead of ``O(np)``, and Ridge is an eigendecomposition of ``XᵀX``. Otherwise
    coordinate descent runs on ``X`` itself and Ridge uses the thin SVD of ``X``.
    """

    def __init__(
        self,
        *,
        X: np.ndarray,
        y: np.ndarray,
        gram: np.ndarray | None,
        xy: np.ndarray | None,
        x_mean: np.ndarray,
        y_mean: float,
    ) -> None:
        self.n_samples, self.n_features = X.shape
        self.X, self.y, self.gram, self.xy = X, y, gram, xy
        self.x_mean, self.y_mean = x_mean, y_mean
        self.y_norm2 = float(y @ y)
        # The Ridge basis of :func:`service.ml.paths.ridge.ridge_basis`, made once per problem.
        self.ridge_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.ridge_lock = threading.Lock()

    @classmethod
    def from_design(
        cls, X: np.ndarray, y: np.ndarray, *, fit_intercept: bool, copy: bool = False
    ) -> PenalizedLeastSquares:
        """Centre ``X`` (in place unless ``copy``) and ``y`` as the estimators do."""
        n, p = X.shape
        X = np.asarray(X, dtype=np.float64)
        if fit_intercept:
            x_mean = X.mean(axis=0)
            if copy:
                X = X - x_mean  # one pass: the centred copy, not a copy then centring
            else:
                X -= x_mean
            y_mean = float(y.mean())
        else:
            if copy:
                X = X.copy()
            x_mean, y_mean = np.zeros(p), 0.0
        yc = np.ascontiguousarray(y - y_mean, dtype=np.float64)
        if n > p:
            return cls(X=X, y=yc, gram=X.T @ X, xy=X.T @ yc, x_mean=x_mean, y_mean=y_mean)
        return cls(X=np.asfortranarray(X), y=yc, gram=None, xy=None, x_mean=x_mean, y_mean=y_mean)

    @classmethod
    def from_gram(
        cls,
        gram: np.ndarray,
        xy: np.ndarray,
        y: np.ndarray,
        *,
        x_mean: np.ndarray,
        y_mean: float,
    ) -> PenalizedLeastSquares:
        """From the centred ``gram`` and ``xy`` of ``len(y)`` rows; ``y`` centred."""
        stand_in = np.broadcast_to(np.float64(0.0), (len(y), gram.shape[0]))
        return cls(X=stand_in, y=y, gram=gram, xy=xy, x_mean=x_mean, y_mean=y_mean)

    def intercepts(self, coefs: np.ndarray) -> np.ndarray:
        """Intercepts of the solutions ``coefs`` (columns), in the uncentred problem."""
        return self.y_mean - self.x_mean @ coefs
