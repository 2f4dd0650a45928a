"""fit_job equals the scikit-learn pipeline fitted on the same training rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support import fit_documents

from service.ml.errors import FitCancelled, FitError
from service.ml.portable import compile_model, predict
from service.ml.preprocessing import ColumnTable
from service.ml.spec import JobSpec, SplitSpec
from service.ml.split import split_rows
from service.models.predict_input import parse_rows

FEATURES = ["x0", "x1", "city", "x2", "x3"]
NUMERIC = [0, 1, 3, 4]
CATEGORICAL = [2]


def dataset(n: int = 150, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 5.0, 0.2, 2.0] + [0.0, 10.0, -1.0, 3.0]
    X[rng.choice(n, size=8, replace=False), 1] = np.nan
    city = np.array(["Paris", "Rome", "Oslo", None], dtype=object)[rng.integers(0, 4, size=n)]
    effect = {"Paris": 1.0, "Rome": -2.0, "Oslo": 0.5, None: 0.0}
    y = (
        np.nan_to_num(X, nan=10.0) @ [2.0, -0.3, 0.0, 0.8]
        + np.array([effect[c] for c in city])
        + rng.normal(scale=0.5, size=n)
        + 4.0
    )
    return {"x0": X[:, 0], "x1": X[:, 1], "city": city, "x2": X[:, 2], "x3": X[:, 3], "y": y}


def spec_of(penalty: dict[str, Any], **overrides: Any) -> JobSpec:
    body = {"dataset_id": "d", "target": "y", "features": FEATURES, "penalty": penalty}
    return JobSpec.model_validate({**body, **overrides})


def reference_pipeline(estimator: Any, spec: JobSpec) -> Pipeline:
    prep = spec.preprocessing
    steps: list[Any] = []
    if prep.impute != "none":
        steps.append(SimpleImputer(strategy=prep.impute))
    if prep.scaling == "standard":
        steps.append(StandardScaler())
    transformers: list[Any] = [("num", make_pipeline(*steps) if steps else "passthrough", NUMERIC)]
    if prep.categorical == "onehot":
        transformers.append(
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)
        )
    return make_pipeline(ColumnTransformer(transformers), estimator)


def design_inputs(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([np.asarray(columns[name], dtype=object) for name in FEATURES])


def reference_split(n: int, split: SplitSpec) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(n)
    if split.test_size == 0:
        return rows, rows[:0]
    train, test = train_test_split(
        rows, test_size=split.test_size, shuffle=split.shuffle, random_state=split.random_state
    )
    return train, test


PENALTIES = [
    ({"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1)),
    ({"type": "lasso", "alpha": 0.02, "positive": True}, Lasso(alpha=0.02, positive=True)),
    ({"type": "l2", "alpha": 1.0}, Ridge(alpha=1.0)),
    (
        {"type": "ridge", "alpha": 30.0, "fit_intercept": False},
        Ridge(alpha=30.0, fit_intercept=False),
    ),
    ({"type": "l2", "alpha": 0.5, "positive": True}, Ridge(alpha=0.5, positive=True)),
    ({"type": "elasticnet", "alpha": 0.05}, ElasticNet(alpha=0.05)),
    ({"type": "elasticnet", "alpha": 0.2, "l1_ratio": 0.9}, ElasticNet(alpha=0.2, l1_ratio=0.9)),
    ({"lambda1": 0.2}, Lasso(alpha=0.1)),
    ({"lambda1": 0.2, "lambda2": 0.1}, ElasticNet(alpha=0.2, l1_ratio=0.5)),
    ({"lambda2": 0.01}, Ridge(alpha=120 * 0.01)),  # 150 rows, 120 of them training rows
]


@pytest.mark.parametrize(("penalty", "estimator"), PENALTIES)
def test_fit_equals_sklearn_pipeline(penalty: dict[str, Any], estimator: Any) -> None:
    columns = dataset()
    spec = spec_of(penalty)
    outcome = fit_documents(columns, spec, training_sha256="0" * 64)
    summary = outcome.summary

    train, test = reference_split(150, spec.split)
    X, y = design_inputs(columns), columns["y"]
    reference = reference_pipeline(estimator, spec).fit(X[train], y[train])
    fitted = reference[-1]
    names = summary["feature_names_out"]
    assert names == [
        "x0",
        "x1",
        "x2",
        "x3",
        "city=Oslo",
        "city=Paris",
        "city=Rome",
        "city=<missing>",
    ]

    scaled = np.array([summary["coefficients"]["scaled"][name] for name in names])
    np.testing.assert_allclose(scaled, fitted.coef_, rtol=1e-10, atol=1e-10)
    assert summary["intercept"]["scaled"] == pytest.approx(float(fitted.intercept_), abs=1e-10)
    assert summary["n_nonzero"] == int(np.count_nonzero(fitted.coef_))
    assert summary["n_train"] == 120 and summary["n_test"] == 30

    test_pred = reference.predict(X[test])
    assert summary["metrics"]["test"]["r2"] == pytest.approx(
        reference.score(X[test], y[test]), abs=1e-10
    )
    assert summary["metrics"]["test"]["mse"] == pytest.approx(
        mean_squared_error(y[test], test_pred), rel=1e-10
    )
    assert summary["metrics"]["test"]["mae"] == pytest.approx(
        mean_absolute_error(y[test], test_pred), rel=1e-10
    )
    assert summary["metrics"]["test"]["rmse"] == pytest.approx(
        np.sqrt(mean_squared_error(y[test], test_pred)), rel=1e-10
    )
    assert summary["metrics"]["train"]["r2"] == pytest.approx(
        r2_score(y[train], reference.predict(X[train])), abs=1e-10
    )
    assert summary["metrics"]["cv"] is None and summary["tuning"] is None
    assert summary["penalty"]["alpha"] == pytest.approx(fitted.alpha, rel=1e-15)
    assert summary["warnings"] == []

    model = compile_model(outcome.portable)
    rows = [[columns[name][i] for name in FEATURES] for i in range(150)]
    rows = [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in rows]
    np.testing.assert_allclose(
        predict(model, parse_rows(model, rows)), reference.predict(X), rtol=1e-9
    )


@pytest.mark.parametrize("tuned", [False, True], ids=["plain", "tuned"])
@pytest.mark.parametrize(
    ("penalty", "estimator"),
    [
        ({"type": "l1", "alpha": 0.3}, Lasso(alpha=0.3)),
        ({"type": "elasticnet", "alpha": 0.3, "l1_ratio": 0.3}, ElasticNet(0.3, l1_ratio=0.3)),
        ({"type": "l2", "alpha": 3.0}, Ridge(alpha=3.0)),
    ],
)
def test_the_refit_equals_the_pipeline_to_the_bit(
    penalty: dict[str, Any], estimator: Any, tuned: bool
) -> None:
    # The job hands coordinate descent a Fortran-ordered design (Ridge a C-ordered one); the
    # scaler's parameters and every coefficient must still be those of
    # make_pipeline(SimpleImputer(), StandardScaler(), estimator) exactly, with a search (the
    # refit's preprocessing then runs beside it) or without.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 12)) * rng.uniform(0.5, 20, size=12) + rng.normal(size=12)
    y = X @ rng.normal(size=12) + rng.normal(size=600)
    X[::17, 3] = np.nan
    columns = {f"x{j}": X[:, j].copy() for j in range(12)} | {"y": y}
    body: dict[str, Any] = {"dataset_id": "d", "target": "y", "penalty": penalty}
    if tuned:
        body["tuning"] = {"space": {"alpha": [penalty["alpha"]]}, "cv": {"folds": 3}}
    spec = JobSpec.model_validate(body)
    outcome = fit_documents(columns, spec, training_sha256="0" * 64)

    train, test = reference_split(600, spec.split)
    reference = make_pipeline(SimpleImputer(), StandardScaler(), estimator)
    reference.fit(X[train], y[train])
    coef = [outcome.summary["coefficients"]["scaled"][f"x{j}"] for j in range(12)]
    np.testing.assert_array_equal(coef, reference[-1].coef_ + 0.0)  # + 0.0: -0.0 is 0.0
    assert outcome.summary["intercept"]["scaled"] == float(reference[-1].intercept_)
    assert outcome.summary["metrics"]["test"]["r2"] == r2_score(y[test], reference.predict(X[test]))
    numeric = outcome.portable["numeric"]
    assert numeric["impute_values"] == reference[0].statistics_.tolist()
    assert numeric["means"] == reference[1].mean_.tolist()
    assert numeric["scales"] == reference[1].scale_.tolist()


@pytest.mark.parametrize("tuning", [None, {"space": {"alpha": [0.01, 0.1, 1.0]}}])
def test_a_kept_dataset_fits_the_same_model(tuning: dict[str, Any] | None) -> None:
    # A worker's cached dataset (a ColumnTable, twice: the second job reuses its matrix).
    columns = dataset(n=300, seed=7)
    spec = spec_of({"type": "l1", "alpha": 0.1}, tuning=tuning)
    reference = fit_documents(columns, spec, training_sha256="0" * 64)
    table = ColumnTable(columns, matrix_bytes=1 << 20)
    for _ in range(2):
        outcome = fit_documents(table, spec, training_sha256="0" * 64)
        assert outcome.portable == reference.portable
        for key in ("coefficients", "intercept", "metrics", "path"):
            assert outcome.summary[key] == reference.summary[key]


def test_original_units_reproduce_the_predictions() -> None:
    columns = dataset()
    spec = spec_of({"type": "elasticnet", "alpha": 0.05})
    outcome = fit_documents(columns, spec, training_sha256="x")
    coefficients, intercept = outcome.summary["coefficients"], outcome.summary["intercept"]
    numeric = ["x0", "x1", "x2", "x3"]
    imputed = np.column_stack([columns[name] for name in numeric])
    imputed = np.where(np.isnan(imputed), outcome.portable["numeric"]["impute_values"], imputed)
    one_hot = np.array(
        [coefficients["original"].get(f"city={c or '<missing>'}") for c in columns["city"]]
    )
    by_original_units = (
        imputed @ [coefficients["original"][name] for name in numeric]
        + one_hot
        + intercept["original"]
    )
    model = compile_model(outcome.portable)
    rows = [
        [
            None if isinstance(v, float) and np.isnan(v) else v
            for v in (columns[n][i] for n in FEATURES)
        ]
        for i in range(150)
    ]
    np.testing.assert_allclose(
        by_original_units, predict(model, parse_rows(model, rows)), rtol=1e-9
    )
    for name in ["city=Oslo", "city=Paris", "city=Rome", "city=<missing>"]:
        assert coefficients["original"][name] == coefficients["scaled"][name]


def test_without_scaling_original_and_scaled_agree() -> None:
    spec = spec_of({"type": "l2", "alpha": 1.0}, preprocessing={"scaling": "none"})
    summary = fit_documents(dataset(), spec, training_sha256="x").summary
    assert summary["coefficients"]["original"] == summary["coefficients"]["scaled"]
    assert summary["intercept"]["original"] == summary["intercept"]["scaled"]
    assert summary["preprocessing"] == {
        "scaling": "none",
        "impute": "mean",
        "categorical": "onehot",
    }


@pytest.mark.parametrize(
    "split",
    [
        {"test_size": 0.2},
        {"test_size": 0.33, "random_state": 42},
        {"test_size": 17},
        {"test_size": 0.1, "shuffle": False},
        {"test_size": 5, "random_state": None, "shuffle": False},
    ],
)
def test_split_rows_equal_train_test_split(split: dict[str, Any]) -> None:
    spec = SplitSpec.model_validate(split)
    train, test = split_rows(97, spec)
    expected_train, expected_test = reference_split(97, spec)
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(test, expected_test)


def test_split_picks_the_rows_of_train_test_split() -> None:
    columns = dataset()
    spec = spec_of({"type": "l2", "alpha": 1.0}, split={"test_size": 17, "random_state": 7})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    train, test = train_test_split(np.arange(150), test_size=17, random_state=7)
    X, y = design_inputs(columns), columns["y"]
    reference = reference_pipeline(Ridge(alpha=1.0), spec).fit(X[train], y[train])
    assert (summary["n_train"], summary["n_test"]) == (133, 17)
    assert summary["metrics"]["test"]["r2"] == pytest.approx(
        reference.score(X[test], y[test]), abs=1e-12
    )
    assert summary["split"] == {"test_size": 17, "shuffle": True, "random_state": 7}


def test_test_size_zero_trains_on_every_row() -> None:
    columns = dataset()
    spec = spec_of({"type": "l1", "alpha": 0.1}, split={"test_size": 0})
    summary = fit_documents(columns, spec, training_sha256="x").summary
    assert (summary["n_train"], summary["n_test"]) == (150, 0)
    assert summary["metrics"]["test"] is None
    X = design_inputs(columns)
    reference = reference_pipeline(Lasso(alpha=0.1), spec).fit(X, columns["y"])
    assert summary["metrics"]["train"]["r2"] == pytest.approx(
        reference.score(X, columns["y"]), abs=1e-12
    )


def test_a_split_without_training_rows_fails() -> None:
    spec = spec_of({"type": "l1"}, split={"test_size": 150})
    with pytest.raises(FitError, match="cannot split 150 rows with test_size=150"):
        fit_documents(dataset(), spec, training_sha256="x")


def test_dropped_categorical_columns() -> None:
    spec = spec_of({"type": "l2", "alpha": 1.0}, preprocessing={"categorical": "drop"})
    outcome = fit_documents(dataset(), spec, training_sha256="x")
    assert outcome.summary["features"] == ["x0", "x1", "x2", "x3"]
    assert outcome.summary["dropped_features"] == ["city"]
    assert outcome.summary["feature_names_out"] == ["x0", "x1", "x2", "x3"]
    assert [f["name"] for f in outcome.portable["features"]] == ["x0", "x1", "x2", "x3"]


def test_convergence_warnings_are_reported_not_raised() -> None:
    spec = spec_of({"type": "l1", "alpha": 1e-4, "max_iter": 2, "tol": 1e-12})
    summary = fit_documents(dataset(), spec, training_sha256="x").summary
    assert any(w.startswith("ConvergenceWarning:") for w in summary["warnings"])


def test_progress_and_cancellation() -> None:
    calls: list[tuple[int, int, str]] = []
    fit_documents(
        dataset(),
        spec_of({"type": "l1"}),
        training_sha256="x",
        progress=lambda done, total, msg: calls.append((done, total, msg)),
    )
    assert calls == [(0, 1, "fitting"), (1, 1, "done")]
    with pytest.raises(FitCancelled):
        fit_documents(
            dataset(), spec_of({"type": "l1"}), training_sha256="x", should_stop=lambda: True
        )


def test_results_are_json_safe() -> None:
    columns = dataset(n=12)
    spec = spec_of({"type": "l1", "alpha": 0.1}, split={"test_size": 1})
    outcome = fit_documents(columns, spec, training_sha256="abc")
    summary = json.loads(json.dumps(outcome.summary, allow_nan=False))
    assert summary["metrics"]["test"]["r2"] is None  # undefined for a single row
    assert summary["metrics"]["test"]["mse"] is not None
    document = json.loads(json.dumps(outcome.portable, allow_nan=False))
    assert document["format"] == "regfit.linear.v1"
    assert document["training_data_sha256"] == "abc"
    assert document["penalty"] == outcome.summary["penalty"]
    assert set(document) == {
        "format",
        "target",
        "features",
        "numeric",
        "categorical",
        "coef",
        "intercept",
        "feature_names_out",
        "penalty",
        "training_data_sha256",
    }


def test_data_errors_surface_as_fit_errors() -> None:
    columns = dataset()
    columns["y"][[3, 4]] = np.nan
    with pytest.raises(FitError, match=r"'y' has 2 missing value\(s\)"):
        fit_documents(columns, spec_of({"type": "l1"}), training_sha256="x")
    with pytest.raises(FitError, match=r"column 'x1' has 8 missing value\(s\)"):
        fit_documents(
            dataset(),
            spec_of({"type": "l1"}, preprocessing={"impute": "none"}),
            training_sha256="x",
        )
