"""What a search returns: plain dataclasses, turned into API bodies by :mod:`service.models`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.ml.estimators import Penalty
from service.ml.paths.problem import PenalizedLeastSquares


@dataclass(frozen=True)
class CandidateResult:
    """One candidate that finished every fold, as a row of ``GridSearchCV.cv_results_``.

    Attributes
    ----------
    params : dict
        The searched parameters, keys sorted as ``GridSearchCV`` shows them.
    fold_scores : ndarray of shape (n_folds,)
        The scorer's value on each fold's validation rows (NaN where it is undefined).
    mean_score, std_score : float
        ``mean_test_score`` and ``std_test_score`` (NaN when a fold score is).
    fit_seconds : float
        The candidate's own solver and validation-scoring time, summed over folds: a path
        chunk solved in one call is timed, and its time split across the chunk's alphas by
        the work the solver counts for each (coordinate descent's sweeps; a closed form's
        alphas alike), the scoring's evenly (:func:`~service.ml.search.evaluate.alpha_seconds`).
    rank : int
        ``rank_test_score``.
    n_nonzero : float
        Nonzero coefficients, averaged over folds.
    """

    params: dict[str, Any]
    fold_scores: np.ndarray
    mean_score: float
    std_score: float
    fit_seconds: float
    rank: int
    n_nonzero: float


@dataclass(frozen=True)
class OneStandardError:
    """The one-standard-error rule's numbers: the best mean, its index, the threshold."""

    threshold: float
    max_score_index: int
    max_score: float


@dataclass(frozen=True)
class FamilyBest:
    """The best finished candidate of one estimator family, in a comparison of families,
    and the CV curve of its chain (its family and ``l1_ratio``): the searched alphas
    (descending) with their mean and std scores."""

    kind: str
    best_index: int
    best_score: float
    alpha: float
    l1_ratio: float | None
    penalty: Penalty  # its estimator, refit on the training split for ``n_nonzero``
    path_alphas: list[float] = field(default_factory=list)
    path_mean: list[float] = field(default_factory=list)
    path_std: list[float] = field(default_factory=list)


@dataclass
class SearchResult:
    """The outcome of a search, handed to the final fit.

    Attributes
    ----------
    penalty : Penalty
        The selected candidate's estimator, refit on the whole training split.
    candidates : list of CandidateResult
        The candidates that finished every fold, in search order.
    best_index : int
        The selected candidate's index into ``candidates``.
    one_se : OneStandardError or None
        The rule's numbers, when ``select`` is ``1se``.
    comparison : list of FamilyBest or None
        Per searched family (in the order given), its best candidate; None when the
        family was not searched.
    n_candidates : int
        Candidates planned.
    timed_out : bool
    seconds : float
        Wall time of the search, preparing the folds included.
    cv_metrics : dict of str to float
        The selected candidate's ``r2``, ``mse``, ``rmse``, ``mae``, averaged over folds.
    path_alphas, path_mean, path_std : list of float
        The selected chain's searched alphas (descending) and their CV scores.
    fits_done, fits_total : int
        Candidate × fold fits run and planned.
    warnings : list of str
    path_problem : PenalizedLeastSquares or None
        The whole training split's problem, when the search had it (the moments).
    path_coefficients : (ndarray, bool) or None
        The selected chain's path on the whole training split (a column per alpha of
        ``path_alphas``) and whether it met ``tol``, when the search computed it already.
    """

    penalty: Penalty
    candidates: list[CandidateResult]
    best_index: int
    one_se: OneStandardError | None
    comparison: list[FamilyBest] | None
    n_candidates: int
    timed_out: bool
    seconds: float
    cv_metrics: dict[str, float]
    path_alphas: list[float]
    path_mean: list[float]
    path_std: list[float]
    fits_done: int
    fits_total: int
    warnings: list[str]
    path_problem: PenalizedLeastSquares | None = None
    path_coefficients: tuple[np.ndarray, bool] | None = None

    @property
    def best(self) -> CandidateResult:
        """The selected candidate."""
        return self.candidates[self.best_index]
