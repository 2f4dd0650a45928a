"""One-hot columns bounded as ``OneHotEncoder(max_categories=…, min_frequency=…,
handle_unknown="infrequent_if_exist")``: the design, the portable model's predictions and a
search's scores all equal scikit-learn's with that encoder."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, Ridge
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from service.ml.errors import FitError
from service.ml.fitting import fit_job
from service.ml.portable import compile_model, predict
from service.ml.preprocessing import (
    INFREQUENT_LABEL,
    DesignTransformer,
    check_design_budget,
    select_features,
)
from service.ml.spec import JobSpec, PreprocessingSpec
from service.models.documents import model_documents
from service.models.predict_input import parse_records

BOUNDS = [
    {"max_categories": 4},
    {"max_categories": 10},
    {"min_frequency": 6},
    {"min_frequency": 0.05},
    {"max_categories": 5, "min_frequency": 3},
]


def columns_with_ids(n: int = 300, seed: int = 0) -> dict[str, Any]:
    """A numeric column, a city (a few common values and rare ones, some missing) and an
    id-like column with many distinct values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    cities = np.array(["Paris", "Rome", "Oslo", "Lima", "Kyiv", "Baku", None], dtype=object)
    city = cities[rng.choice(len(cities), size=n, p=[0.4, 0.25, 0.15, 0.08, 0.05, 0.03, 0.04])]
    ident = np.array([f"id{int(v)}" for v in rng.integers(0, 60, size=n)], dtype=object)
    effect = {"Paris": 1.0, "Rome": -2.0, "Oslo": 0.5, "Lima": 3.0, "Kyiv": -1.0, "Baku": 2.0}
    y = 2 * x + np.array([effect.get(c, 0.0) for c in city]) + rng.normal(scale=0.5, size=n)
    return {"x": x, "city": city, "id": ident, "y": y}


def encoder(bound: dict[str, Any]) -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False, **bound)


def reference(bound: dict[str, Any], estimator: Any) -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), [0]),
            ("cat", encoder(bound), [1, 2]),
        ]
    )
    return Pipeline([("prep", prep), ("est", estimator)])


def matrix(columns: dict[str, Any]) -> np.ndarray:
    return np.column_stack([columns["x"].astype(object), columns["city"], columns["id"]])


def spec_of(bound: dict[str, Any], **extra: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "dataset_id": "d",
            "target": "y",
            "penalty": {"type": "l2", "alpha": 1.0},
            "preprocessing": bound,
            **extra,
        }
    )


@pytest.mark.parametrize("bound", BOUNDS)
def test_design_equals_the_bounded_encoder(bound: dict[str, Any]) -> None:
    columns = columns_with_ids()
    prep = PreprocessingSpec.model_validate(bound)
    layout = select_features(columns, target="y", features=None, prep=prep)
    # city has 7 distinct values (a missing one among them), id 60.
    city_grouped = "min_frequency" in bound or bound["max_categories"] < 7
    assert set(layout.grouped) == ({"city", "id"} if city_grouped else {"id"})
    rows = np.arange(200)
    design = DesignTransformer(layout, prep)
    X = design.fit_transform(columns, rows)
    ref = reference(bound, Ridge()).named_steps["prep"]
    expected = ref.fit_transform(matrix(columns)[rows])
    np.testing.assert_allclose(X, expected, rtol=1e-13, atol=1e-13)
    rest = np.arange(200, 300)
    np.testing.assert_allclose(
        design.transform(columns, rest), ref.transform(matrix(columns)[rest]), atol=1e-13
    )
    fitted = ref.named_transformers_["cat"]
    assert design.infrequent() == [cats is not None for cats in fitted.infrequent_categories_]
    id_names = [n for n in design.feature_names_out_ if n.startswith("id=")]
    assert id_names[-1] == f"id={INFREQUENT_LABEL}"
    assert len(design.feature_names_out_) == X.shape[1]


def test_a_spec_without_bounds_is_the_plain_encoder() -> None:
    columns = columns_with_ids()
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    assert layout.grouped == ()
    design = DesignTransformer(layout, prep)
    design.fit_transform(columns, np.arange(300))
    assert design.infrequent() == [False, False]
    assert "infrequent" not in design.categorical_parameters()
    assert prep.model_dump() == {"scaling": "standard", "impute": "mean", "categorical": "onehot"}


