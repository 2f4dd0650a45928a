"""What a fit produces (:class:`FitResult`), and what is computed from the fitted estimator:
the original-unit coefficients, the portable document, the regularization path, the
compared families' sparsity."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from service.ml import portable
from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.preprocessing import DesignTransformer, FeatureLayout
from service.ml.search.results import SearchResult


@dataclass(frozen=True)
class RegularizationPath:
    """The fitted penalty's coefficients (scaled units) along a range of its alphas.

    ``coefs`` has one row per output feature and one column per alpha of ``alphas``
    (descending); ``cv_mean``/``cv_std`` are the searched alphas' CV scores of a tuned model
    (NaN at an alpha that was not searched). ``compared`` holds, for a comparison of
    penalties, each compared family's path (the model's own family: this path) in the
    order searched, its ``alpha`` that family's best.
    """

    kind: str
    l1_ratio: float | None
    alpha: float
    alphas: list[float]
    coefs: np.ndarray
    converged: bool
    cv_mean: list[float] | None = None
    cv_std: list[float] | None = None
    compared: tuple[RegularizationPath, ...] = ()


@dataclass
class FitResult:
    """What a fit produces.

    Attributes
    ----------
    document : dict
        The portable model (:mod:`service.ml.portable`).
    layout : FeatureLayout
        The features used and dropped.
    feature_names_out : list of str
        The design's columns, the order of ``coef``.
    penalty : Penalty
        The fitted estimator's arguments.
    notations : dict
        The penalty in both notations, with the conversion (it is the document's too).
    coef, intercept
        The fitted coefficients and intercept, in scaled units (as fitted).
    original_coef, original_intercept
        The same model in the original units of the numeric features.
    train_metrics, test_metrics : dict
        ``r2``, ``mse``, ``rmse``, ``mae`` on the training and test rows (None: no test rows).
    search : SearchResult or None
        The cross-validated search of a tuned job.
    comparison_nonzero : dict of str to int
        Per compared family, the nonzero coefficients of its best candidate refit on the
        training split.
    path : RegularizationPath
    fit_seconds : float
        Preprocessing and the final fit.
    n_train, n_test : int
    warnings : list of str
        The search's warnings, then the final fit's.
    progress : (int, int, str)
        The job's final ``progress``, as ``(done, total, message)``.
    unregularized_coef : ndarray or None
        An ordinary least-squares fit on the same preprocessed training rows (scaled units):
        the "before" of the coefficients plot.
    test_actual, test_predicted : ndarray or None
        The test split's targets and the model's predictions (at most
        :data:`PLOT_TEST_POINTS`, evenly spaced), for the residuals plot.
    """

    document: dict[str, Any]
    layout: FeatureLayout
    feature_names_out: list[str]
    penalty: Penalty
    notations: dict[str, Any]
    coef: np.ndarray
    intercept: float
    original_coef: np.ndarray
    original_intercept: float
    train_metrics: dict[str, float | None]
    test_metrics: dict[str, float | None] | None
    search: SearchResult | None
    comparison_nonzero: dict[str, int]
    path: RegularizationPath
    fit_seconds: float
    n_train: int
    n_test: int
    warnings: list[str]
    progress: tuple[int, int, str] = (1, 1, "done")
    unregularized_coef: np.ndarray | None = None
    test_actual: np.ndarray | None = None
    test_predicted: np.ndarray | None = None


# A scatter of more points is no more readable, and the model row stores them.
PLOT_TEST_POINTS = 2000


def unregularized_coefficients(X_train: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Least squares on the preprocessed design (minimum-norm where it is rank-deficient)."""
    from sklearn.linear_model import LinearRegression

    return np.asarray(LinearRegression().fit(X_train, y_train).coef_, dtype=np.float64).ravel()


def plot_sample(actual: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most :data:`PLOT_TEST_POINTS` evenly spaced (actual, predicted) pairs."""
    if len(actual) <= PLOT_TEST_POINTS:
        return actual, predicted
    keep = np.linspace(0, len(actual) - 1, PLOT_TEST_POINTS).astype(np.intp)
    return actual[keep], predicted[keep]


def original_units(
    design: DesignTransformer, coef: np.ndarray, intercept: float
) -> tuple[np.ndarray, float]:
    """The fitted model in the original units of the numeric features.

    A numeric feature's original-unit coefficient is ``coef/scale``; the intercept absorbs
    the centring, ``b - Σ coef_j·mean_j/scale_j``. One-hot columns are the same in both.
    """
    n_numeric = len(design.layout.numeric)
    scaler = design.scaler_
    original = coef.astype(np.float64).copy()
    original_intercept = float(intercept)
    if scaler is not None:
        original[:n_numeric] = coef[:n_numeric] / scaler.scale_
        original_intercept = float(intercept - np.sum(original[:n_numeric] * scaler.mean_))
    return original, original_intercept


def comparison_nonzero(
    tuned: SearchResult | None,
    chosen: Penalty,
    coef: np.ndarray,
    X_train: np.ndarray,
    y_train: np.ndarray,
) -> dict[str, int]:
    """Refit each compared family's best candidate on the training split for ``n_nonzero``."""
    out: dict[str, int] = {}
    if tuned is None or tuned.comparison is None:
        return out
    for best in tuned.comparison:
        if best.penalty == chosen:
            out[best.kind] = int(np.count_nonzero(coef))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only the count is kept from this fit
            fitted = best.penalty.estimator().fit(X_train, y_train)
        out[best.kind] = int(np.count_nonzero(fitted.coef_))
    return out


# A chain searched at fewer alphas than this (one per candidate in a random or Bayesian
# search over a continuous ``l1_ratio``) is not a curve: its path runs over the family's
# default alphas around the chosen one too.
FEW_SEARCHED_ALPHAS = 3


def regularization_path(
    penalty: Penalty,
    X_train: np.ndarray,
    y_train: np.ndarray,
    tuned: SearchResult | None,
) -> RegularizationPath:
    """The fitted penalty's coefficients (scaled units) along a range of alphas.

    A tuned model's path runs over the searched alphas of the selected penalty and
    ``l1_ratio``, with their CV scores; an untuned model's over
    :meth:`~service.ml.estimators.EstimatorFamily.default_path_alphas`, as does a tuned
    one's whose chain was searched at fewer than :data:`FEW_SEARCHED_ALPHAS` alphas (with
    the searched ones added). A comparison of penalties adds each compared family's path
    along its own searched alphas (``compared``).
    """
    if tuned is None:
        alphas = penalty.family.default_path_alphas(X_train, y_train, penalty)
        coefs, converged = penalty.family.coefficient_path(X_train, y_train, penalty, alphas)
        return RegularizationPath(
            kind=penalty.kind,
            l1_ratio=penalty.l1_ratio,
            alpha=penalty.alpha,
            alphas=list(alphas),
            coefs=coefs,
            converged=converged,
        )
    selected = _searched_path(
        penalty,
        X_train,
        y_train,
        (tuned.path_alphas, tuned.path_mean, tuned.path_std),
        tuned,
        solved=tuned.path_coefficients,  # the search solved it on an idle thread
    )
    if tuned.comparison is None:
        return selected
    compared = tuple(
        selected
        if best.kind == penalty.kind
        else _searched_path(
            best.penalty,
            X_train,
            y_train,
            (best.path_alphas, best.path_mean, best.path_std),
            tuned,
            solved=None,
        )
        for best in tuned.comparison
    )
    return replace(selected, compared=compared)


def _searched_path(
    penalty: Penalty,
    X_train: np.ndarray,
    y_train: np.ndarray,
    curve: tuple[list[float], list[float], list[float]],
    tuned: SearchResult,
    *,
    solved: tuple[np.ndarray, bool] | None,
) -> RegularizationPath:
    """``penalty``'s path along its chain's searched ``curve`` (alphas, means, stds)."""
    searched, means, stds = curve
    alphas = list(searched)
    if len(searched) < FEW_SEARCHED_ALPHAS:
        default = penalty.family.default_path_alphas(X_train, y_train, penalty)
        alphas = sorted({*default, *searched}, reverse=True)
        solved = None
    if solved is not None:
        coefs, converged = solved
    else:
        coefs, converged = penalty.family.coefficient_path(
            X_train, y_train, penalty, alphas, problem=tuned.path_problem
        )
    scores = dict(zip(searched, zip(means, stds, strict=True), strict=True))
    missing = (math.nan, math.nan)
    return RegularizationPath(
        kind=penalty.kind,
        l1_ratio=penalty.l1_ratio,
        alpha=penalty.alpha,
        alphas=alphas,
        coefs=coefs,
        converged=converged,
        cv_mean=[scores.get(a, missing)[0] for a in alphas],
        cv_std=[scores.get(a, missing)[1] for a in alphas],
    )


def portable_document(
    layout: FeatureLayout,
    design: DesignTransformer,
    coef: np.ndarray,
    intercept: float,
    notations: dict[str, Any],
    training_sha256: str,
) -> dict[str, Any]:
    if not (np.all(np.isfinite(coef)) and np.isfinite(intercept)):
        raise FitError("the fit produced non-finite coefficients; try a larger alpha or scaling")
    kinds = {name: "numeric" for name in layout.numeric}
    kinds.update({name: "categorical" for name in layout.categorical})
    return portable.make_document(
        target=layout.target,
        features=[
            {"name": name, "kind": kinds[name], "dtype": layout.dtypes[name]}
            for name in layout.features
        ],
        numeric=design.numeric_parameters(),
        categorical=design.categorical_parameters(),
        coef=coef.tolist(),
        intercept=intercept,
        feature_names_out=design.feature_names_out_,
        penalty=notations,
        training_data_sha256=training_sha256,
    )
