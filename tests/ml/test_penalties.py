"""Penalties: the estimator a spec stands for, and the exact lambda conversion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.penalties import penalty_notations, resolve_penalty
from service.ml.spec import PenaltySpec


def params(estimator: Any) -> dict[str, Any]:
    return {"class": type(estimator).__name__, **estimator.get_params()}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1)),
        ({"type": "lasso"}, Lasso()),
        ({"type": "l2", "alpha": 0.1}, Ridge(alpha=0.1)),
        ({"type": "ridge"}, Ridge()),
        ({"type": "elasticnet", "alpha": 0.1}, ElasticNet(alpha=0.1)),
        ({"type": "elasticnet", "alpha": 2, "l1_ratio": 0.2}, ElasticNet(alpha=2, l1_ratio=0.2)),
        (
            {"type": "l1", "alpha": 0.5, "fit_intercept": False, "max_iter": 50, "tol": 1e-6},
            Lasso(alpha=0.5, fit_intercept=False, max_iter=50, tol=1e-6),
        ),
        ({"type": "l1", "positive": True}, Lasso(positive=True)),
        ({"type": "l2", "positive": True}, Ridge(positive=True, solver="lbfgs")),
        ({"type": "l2", "max_iter": 500}, Ridge(max_iter=500)),
    ],
)
def test_estimator_is_what_a_user_would_write(spec: dict[str, Any], expected: Any) -> None:
    penalty = resolve_penalty(PenaltySpec.model_validate(spec), n_train=50)
    assert params(penalty.estimator()) == params(expected)


def test_untyped_penalty_cannot_be_resolved() -> None:
    with pytest.raises(FitError, match=r"penalty\.type is required"):
        resolve_penalty(PenaltySpec(alpha=0.1), n_train=10)


@pytest.mark.parametrize(
    ("lambda1", "lambda2", "kind", "alpha", "l1_ratio"),
    [
        (0.4, 0.0, "l1", 0.2, None),
        (0.0, 0.05, "l2", 80 * 0.05, None),
        (0.4, 0.1, "elasticnet", 0.2 + 0.1, 0.4 / (0.4 + 0.2)),
    ],
)
def test_lambda_conversion_formula(
    lambda1: float, lambda2: float, kind: str, alpha: float, l1_ratio: float | None
) -> None:
    penalty = resolve_penalty(PenaltySpec(lambda1=lambda1, lambda2=lambda2), n_train=80)
    assert penalty.kind == kind
    assert penalty.alpha == pytest.approx(alpha, rel=1e-15)
    if l1_ratio is None:
        assert penalty.l1_ratio is None
    else:
        assert penalty.l1_ratio == pytest.approx(l1_ratio, rel=1e-15)


def small_problem(seed: int = 0, n: int = 40, p: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0])[:p] + 0.3
    y = X @ np.array([1.5, -2.0, 0.0, 0.7, 0.05])[:p] + 2.0 + rng.normal(scale=0.5, size=n)
    return X, y


def seed_objective(
    X: np.ndarray, y: np.ndarray, lambda1: float, lambda2: float
) -> tuple[np.ndarray, float]:
    """Minimise J = MSE + λ1·Σ|θ| + λ2·Σθ² directly (θ = u - v with u, v ≥ 0; free intercept)."""
    n, p = X.shape

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        u, v, b = z[:p], z[p : 2 * p], z[-1]
        w = u - v
        r = y - X @ w - b
        grad_w = -2 / n * X.T @ r + 2 * lambda2 * w
        value = r @ r / n + lambda1 * np.sum(u + v) + lambda2 * w @ w
        grad = np.concatenate([grad_w + lambda1, -grad_w + lambda1, [-2 * r.mean()]])
        return value, grad

    bounds = [(0, None)] * (2 * p) + [(None, None)]
    result = minimize(
        value_and_grad,
        np.zeros(2 * p + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000},
    )
    return result.x[:p] - result.x[p : 2 * p], float(result.x[-1])


def kkt_violation(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, lambda1: float, lambda2: float
) -> float:
    """Largest violation of J's optimality conditions at (w, b); 0 at the exact minimiser."""
    n = len(y)
    r = y - X @ w - b
    grad = -2 / n * X.T @ r + 2 * lambda2 * w  # gradient of the smooth part of J
    nonzero = w != 0
    on_support = np.abs(grad[nonzero] + lambda1 * np.sign(w[nonzero]))
    off_support = np.maximum(np.abs(grad[~nonzero]) - lambda1, 0)
    return float(max(np.max(on_support, initial=0), np.max(off_support, initial=0), abs(r.mean())))


