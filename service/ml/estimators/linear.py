# The objectives are written in the seed text's notation (Greek letters, true minus signs).
"""Lasso, Ridge and ElasticNet: the linear regression families and the seed's λ notation.

A penalty is fitted as exactly the estimator a scikit-learn user would write:
``l1`` → ``Lasso(alpha)``, ``l2`` → ``Ridge(alpha)``, ``elasticnet`` →
``ElasticNet(alpha, l1_ratio)``. The estimators minimise, over the weights ``w`` (with
an unpenalized intercept when ``fit_intercept``; ``n`` is the number of training rows)::

    Lasso       (1/(2n))·‖y − Xw‖² + α·‖w‖₁
    ElasticNet  (1/(2n))·‖y − Xw‖² + α·ρ·‖w‖₁ + (α·(1 − ρ)/2)·‖w‖²      (ρ = l1_ratio)
    Ridge       ‖y − Xw‖² + α·‖w‖²

The seed text writes the objective as ``J(θ) = MSE(θ) + λ1·Σ|θi| + λ2·Σθi²`` with
``MSE = (1/n)·‖y − Xθ‖²`` over the training rows; ``θ`` are the weights only, the
intercept is never penalized (as in scikit-learn). Rescaling ``J`` by a positive
constant does not move its minimiser, so:

* ``J/2 = (1/(2n))·‖y − Xθ‖² + (λ1/2)·‖θ‖₁ + (λ2/2)·‖θ‖²``; matching ElasticNet term by
  term gives ``α·ρ = λ1/2`` and ``α·(1 − ρ) = λ2``, hence
  ``α = λ1/2 + λ2`` and ``ρ = λ1/(λ1 + 2·λ2)``.
  With ``λ2 = 0`` this is ``Lasso(alpha=λ1/2)``.
* ``n·J = ‖y − Xθ‖² + n·λ1·‖θ‖₁ + n·λ2·‖θ‖²``; with ``λ1 = 0`` this is
  ``Ridge(alpha=n·λ2)``.

The inverse maps (used to echo both notations) are ``λ1 = 2·α·ρ``, ``λ2 = α·(1 − ρ)``
for Lasso (ρ = 1) and ElasticNet, and ``λ1 = 0``, ``λ2 = α/n`` for Ridge.

Path solvers (:mod:`service.ml.paths`): Ridge is exact for every alpha from one
decomposition; Lasso and ElasticNet walk a warm-started coordinate-descent path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from service.ml.estimators.base import (
    PATH_ALPHAS,
    EstimatorFamily,
    Interval,
    Penalty,
    path_grid,
    register,
)
from service.ml.paths import enet, ridge
from service.ml.paths.problem import PathSolution, PenalizedLeastSquares

# Warm-started paths run this much tighter than the job's tol (see service.ml.paths.enet).
PATH_TOL_FACTOR = 1e-4


class _CoordinateDescent(EstimatorFamily):
    """Lasso and ElasticNet: coordinate descent, warm-started along a path of alphas."""

    default_max_iter: ClassVar[int | None] = 1000  # scikit-learn's: 1000 sweeps
    design_order: ClassVar[Literal["C", "F"]] = "F"  # coordinate descent copies to Fortran
    has_path_solver: ClassVar[bool] = True
    warm_starts: ClassVar[bool] = True

    def ratio(self, penalty: Penalty) -> float:
        """The ``l1_ratio`` the solver runs with."""
        return 1.0 if penalty.l1_ratio is None else float(penalty.l1_ratio)

    def to_lambdas(self, penalty: Penalty, n_train: int) -> tuple[float, float]:
        rho = self.ratio(penalty)
        return 2 * penalty.alpha * rho, penalty.alpha * (1 - rho)

    def solve_path(
        self,
        problem: PenalizedLeastSquares,
        penalty: Penalty,
        l1_ratio: float | None,
        alphas: Sequence[float],
        coef_init: np.ndarray | None,
    ) -> PathSolution:
        return enet.enet_path_chunk(
            problem,
            alphas,
            1.0 if l1_ratio is None else float(l1_ratio),
            coef_init=coef_init,
            tol=penalty.tol * PATH_TOL_FACTOR,
            max_iter=penalty.max_iter or 1000,
            positive=penalty.positive,
        )

    def default_path_alphas(
        self, X: np.ndarray, y: np.ndarray, penalty: Penalty, n_alphas: int = PATH_ALPHAS
    ) -> list[float]:
        """scikit-learn's ``_alpha_grid`` (log-spaced from the smallest alpha that zeroes
        every coefficient down to 1e-3 of it) with the fitted alpha in it: ``n_alphas`` in
        all (see :func:`~service.ml.estimators.base.path_grid`)."""
        ratio = self.ratio(penalty)
        if ratio > 0:
            # Xᵀ(y − ȳ) equals the centred design's (X − x̄)ᵀ(y − ȳ).
            Xy = X.T @ (y - y.mean() if penalty.fit_intercept else y)
            alpha_max = float(np.max(np.abs(Xy))) / (len(y) * ratio) if len(y) else 0.0
            if alpha_max > 0 and math.isfinite(alpha_max):
                return path_grid(alpha_max, alpha_max * 1e-3, float(penalty.alpha), n_alphas)
        return super().default_path_alphas(X, y, penalty, n_alphas)


@register
class LassoFamily(_CoordinateDescent):
    """``Lasso``: ``(1/(2n))·‖y − Xw‖² + α·‖w‖₁``; ``alpha = λ1/2`` (``λ2 = 0``)."""

    kind = "l1"
    aliases = ("lasso",)
    estimator_name = "Lasso"
    parameter_constraints: ClassVar[dict[str, Interval]] = {"alpha": Interval(0.0)}
    searchable = ("alpha",)

    def build(self, penalty: Penalty) -> Any:
        return Lasso(
            alpha=penalty.alpha,
            fit_intercept=penalty.fit_intercept,
            max_iter=penalty.max_iter,
            tol=penalty.tol,
            positive=penalty.positive,
        )

    def describes(self, lambda1: float, lambda2: float) -> bool:
        return lambda1 > 0 and lambda2 == 0

    def from_lambdas(
        self, lambda1: float, lambda2: float, n_train: int
    ) -> tuple[float, float | None]:
        return lambda1 / 2, None

    def conversion(self, n_train: int) -> str:
        return (
            "Lasso minimises (1/(2n))·||y − Xw||² + alpha·||w||₁; halving "
            "J = MSE + λ1·Σ|θ| gives alpha = λ1/2, λ2 = 0"
        )


@register
class ElasticNetFamily(_CoordinateDescent):
    """``ElasticNet``: ``(1/(2n))·‖y − Xw‖² + α·ρ·‖w‖₁ + (α·(1 − ρ)/2)·‖w‖²``;
    ``alpha = λ1/2 + λ2``, ``l1_ratio = λ1/(λ1 + 2·λ2)``."""

    kind = "elasticnet"
    estimator_name = "ElasticNet"
    parameter_constraints: ClassVar[dict[str, Interval]] = {
        "alpha": Interval(0.0),
        "l1_ratio": Interval(0.0, 1.0),
    }
    searchable = ("alpha", "l1_ratio")

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        return 0.5 if l1_ratio is None else l1_ratio

    def ratio(self, penalty: Penalty) -> float:
        return float(penalty.l1_ratio if penalty.l1_ratio is not None else 0.5)

    def build(self, penalty: Penalty) -> Any:
        assert penalty.l1_ratio is not None
        return ElasticNet(
            alpha=penalty.alpha,
            l1_ratio=penalty.l1_ratio,
            fit_intercept=penalty.fit_intercept,
            max_iter=penalty.max_iter,
            tol=penalty.tol,
            positive=penalty.positive,
        )

    def describes(self, lambda1: float, lambda2: float) -> bool:
        return lambda1 > 0 and lambda2 > 0

    def from_lambdas(
        self, lambda1: float, lambda2: float, n_train: int
    ) -> tuple[float, float | None]:
        return lambda1 / 2 + lambda2, lambda1 / (lambda1 + 2 * lambda2)

    def conversion(self, n_train: int) -> str:
        return (
            "ElasticNet minimises (1/(2n))·||y − Xw||² + alpha·l1_ratio·||w||₁ "
            "+ (alpha·(1 − l1_ratio)/2)·||w||²; halving J = MSE + λ1·Σ|θ| + λ2·Σθ² gives "
            "alpha = λ1/2 + λ2, l1_ratio = λ1/(λ1 + 2·λ2)"
        )


@register
class RidgeFamily(EstimatorFamily):
    """``Ridge``: ``‖y − Xw‖² + α·‖w‖²``; ``alpha = n·λ2`` (``λ1 = 0``)."""

    kind = "l2"
    aliases = ("ridge",)
    estimator_name = "Ridge"
    parameter_constraints: ClassVar[dict[str, Interval]] = {"alpha": Interval(0.0)}
    searchable = ("alpha",)
    design_order: ClassVar[Literal["C", "F"]] = "C"  # as scikit-learn's pipeline hands it
    has_path_solver: ClassVar[bool] = True

    def build(self, penalty: Penalty) -> Any:
        return Ridge(
            alpha=penalty.alpha,
            fit_intercept=penalty.fit_intercept,
            max_iter=penalty.max_iter,
            tol=penalty.tol,
            positive=penalty.positive,
            # Ridge supports positive=True only with lbfgs ("auto" would pick it too).
            solver="lbfgs" if penalty.positive else "auto",
        )

    def describes(self, lambda1: float, lambda2: float) -> bool:
        return lambda1 == 0 and lambda2 > 0

    def from_lambdas(
        self, lambda1: float, lambda2: float, n_train: int
    ) -> tuple[float, float | None]:
        return n_train * lambda2, None

    def to_lambdas(self, penalty: Penalty, n_train: int) -> tuple[float, float]:
        return 0.0, penalty.alpha / n_train

    def conversion(self, n_train: int) -> str:
        return (
            f"Ridge minimises ||y − Xw||² + alpha·||w||²; n·J with J = MSE + λ2·Σθ² "
            f"gives alpha = n·λ2 with n = {n_train} training rows"
        )

    def solve_path(
        self,
        problem: PenalizedLeastSquares,
        penalty: Penalty,
        l1_ratio: float | None,
        alphas: Sequence[float],
        coef_init: np.ndarray | None,
    ) -> PathSolution:
        if penalty.positive:
            # ``penalty`` carries the search's shared settings; the estimator is this family's.
            columns, seconds = [], []
            for a in alphas:
                started = time.perf_counter()
                estimator = self.build(replace(penalty, kind=self.kind, alpha=a, l1_ratio=None))
                columns.append(ridge.ridge_positive(problem, estimator))
                seconds.append(time.perf_counter() - started)
            return PathSolution(np.hstack(columns), np.zeros(len(alphas)), np.array(seconds))
        # One decomposition and one product serve every alpha alike.
        return PathSolution(
            ridge.ridge_path(problem, alphas), np.zeros(len(alphas)), np.ones(len(alphas))
        )

    def path_in_one_step(self, penalty: Penalty) -> bool:
        return not penalty.positive  # L-BFGS-B has no closed form: one fit per alpha

    def path_needs_design(self, penalty: Penalty) -> bool:
        return penalty.positive