@pytest.mark.parametrize("bound", BOUNDS)
def test_portable_predictions_equal_the_pipeline_for_seen_rare_unseen_and_missing(
    bound: dict[str, Any],
) -> None:
    columns = columns_with_ids()
    spec = spec_of(bound, split={"test_size": 0})
    outcome = model_documents(fit_job(columns, spec, training_sha256="x"), spec)
    doc = outcome.portable
    assert any(doc["categorical"]["infrequent"])
    assert outcome.summary["preprocessing"] == {
        "scaling": "standard",
        "impute": "mean",
        "categorical": "onehot",
        **bound,
    }
    pipeline = reference(bound, Ridge(alpha=1.0)).fit(matrix(columns), columns["y"])
    cities = ["Paris", "Baku", "Kyiv", "Atlantis", None, "Rome", "Lima"]
    ids = ["id1", "id59", "id999", "id7", "id30", None, "id12"]
    xs = [0.1, -1.0, 2.5, 0.0, 1.0, -0.3, 0.7]
    records = [{"x": x, "city": c, "id": i} for x, c, i in zip(xs, cities, ids, strict=True)]
    model = compile_model(doc)
    got = predict(model, parse_records(model, records))
    X = np.array([[x, c, i] for x, c, i in zip(xs, cities, ids, strict=True)], dtype=object)
    np.testing.assert_allclose(got, pipeline.predict(X), rtol=1e-9)


def _grid_search(
    columns: dict[str, Any], spec: JobSpec, estimator: Any, alphas: list[float]
) -> Any:
    rows = np.arange(len(columns["y"]))
    train, _ = train_test_split(rows, test_size=0.2, shuffle=True, random_state=0)
    bound = spec.preprocessing.model_dump(exclude={"scaling", "impute", "categorical"})
    assert spec.tuning is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(
            reference(bound, estimator),
            {"est__alpha": alphas},
            cv=KFold(spec.tuning.cv.folds),
            scoring="r2",
        ).fit(matrix(columns)[train], columns["y"][train])


@pytest.mark.parametrize(
    ("kind", "estimator", "tol"), [("l2", Ridge(), 1e-8), ("l1", Lasso(), 1e-4)]
)
def test_search_scores_equal_grid_search_cv_with_the_bounded_encoder(
    kind: str, estimator: Any, tol: float
) -> None:
    """Each fold groups its own rare values, as GridSearchCV's pipeline does."""
    columns = columns_with_ids()
    alphas = [0.01, 0.1, 1.0] if kind == "l1" else [0.1, 1.0, 10.0]
    bound = {"max_categories": 4, "min_frequency": 3}
    spec = spec_of(
        bound, penalty={"type": kind}, tuning={"space": {"alpha": alphas}, "cv": {"folds": 4}}
    )
    summary = model_documents(fit_job(columns, spec, training_sha256="x"), spec).summary
    search = _grid_search(columns, spec, estimator, alphas)
    means = [c["mean_score"] for c in summary["tuning"]["candidates"]]
    np.testing.assert_allclose(means, search.cv_results_["mean_test_score"], rtol=tol, atol=tol)
    assert summary["tuning"]["best_index"] == search.best_index_


def test_design_budget_names_the_widest_columns() -> None:
    columns = columns_with_ids()
    prep = PreprocessingSpec(max_categories=50)
    layout = select_features(columns, target="y", features=None, prep=prep)
    assert layout.onehot_widths(prep) == {"city": 7, "id": 50}
    # 300 rows × (1 + 7 + 50) columns × 8 bytes × 2 copies = 278,400 bytes.
    check_design_budget(layout, prep, n_rows=300, searched=False, budget=278_400)
    with pytest.raises(FitError) as exc:
        check_design_budget(layout, prep, n_rows=300, searched=False, budget=278_399)
    assert "278400 bytes" in exc.value.detail
    assert "'id' (50 one-hot columns)" in exc.value.detail
