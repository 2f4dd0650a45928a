"""The estimator seam: what a family of estimators provides, and the registry of families.

An *estimator family* is one scikit-learn estimator class as regfit fits, tunes and echoes
it (Lasso, Ridge, ElasticNet: :mod:`service.ml.estimators.linear`). Everything that depends
on which estimator a job uses is a member of its family; the rest of :mod:`service.ml`
(fitting, the search, the paths) asks the family and never compares kind strings.

A new family (the next one: ``LogisticRegression``, binary or multinomial, with ``C``,
``l1_ratio`` and ``class_weight``) is one module that subclasses :class:`EstimatorFamily`,
decorates it with :func:`register`, and is imported by ``service/ml/estimators/__init__.py``.
It must provide:

``kind``, ``aliases``, ``estimator_name``
    The canonical name a job spec uses (``"l1"``), other accepted names (``"lasso"``) and
    the scikit-learn class name shown to users (``"Lasso"``).
``task``, ``fold_metrics``
    ``"regression"`` or ``"classification"``: it picks the fold metrics and the scorers a
    job may name (:data:`METRICS`, :data:`SCORERS`). A classification family adds its
    task's entries there and overrides ``fold_metrics`` (accuracy, log loss, ... of the
    linear predictions a path solver's coefficients give on a fold's validation rows).
``parameter_constraints``, ``searchable``, ``default_l1_ratio``, ``default_max_iter``
    Like scikit-learn's ``_parameter_constraints``: the one declared place where the
    family's hyperparameters (besides ``fit_intercept``, ``tol``, ``max_iter``,
    ``positive``) are bounded, as :class:`Interval`\\ s; a hyperparameter the family does
    not declare must be None. :meth:`EstimatorFamily.check` applies them whenever a
    :class:`Penalty` is made (:meth:`EstimatorFamily.penalty`). ``searchable`` lists those a
    search may vary, in the order ``GridSearchCV`` shows them; the defaults fill what a job
    leaves unset. (:class:`Penalty` carries ``alpha`` and ``l1_ratio`` today; a family with
    other hyperparameters, such as ``C`` and ``class_weight``, adds them there.)
``build``
    The scikit-learn equivalent: the unfitted estimator for a :class:`Penalty`. A fit of
    regfit equals ``make_pipeline(<preprocessing>, family.build(penalty)).fit(...)``.
    The class docstring states the objective the estimator minimises.
``describes``, ``from_lambdas``, ``to_lambdas``, ``conversion``
    The conversion from and to the seed's λ notation ``J(θ) = MSE(θ) + λ1·Σ|θi| + λ2·Σθi²``,
    with a sentence that states it to the user. A family without a λ form (a classifier)
    returns False from ``describes`` and is never chosen by lambdas.
``solve_path`` (optional)
    Many alphas at once on one prepared least-squares problem
    (:mod:`service.ml.paths`): ``has_path_solver`` says whether there is one. With it come
    ``path_in_one_step`` (one decomposition covers every alpha), ``warm_starts`` (a
    solution is a good start for the next alpha), ``path_needs_design`` (the solver needs
    the design matrix, not only its Gram) and ``default_path_alphas``. The search's
    evaluation loop (:mod:`service.ml.search.evaluate`) runs path solvers only so far: a
    family without one needs a cold-fit evaluation there (``build(...).fit`` per
    candidate and fold) — the next family's work.
``design_order``
    The memory order the estimator's solver wants the design matrix in.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from service.ml.errors import FitError
from service.ml.metrics import prediction_metrics
from service.ml.paths.problem import PathSolution, PenalizedLeastSquares

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Scorer:
    """A scorer of ``GridSearchCV``: a column of the fold metrics, and its sign (greater is
    better)."""

    column: int
    sign: float


# The metrics every fold fit of a task reports, in this order, and the scorers over them.
METRICS: dict[Task, tuple[str, ...]] = {"regression": ("r2", "mse", "rmse", "mae")}
SCORERS: dict[Task, dict[str, Scorer]] = {
    "regression": {
        "r2": Scorer(0, 1.0),
        "neg_mean_squared_error": Scorer(1, -1.0),
        "neg_root_mean_squared_error": Scorer(2, -1.0),
        "neg_mean_absolute_error": Scorer(3, -1.0),
    }
}


# The number of alphas of an untuned model's path (README: "30 alphas around the fitted one").
PATH_ALPHAS = 30


@dataclass(frozen=True)
class Interval:
    """A closed real interval a hyperparameter must lie in."""

    low: float
    high: float = math.inf

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Penalty:
    """A resolved penalty: the arguments of one scikit-learn estimator.

    Parameters
    ----------
    kind : str
        The family's ``kind`` (``"l1"``, ``"l2"``, ``"elasticnet"``).
    alpha : float
        The estimator's ``alpha``.
    l1_ratio : float or None
        ``ElasticNet``'s ``l1_ratio``; None for a family without it.
    fit_intercept, tol, positive
        Passed to the estimator unchanged.
    max_iter : int or None
        Passed unchanged. A spec's None resolves to the family's ``default_max_iter``.
    lambda1, lambda2 : float or None
        The seed-notation values as the user gave them (echoed verbatim), or None when
        the penalty was given in scikit-learn's form.
    C, class_weight : float or str or None
        ``LogisticRegression``'s (a classifier's ``alpha`` is ``1/C``); None for a regressor.
    """

    kind: str
    alpha: float
    l1_ratio: float | None
    fit_intercept: bool
    max_iter: int | None
    tol: float
    positive: bool
    lambda1: float | None = None
    lambda2: float | None = None
    C: float | None = None
    class_weight: str | None = None

    @property
    def family(self) -> EstimatorFamily:
        """The family this penalty's estimator belongs to."""
        return get(self.kind)

    def estimator(self) -> Any:
        """Return the unfitted scikit-learn estimator this penalty stands for."""
        return self.family.build(self)


