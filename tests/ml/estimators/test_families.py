"""Every registered family keeps the seam's promises (service/ml/estimators/base.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.metrics import get_scorer_names

from service.ml import estimators
from service.ml.errors import FitError

REFERENCE = {"l1": Lasso, "l2": Ridge, "elasticnet": ElasticNet}


# The regression families; the classifiers' are tests/ml/estimators/test_logistic.py's.
REGRESSION = [f for f in estimators.families() if f.task == "regression"]


def test_the_registry_knows_each_family_by_kind_and_alias() -> None:
    assert {f.kind for f in REGRESSION} == set(REFERENCE)
    assert estimators.get("lasso") is estimators.get("l1")
    assert estimators.get("ridge") is estimators.get("l2")
    with pytest.raises(KeyError):
        estimators.get("logistic")


@pytest.mark.parametrize("family", REGRESSION, ids=lambda f: f.kind)
def test_build_is_the_scikit_learn_estimator_of_the_penalty(
    family: estimators.EstimatorFamily,
) -> None:
    penalty = family.penalty(0.3, 0.25, fit_intercept=False, max_iter=None, tol=1e-5, positive=True)
    estimator = penalty.estimator()
    assert type(estimator) is REFERENCE[family.kind]
    assert type(estimator).__name__ == family.estimator_name
    params = estimator.get_params()
    assert (params["alpha"], params["fit_intercept"], params["tol"], params["positive"]) == (
        0.3,
        False,
        1e-5,
        True,
    )
    assert params["max_iter"] == family.default_max_iter
    assert params.get("l1_ratio") == penalty.l1_ratio
    assert ("l1_ratio" in family.parameter_constraints) == (penalty.l1_ratio is not None)


@pytest.mark.parametrize(
    ("lambdas", "kind"), [((0.4, 0.0), "l1"), ((0.0, 0.2), "l2"), ((0.4, 0.2), "elasticnet")]
)
def test_the_lambda_conversion_goes_both_ways(lambdas: tuple[float, float], kind: str) -> None:
    family = estimators.for_lambdas(*lambdas)
    assert family.kind == kind
    alpha, l1_ratio = family.from_lambdas(*lambdas, n_train=50)
    penalty = family.penalty(
        alpha, l1_ratio, fit_intercept=True, max_iter=None, tol=1e-4, positive=False
    )
    assert family.to_lambdas(penalty, n_train=50) == pytest.approx(lambdas, rel=1e-12)
    with pytest.raises(ValueError, match="both 0"):
        estimators.for_lambdas(0.0, 0.0)


def test_parameters_are_checked_against_the_declared_constraints() -> None:
    common = {"fit_intercept": True, "max_iter": None, "tol": 1e-4, "positive": False}
    with pytest.raises(FitError, match=r"l1_ratio=1\.5 is outside \[0\.0, 1\.0\]"):
        estimators.get("elasticnet").penalty(1.0, 1.5, **common)
    with pytest.raises(FitError, match=r"alpha=-1\.0 is outside"):
        estimators.get("l1").penalty(-1.0, None, **common)
    with pytest.raises(FitError, match="l1_ratio applies only to other penalties"):
        estimators.get("l2").check({"l1_ratio": 0.5})


@pytest.mark.parametrize("family", REGRESSION, ids=lambda f: f.kind)
def test_scorers_are_scikit_learns_and_the_path_solver_meets_the_estimator(
    family: estimators.EstimatorFamily,
) -> None:
    assert set(family.scorers) <= set(get_scorer_names())
    assert len(family.metrics) == len(family.fold_metrics(np.zeros(3), np.zeros((3, 2)))[0])
    assert family.has_path_solver
    X, y = make_regression(n_samples=80, n_features=6, noise=1.0, random_state=0)
    penalty = family.penalty(
        0.5, None, fit_intercept=True, max_iter=10_000, tol=1e-10, positive=False
    )
    coefs, converged = family.coefficient_path(X, y, penalty, [penalty.alpha])
    assert converged
    reference = penalty.estimator().fit(X, y)
    np.testing.assert_allclose(coefs[:, 0], reference.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("alpha", [0.0, 1e-9, 0.3, 5.0, 1e6])
@pytest.mark.parametrize("kind", ["l1", "l2", "elasticnet"])
def test_an_untuned_path_has_exactly_30_alphas_with_the_fitted_one(kind: str, alpha: float) -> None:
    X, y = make_regression(n_samples=60, n_features=5, noise=1.0, random_state=0)
    family = estimators.get(kind)
    penalty = family.penalty(
        alpha, None, fit_intercept=True, max_iter=None, tol=1e-4, positive=False
    )
    alphas = family.default_path_alphas(X, y, penalty)
    assert len(alphas) == 30
    assert alpha in alphas
    assert alphas == sorted(alphas, reverse=True) and len(set(alphas)) == 30
