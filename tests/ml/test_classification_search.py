"""grid_search_classifier equals GridSearchCV over a LogisticRegression pipeline."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.ml.classification import resolve_classifier
from service.ml.classification_search import grid_search_classifier
from service.ml.errors import FitError
from service.ml.preprocessing import select_features
from service.ml.spec import PenaltySpec, PreprocessingSpec

C_GRID = [0.01, 0.1, 1.0, 10.0]


def _search(
    X: np.ndarray, y: np.ndarray, penalty: dict[str, Any], grid: list[dict[str, Any]], **kw: Any
) -> Any:
    columns: dict[str, np.ndarray] = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    columns["y"] = y
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    base = resolve_classifier(PenaltySpec.model_validate(penalty), len(y))
    return grid_search_classifier(columns, layout, prep, y, np.arange(len(y)), grid, base, **kw)


@pytest.mark.parametrize(
    ("data", "scoring", "penalty", "sk_grid", "grid", "estimator"),
    [
        (
            "breast_cancer",
            "neg_log_loss",
            {"type": "l2", "max_iter": 10_000},
            {"logisticregression__C": C_GRID},
            [{"C": c} for c in C_GRID],
            LogisticRegression(l1_ratio=0.0, max_iter=10_000),
        ),
        (
            "breast_cancer",
            "roc_auc",
            {"type": "l2", "max_iter": 10_000, "class_weight": "balanced"},
            {"logisticregression__C": C_GRID},
            [{"C": c} for c in C_GRID],
            LogisticRegression(l1_ratio=0.0, max_iter=10_000, class_weight="balanced"),
        ),
        (
            "iris",
            "accuracy",
            {"type": "elasticnet", "max_iter": 10_000, "tol": 1e-6},
            {"logisticregression__C": [0.1, 1.0], "logisticregression__l1_ratio": [0.2, 0.8]},
            [{"C": c, "l1_ratio": r} for c in [0.1, 1.0] for r in [0.2, 0.8]],
            LogisticRegression(solver="saga", max_iter=10_000, tol=1e-6),
        ),
    ],
)
def test_scores_equal_grid_search_cv(
    data: str,
    scoring: str,
    penalty: dict[str, Any],
    sk_grid: dict[str, list[float]],
    grid: list[dict[str, Any]],
    estimator: LogisticRegression,
) -> None:
    X, y = (load_breast_cancer if data == "breast_cancer" else load_iris)(return_X_y=True)
    search = _search(X, y, penalty, grid, folds=5, scoring=scoring)
    reference = GridSearchCV(
        make_pipeline(StandardScaler(), estimator),
        sk_grid,
        cv=StratifiedKFold(5),
        scoring=scoring,
    ).fit(X, y)
    np.testing.assert_allclose(
        [c.mean_score for c in search.candidates],
        reference.cv_results_["mean_test_score"],
        rtol=1e-4,
        atol=1e-6,
    )
    assert [c.rank for c in search.candidates] == reference.cv_results_["rank_test_score"].tolist()
    best = search.candidates[search.best_index].params
    assert {f"logisticregression__{k}": v for k, v in best.items()} == reference.best_params_


def test_one_standard_error_takes_the_smallest_c_within_one_se() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    grid = [{"C": c} for c in np.logspace(-3, 2, 8).tolist()]
    search = _search(X, y, {"type": "l2", "max_iter": 10_000}, grid, select="1se")
    best = search.candidates[search.best_index]
    threshold = best.mean_score - best.std_score / math.sqrt(5 - 1)
    within = [c.penalty.C for c in search.candidates if c.mean_score >= threshold]
    assert min(within) == search.penalty.C
    assert search.penalty.C <= best.penalty.C


def test_unknown_scorer_and_unsplittable_folds_are_fit_errors() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(FitError, match="r2"):
        _search(X, y, {"type": "l2"}, [{"C": 1.0}], scoring="r2")
    with pytest.raises(FitError, match="stratified folds"):
        _search(X[:60], y[:60], {"type": "l2"}, [{"C": 1.0}], folds=100)


def test_a_job_specs_grid_tuning_is_the_grid_search() -> None:
    """search_classifier (the worker's seam) walks tuning.space as ParameterGrid does."""
    from service.ml.classification_search import search_classifier
    from service.ml.spec import JobSpec

    X, y = load_iris(return_X_y=True)
    spec = JobSpec.model_validate(
        {
            "dataset_id": "ds_0",
            "target": "y",
            "task": "classification",
            "penalty": {"type": "l2", "max_iter": 10_000},
            "tuning": {"space": {"C": [0.1, 1.0, 10.0]}, "cv": {"folds": 3}},
        }
    )
    assert spec.tuning is not None and spec.tuning.scoring == "neg_log_loss"
    columns: dict[str, np.ndarray] = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    columns["y"] = y
    layout = select_features(columns, target="y", features=None, prep=spec.preprocessing)
    base = resolve_classifier(spec.penalty, len(y))
    search = search_classifier(
        columns, layout, spec.preprocessing, y, np.arange(len(y)), spec.tuning, base
    )
    direct = _search(
        X, y, {"type": "l2", "max_iter": 10_000}, [{"C": c} for c in [0.1, 1.0, 10.0]], folds=3
    )
    assert [c.params for c in search.candidates] == [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}]
    assert [c.mean_score for c in search.candidates] == [c.mean_score for c in direct.candidates]
    assert search.selected_index == direct.selected_index


@pytest.mark.parametrize(
    ("task", "tuning", "at"),
    [
        ("classification", {"space": {"alpha": [0.1, 1.0]}}, ["tuning", "space", "alpha"]),
        ("regression", {"space": {"C": [0.1, 1.0]}}, ["tuning", "space", "C"]),
        ("classification", {"space": {"C": [0.1]}, "scoring": "r2"}, ["tuning", "scoring"]),
        ("regression", {"space": {"alpha": [0.1]}, "scoring": "accuracy"}, ["tuning", "scoring"]),
        ("classification", {"space": {"C": [0.0, 1.0]}}, ["tuning", "space", "C", 0]),
    ],
)
def test_tuning_fields_belong_to_the_task(task: str, tuning: dict[str, Any], at: list[Any]) -> None:
    from pydantic import ValidationError

    from service.ml.spec import JobSpec

    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate(
            {
                "dataset_id": "ds_0",
                "target": "y",
                "task": task,
                "penalty": {"type": "l2"},
                "tuning": tuning,
            }
        )
    error = caught.value.errors()[0]
    assert [*error["loc"], *error.get("ctx", {}).get("at", ())][-len(at) :] == at, error


def test_the_classifier_path_is_each_Cs_logistic_regression() -> None:
    from service.ml.classification_search import classifier_path

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    base = resolve_classifier(PenaltySpec.model_validate({"type": "l2", "tol": 1e-10}), len(y))
    path = classifier_path(X, y, base, [1.0, 0.01, 0.1])
    assert path.Cs.tolist() == [0.01, 0.1, 1.0]
    assert path.coef.shape == (3, 3, 4) and path.intercept.shape == (3, 3)
    for k, c in enumerate(path.Cs):
        reference = LogisticRegression(C=c, l1_ratio=0.0, tol=1e-10).fit(X, y)
        np.testing.assert_allclose(path.coef[k], reference.coef_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(path.intercept[k], reference.intercept_, rtol=1e-6, atol=1e-9)
    assert path.classes == [0, 1, 2]