class EstimatorFamily(ABC):
    """One scikit-learn estimator class, as regfit fits, tunes and echoes it (see the module
    doc for what a subclass provides)."""

    kind: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    estimator_name: ClassVar[str]
    task: ClassVar[Task] = "regression"
    parameter_constraints: ClassVar[dict[str, Interval]]
    searchable: ClassVar[tuple[str, ...]]
    default_max_iter: ClassVar[int | None] = None
    design_order: ClassVar[Literal["C", "F"]] = "F"
    has_path_solver: ClassVar[bool] = False
    warm_starts: ClassVar[bool] = False

    @property
    def metrics(self) -> tuple[str, ...]:
        """The fold metrics of the family's task, in the order the folds report them."""
        return METRICS[self.task]

    @property
    def scorers(self) -> dict[str, Scorer]:
        """The scorers a job of this family may name."""
        return SCORERS[self.task]

    def fold_metrics(self, y_true: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """The task's :attr:`metrics` (columns) of each column of linear ``predictions``
        (``X·w + b``) against a fold's validation targets (a classifier turns them into
        classes or probabilities first)."""
        return prediction_metrics(y_true, predictions)

    def check(self, params: dict[str, float | None]) -> None:
        """Validate hyperparameters against :attr:`parameter_constraints`.

        Raises
        ------
        FitError
            For a value out of its interval, or a hyperparameter the family does not have.
        """
        for name, value in params.items():
            if value is None:
                continue
            interval = self.parameter_constraints.get(name)
            if interval is None:
                raise FitError(f"{name} applies only to other penalties, not '{self.kind}'")
            if value not in interval:
                raise FitError(
                    f"{name}={value} is outside [{interval.low}, {interval.high}] for "
                    f"{self.estimator_name}"
                )

    def penalty(
        self,
        alpha: float,
        l1_ratio: float | None,
        *,
        fit_intercept: bool,
        max_iter: int | None,
        tol: float,
        positive: bool,
        lambdas: tuple[float, float] | None = None,
    ) -> Penalty:
        """A checked :class:`Penalty` of this family (``max_iter`` None: the default)."""
        ratio = self.default_l1_ratio(l1_ratio)
        self.check({"alpha": alpha, "l1_ratio": ratio})
        return Penalty(
            self.kind,
            alpha,
            ratio,
            fit_intercept=fit_intercept,
            max_iter=self.default_max_iter if max_iter is None else max_iter,
            tol=tol,
            positive=positive,
            lambda1=None if lambdas is None else lambdas[0],
            lambda2=None if lambdas is None else lambdas[1],
        )

    def default_l1_ratio(self, l1_ratio: float | None) -> float | None:
        """The family's ``l1_ratio`` for a given (or absent) one: None if it has none."""
        return None

    @abstractmethod
    def build(self, penalty: Penalty) -> Any:
        """The unfitted scikit-learn estimator of ``penalty``."""

    @abstractmethod
    def describes(self, lambda1: float, lambda2: float) -> bool:
        """Whether the seed's ``(λ1, λ2)`` (not both 0) is a penalty of this family."""

    @abstractmethod
    def from_lambdas(
        self, lambda1: float, lambda2: float, n_train: int
    ) -> tuple[float, float | None]:
        """``(alpha, l1_ratio)`` of the seed's ``(λ1, λ2)`` for ``n_train`` training rows."""

    @abstractmethod
    def to_lambdas(self, penalty: Penalty, n_train: int) -> tuple[float, float]:
        """The seed's ``(λ1, λ2)`` of ``penalty`` for ``n_train`` training rows."""

    @abstractmethod
    def conversion(self, n_train: int) -> str:
        """The objective and the λ conversion, in a sentence shown with every model."""

    def solve_path(
        self,
        problem: PenalizedLeastSquares,
        penalty: Penalty,
        l1_ratio: float | None,
        alphas: Sequence[float],
        coef_init: np.ndarray | None,
    ) -> PathSolution:
        """Solve ``problem`` for ``alphas`` (descending): coefficients (a column per alpha),
        each solution's duality gap relative to ``‖y − ȳ‖²`` (0 for exact solutions), and
        each alpha's share of the work (:class:`~service.ml.paths.problem.PathSolution`).

        ``penalty`` supplies ``positive``, ``tol`` and ``max_iter``.
        """
        raise NotImplementedError(f"{self.estimator_name} has no path solver")

    def coefficient_path(
        self,
        X: np.ndarray,
        y: np.ndarray,
        penalty: Penalty,
        alphas: Sequence[float],
        *,
        problem: PenalizedLeastSquares | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Coefficients (one column per alpha, descending) of ``penalty`` along ``alphas``.

        Fitted as in the search (:meth:`solve_path`), on ``problem`` when the search already
        prepared the training split's. Returns the coefficients and whether every solution
        met ``penalty.tol``.
        """
        if problem is None or self.path_needs_design(penalty):
            problem = PenalizedLeastSquares.from_design(
                X, y, fit_intercept=penalty.fit_intercept, copy=True
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            solution = self.solve_path(problem, penalty, penalty.l1_ratio, list(alphas), None)
        return solution.coefs, bool(np.all(solution.gaps <= penalty.tol))

    def path_in_one_step(self, penalty: Penalty) -> bool:
        """Whether one step (a decomposition) solves every alpha of a path at once."""
        return False

    def path_needs_design(self, penalty: Penalty) -> bool:
        """Whether the path solver needs the design matrix, not only its Gram matrix."""
        return False

    def default_path_alphas(
        self, X: np.ndarray, y: np.ndarray, penalty: Penalty, n_alphas: int = PATH_ALPHAS
    ) -> list[float]:
        """``n_alphas`` alphas around a fitted penalty, for an untuned model's path
        (descending): log-spaced from ``1e3·alpha`` down to ``1e-3·alpha``, the fitted
        alpha among them (see :func:`path_grid`)."""
        alpha = penalty.alpha
        if alpha <= 0:
            return path_grid(1e3, 1e-3, alpha, n_alphas)
        return path_grid(alpha * 1e3, alpha * 1e-3, alpha, n_alphas)


def path_grid(high: float, low: float, alpha: float, n_alphas: int) -> list[float]:
    """``n_alphas`` alphas (descending) log-spaced from ``high`` down to ``low`` that include
    the fitted ``alpha``: it replaces the grid's nearest value (in log scale), and widens the
    grid to reach it when it lies outside; an ``alpha`` of 0 (no penalty, which has no place
    on a log scale) is appended after ``n_alphas - 1`` log-spaced values."""
    if alpha <= 0:
        return [float(a) for a in np.geomspace(high, low, n_alphas - 1)] + [0.0]
    grid = np.geomspace(max(high, alpha), min(low, alpha), n_alphas)
    grid[int(np.argmin(np.abs(np.log(grid) - math.log(alpha))))] = alpha
    return [float(a) for a in grid]


_REGISTRY: dict[str, EstimatorFamily] = {}


def register(cls: type[EstimatorFamily]) -> type[EstimatorFamily]:
    """Class decorator: make a family known by its ``kind`` and ``aliases``."""
    family = cls()
    for name in (cls.kind, *cls.aliases):
        if name in _REGISTRY:
            raise ValueError(f"estimator family {name!r} is registered twice")
        _REGISTRY[name] = family
    return cls


def get(kind: str) -> EstimatorFamily:
    """The family of ``kind`` or one of its aliases.

    Raises
    ------
    KeyError
        For an unknown name.
    """
    return _REGISTRY[kind]


def families() -> list[EstimatorFamily]:
    """Every registered family, once each, in registration order."""
    return list(dict.fromkeys(_REGISTRY.values()))


def for_lambdas(lambda1: float, lambda2: float) -> EstimatorFamily:
    """The family the seed's ``(λ1, λ2)`` describe.

    Raises
    ------
    ValueError
        If no family does (both are 0).
    """
    for family in families():
        if family.describes(lambda1, lambda2):
            return family
    raise ValueError("lambda1 and lambda2 are both 0")