@pytest.mark.parametrize(
    ("lambda1", "lambda2"), [(0.3, 0.0), (0.0, 0.2), (0.3, 0.2), (1.5, 0.05), (0.02, 1.0)]
)
def test_converted_estimator_minimises_the_seed_objective(lambda1: float, lambda2: float) -> None:
    X, y = small_problem()
    penalty = resolve_penalty(PenaltySpec(lambda1=lambda1, lambda2=lambda2, tol=1e-12), len(y))
    estimator = penalty.estimator().set_params(
        **({} if penalty.kind == "l2" else {"max_iter": 100_000})
    )
    estimator.fit(X, y)
    w, b = estimator.coef_, float(estimator.intercept_)

    # sklearn's solution satisfies J's first-order conditions (θ = weights, intercept free)...
    assert kkt_violation(X, y, w, b, lambda1, lambda2) < 1e-9
    # ...and agrees with a direct numerical minimisation of J.
    w_direct, b_direct = seed_objective(X, y, lambda1, lambda2)
    np.testing.assert_allclose(w, w_direct, atol=1e-5)
    assert b == pytest.approx(b_direct, abs=1e-5)


def test_a_wrong_conversion_violates_the_optimality_conditions() -> None:
    # Guards the test above: Lasso(alpha=λ1) instead of λ1/2 is detectably not J's minimiser.
    X, y = small_problem()
    wrong = Lasso(alpha=0.3, tol=1e-12, max_iter=100_000).fit(X, y)
    assert kkt_violation(X, y, wrong.coef_, float(wrong.intercept_), 0.3, 0.0) > 1e-3


def test_notations_echo_lambdas_verbatim() -> None:
    penalty = resolve_penalty(PenaltySpec(lambda1=0.3, lambda2=0.1), n_train=100)
    echo = penalty_notations(penalty, n_train=100)
    assert echo["given_as"] == "lambda"
    assert (echo["lambda1"], echo["lambda2"]) == (0.3, 0.1)
    assert echo["type"] == "elasticnet" and echo["estimator"] == "ElasticNet"
    assert echo["alpha"] == penalty.alpha and echo["l1_ratio"] == penalty.l1_ratio
    assert "l1_ratio = λ1/(λ1 + 2·λ2)" in echo["conversion"]
    assert set(echo) == {
        "type",
        "estimator",
        "alpha",
        "l1_ratio",
        "lambda1",
        "lambda2",
        "fit_intercept",
        "max_iter",
        "tol",
        "positive",
        "given_as",
        "conversion",
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "l1", "alpha": 0.25},
        {"type": "l2", "alpha": 3.0},
        {"type": "elasticnet", "alpha": 0.4, "l1_ratio": 0.3},
    ],
)
def test_notations_round_trip(spec: dict[str, Any]) -> None:
    n_train = 60
    penalty = resolve_penalty(PenaltySpec.model_validate(spec), n_train)
    echo = penalty_notations(penalty, n_train)
    assert echo["given_as"] == "sklearn"
    back = resolve_penalty(PenaltySpec(lambda1=echo["lambda1"], lambda2=echo["lambda2"]), n_train)
    assert back.kind == penalty.kind
    assert back.alpha == pytest.approx(penalty.alpha, rel=1e-14)
    if penalty.l1_ratio is not None:
        assert back.l1_ratio == pytest.approx(penalty.l1_ratio, rel=1e-14)


def test_ridge_lambda_depends_on_the_training_rows() -> None:
    penalty = Penalty("l2", 3.0, None, True, None, 1e-4, False)
    assert penalty_notations(penalty, 60)["lambda2"] == pytest.approx(3.0 / 60)
    assert "n = 60 training rows" in penalty_notations(penalty, 60)["conversion"]
