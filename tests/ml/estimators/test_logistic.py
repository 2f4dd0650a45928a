"""The LogisticRegression families keep the seam's promises (service/ml/estimators/logistic.py)."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

from service.ml import estimators
from service.ml.errors import FitError
from service.ml.estimators.logistic import (
    CLASSIFICATION_KINDS,
    classification_kind_for_lambdas,
    logistic_family,
)

SOLVERS = {"l1": ("saga", 1.0), "l2": ("lbfgs", 0.0), "elasticnet": ("saga", 0.25)}


@pytest.mark.parametrize("penalty_type", sorted(CLASSIFICATION_KINDS))
def test_build_is_logistic_regression_without_the_deprecated_penalty(penalty_type: str) -> None:
    family = logistic_family(CLASSIFICATION_KINDS[penalty_type])
    assert family.task == "classification" and family.estimator_name == "LogisticRegression"
    penalty = family.logistic_penalty(
        0.3,
        0.25 if penalty_type == "elasticnet" else None,
        fit_intercept=False,
        max_iter=None,
        tol=1e-5,
        class_weight="balanced",
    )
    estimator = penalty.estimator()
    assert type(estimator) is LogisticRegression
    params = estimator.get_params()
    solver, ratio = SOLVERS[penalty_type]
    assert params["penalty"] == "deprecated"  # never passed: l1_ratio says it
    assert (params["C"], params["l1_ratio"], params["solver"]) == (0.3, ratio, solver)
    assert (params["fit_intercept"], params["tol"], params["max_iter"]) == (False, 1e-5, 100)
    assert params["class_weight"] == "balanced"
    assert penalty.alpha == pytest.approx(1 / 0.3)


@pytest.mark.parametrize(
    ("lambdas", "penalty_type"),
    [((0.4, 0.0), "l1"), ((0.0, 0.2), "l2"), ((0.4, 0.2), "elasticnet")],
)
def test_the_lambda_conversion_goes_both_ways(
    lambdas: tuple[float, float], penalty_type: str
) -> None:
    kind = classification_kind_for_lambdas(*lambdas)
    assert kind == CLASSIFICATION_KINDS[penalty_type]
    family = logistic_family(kind)
    assert not family.describes(*lambdas)  # never picked for a regression job's lambdas
    inverse, l1_ratio = family.from_lambdas(*lambdas, n_train=50)
    assert inverse == pytest.approx(1 / (50 * (lambdas[0] + 2 * lambdas[1])))
    penalty = family.logistic_penalty(
        inverse, l1_ratio, fit_intercept=True, max_iter=None, tol=1e-4, class_weight=None
    )
    assert family.to_lambdas(penalty, n_train=50) == pytest.approx(lambdas, rel=1e-12)
    assert "C = 1/(n·(λ1 + 2·λ2))" in family.conversion(50)


def test_parameters_are_checked() -> None:
    with pytest.raises(FitError, match="l1_ratio"):
        logistic_family("logistic_elasticnet").logistic_penalty(
            1.0, 1.5, fit_intercept=True, max_iter=None, tol=1e-4, class_weight=None
        )
    with pytest.raises(FitError, match="C must be > 0"):
        logistic_family("logistic_l2").logistic_penalty(
            0.0, None, fit_intercept=True, max_iter=None, tol=1e-4, class_weight=None
        )
    with pytest.raises(KeyError):
        logistic_family("l2")
    assert estimators.get("logistic_l1") is logistic_family("logistic_l1")
