"""fit_classifier equals LogisticRegression in scikit-learn's pipeline on the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.ml.classification import fit_classifier
from service.ml.errors import FitError
from service.ml.spec import JobSpec

TIGHT = 1e-10


def columns_of(X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    columns = {f"x{j}": X[:, j].astype(np.float64) for j in range(X.shape[1])}
    columns["y"] = y
    return columns


def spec_of(penalty: dict[str, Any], **overrides: Any) -> JobSpec:
    body = {"dataset_id": "d", "target": "y", "task": "classification", "penalty": penalty}
    return JobSpec.model_validate({**body, **overrides})


def reference(
    X: np.ndarray, y: np.ndarray, estimator: LogisticRegression, stratify: bool = True
) -> tuple[Any, np.ndarray, np.ndarray]:
    rows = np.arange(len(y))
    train, test = train_test_split(
        rows, test_size=0.2, random_state=0, stratify=y if stratify else None
    )
    pipeline = make_pipeline(StandardScaler(), estimator).fit(X[train], y[train])
    return pipeline, train, test


CASES = [
    ({"type": "l2", "C": 0.5}, LogisticRegression(C=0.5, l1_ratio=0.0)),
    (
        {"type": "l1", "C": 0.3},
        LogisticRegression(C=0.3, l1_ratio=1.0, solver="saga"),
    ),
    (
        {"type": "elasticnet", "C": 2.0, "l1_ratio": 0.3},
        LogisticRegression(C=2.0, l1_ratio=0.3, solver="saga"),
    ),
    (
        {"type": "l2", "C": 1.0, "class_weight": "balanced"},
        LogisticRegression(C=1.0, l1_ratio=0.0, class_weight="balanced"),
    ),
]


def _tight(
    penalty: dict[str, Any], estimator: LogisticRegression
) -> tuple[dict[str, Any], LogisticRegression]:
    """Both converged: the comparison is of optima, not of where two runs stopped."""
    return {**penalty, "tol": TIGHT, "max_iter": 100_000}, estimator.set_params(
        tol=TIGHT, max_iter=100_000
    )


@pytest.mark.parametrize("data", ["breast_cancer", "iris"])
@pytest.mark.parametrize(("penalty", "estimator"), CASES)
def test_coefficients_equal_converged_logistic_regression(
    data: str, penalty: dict[str, Any], estimator: LogisticRegression
) -> None:
    X, y = (load_breast_cancer if data == "breast_cancer" else load_iris)(return_X_y=True)
    penalty, estimator = _tight(penalty, estimator)
    fit = fit_classifier(columns_of(X, y), spec_of(penalty), max_classes=50)
    pipeline, train, test = reference(X, y, estimator)
    ref = pipeline[-1]
    assert fit.n_train == len(train) and fit.n_test == len(test)
    assert fit.classes == ref.classes_.tolist()
    np.testing.assert_allclose(fit.coef, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit.intercepts, ref.intercept_, rtol=1e-6, atol=1e-8)
    proba = pipeline.predict_proba(X[test])
    predicted = pipeline.predict(X[test])
    metrics = fit.test_metrics
    assert metrics is not None
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y[test], predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y[test], predicted)
    )
    assert metrics["log_loss"] == pytest.approx(log_loss(y[test], proba), rel=1e-6)
    if len(ref.classes_) == 2:
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y[test], proba[:, 1]), rel=1e-6)
        assert metrics["f1"] == pytest.approx(f1_score(y[test], predicted))
    else:
        assert metrics["roc_auc"] == pytest.approx(
            roc_auc_score(y[test], proba, multi_class="ovr"), rel=1e-6
        )
        assert metrics["f1"] == pytest.approx(f1_score(y[test], predicted, average="macro"))
    assert metrics["confusion_matrix"] == confusion_matrix(y[test], predicted).tolist()
    assert sum(metrics["class_counts"].values()) == len(test)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"], dtype=object),
        np.array([10, 20, 30], dtype=np.int64),
    ],
)
def test_labels_come_back_as_given(labels: np.ndarray) -> None:
    X, y = load_iris(return_X_y=True)
    fit = fit_classifier(columns_of(X, labels[y]), spec_of({"type": "l2"}), max_classes=50)
    assert fit.classes == labels.tolist()
    assert all(type(c) is type(labels.tolist()[0]) for c in fit.classes)


def test_boolean_labels() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    fit = fit_classifier(columns_of(X, y.astype(bool)), spec_of({"type": "l2"}), max_classes=50)
    assert fit.classes == [False, True]


def test_too_many_classes_names_the_count() -> None:
    X, _ = load_iris(return_X_y=True)
    y = np.arange(len(X)) % 7
    with pytest.raises(FitError, match="7 distinct values, more than 5"):
        fit_classifier(columns_of(X, y), spec_of({"type": "l2"}), max_classes=5)


def test_split_is_stratified_by_default() -> None:
    X, y = load_iris(return_X_y=True)
    fit = fit_classifier(columns_of(X, y), spec_of({"type": "l2"}), max_classes=50)
    assert fit.test_metrics is not None
    assert list(fit.test_metrics["class_counts"].values()) == [10, 10, 10]


def test_lambda_form_minimises_mean_log_loss_objective() -> None:
    """J = (1/n)·Σ logloss + λ1·Σ|θ| + λ2·Σθ², minimised directly with scipy (L2 and a smooth
    L1 split into positive and negative parts), equals the converted LogisticRegression."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :6]
    lambda1, lambda2 = 0.01, 0.02
    fit = fit_classifier(
        columns_of(X, y),
        spec_of({"lambda1": lambda1, "lambda2": lambda2, "tol": TIGHT, "max_iter": 100_000}),
        max_classes=50,
    )
    assert fit.notations["lambda1"] == lambda1 and fit.notations["lambda2"] == lambda2
    _, train, _ = reference(X, y, LogisticRegression())
    Z = StandardScaler().fit_transform(X[train])
    t = y[train].astype(np.float64)
    n, p = Z.shape

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        plus, minus, b = v[:p], v[p : 2 * p], v[-1]
        w = plus - minus
        z = Z @ w + b
        loss = np.mean(np.logaddexp(0, z) - t * z)
        r = 1 / (1 + np.exp(-z)) - t
        gw = Z.T @ r / n + 2 * lambda2 * w
        value = loss + lambda1 * np.sum(plus + minus) + lambda2 * np.sum(w**2)
        grad = np.concatenate([gw + lambda1, -gw + lambda1, [r.mean()]])
        return float(value), grad

    bounds = [(0, None)] * (2 * p) + [(None, None)]
    result = minimize(
        objective,
        np.zeros(2 * p + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 100_000},
    )
    w = result.x[:p] - result.x[p : 2 * p]
    np.testing.assert_allclose(fit.coef.ravel(), w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fit.intercepts[0], result.x[-1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"task": "classification", "penalty": {"type": "l2", "alpha": 1.0}}, "alpha"),
        ({"task": "classification", "penalty": {"type": "l2", "positive": True}}, "positive"),
        ({"penalty": {"type": "l2", "C": 1.0}}, "C"),
        ({"penalty": {"type": "l2"}, "split": {"stratify": True}}, "stratify"),
    ],
)
def test_task_fields_are_checked(body: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValueError, match=loc):
        JobSpec.model_validate({"dataset_id": "d", "target": "y", **body})


def test_classification_defaults() -> None:
    spec = spec_of({"type": "l1"})
    assert spec.penalty.C == 1.0 and spec.penalty.alpha is None
    assert spec.split.stratify is True
    assert JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": {"type": "l1"}}
    ).split.stratify in (None, False)
