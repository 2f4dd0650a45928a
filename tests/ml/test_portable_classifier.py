"""The portable classifier's probabilities equal LogisticRegression.predict_proba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from service.ml.classification import fit_classifier
from service.ml.portable_classifier import compile_classifier, is_classifier
from service.ml.spec import JobSpec
from service.models.predict_input import parse_rows

FEATURES = ["x0", "x1", "city", "x2"]


def dataset(labels: list[Any], n: int = 300, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 5.0, 2.0] + [0.0, 10.0, 3.0]
    X[rng.choice(n, size=12, replace=False), 1] = np.nan
    city = np.array(["Paris", "Rome", "Oslo", None], dtype=object)[rng.integers(0, 4, size=n)]
    effect = {"Paris": 1.0, "Rome": -1.0, "Oslo": 0.5, None: 0.0}
    score = np.nan_to_num(X, nan=10.0) @ [1.0, -0.2, 0.5] + [effect[c] for c in city]
    score += rng.normal(scale=1.0, size=n)
    edges = np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1])
    y = np.asarray(labels, dtype=object)[np.searchsorted(edges, score)]
    if all(isinstance(v, int) for v in labels):
        y = y.astype(np.int64)
    return {"x0": X[:, 0], "x1": X[:, 1], "city": city, "x2": X[:, 2], "y": y}


@pytest.mark.parametrize(
    ("labels", "penalty"),
    [
        (["no", "yes"], {"type": "l2", "C": 0.7}),
        ([3, 1, 2], {"type": "l2", "C": 2.0}),
        (["a", "b", "c", "d"], {"type": "elasticnet", "C": 0.5, "l1_ratio": 0.4}),
    ],
)
def test_probabilities_equal_predict_proba(labels: list[Any], penalty: dict[str, Any]) -> None:
    columns = dataset(labels)
    spec = JobSpec.model_validate(
        {
            "dataset_id": "d",
            "target": "y",
            "task": "classification",
            "features": FEATURES,
            "penalty": {**penalty, "tol": 1e-10, "max_iter": 100_000},
            "split": {"test_size": 0},
        }
    )
    fit = fit_classifier(columns, spec, max_classes=10)
    assert is_classifier(fit.document)
    model = compile_classifier(fit.document)
    assert model.classes == sorted(labels)
    rows = [[columns[name][i] for name in FEATURES] for i in range(len(columns["y"]))]
    rows = [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in rows]
    inputs = parse_rows(model.logits[0], rows)
    # The fitted estimator in scikit-learn's own pipeline, on the same design.
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 3]),
                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [2]),
            ]
        ),
        LogisticRegression(
            C=penalty["C"],
            l1_ratio=penalty.get("l1_ratio", 0.0),
            solver="saga" if penalty["type"] != "l2" else "lbfgs",
            tol=1e-10,
            max_iter=100_000,
        ),
    )
    X = np.column_stack([np.asarray(columns[name], dtype=object) for name in FEATURES])
    pipeline.fit(X, columns["y"])
    reference = pipeline.predict_proba(X)
    np.testing.assert_allclose(fit.coef, pipeline[-1].coef_, rtol=1e-6, atol=1e-8)
    # The document's own probabilities equal predict_proba of its own coefficients exactly
    # as numpy computes them: scikit-learn's predict_proba on the fitted estimator.
    np.testing.assert_allclose(
        model.predict_proba(inputs), fit.estimator.predict_proba(_design(fit, columns)), rtol=1e-9
    )
    np.testing.assert_allclose(model.predict_proba(inputs), reference, rtol=1e-5, atol=1e-9)
    assert model.predict_labels(inputs) == fit.estimator.predict(_design(fit, columns)).tolist()


def _design(fit: Any, columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(fit.design.transform(columns, np.arange(len(columns["y"]))))
