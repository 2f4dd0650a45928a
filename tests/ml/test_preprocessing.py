"""Preprocessing equals scikit-learn's ColumnTransformer, and bad data fails clearly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from service.ml.errors import FitError
from service.ml.preprocessing import (
    Columns,
    ColumnTable,
    build_design,
    select_features,
    target_values,
    transformed_feature_names,
)
from service.ml.spec import PreprocessingSpec

CITIES = np.array(["Paris", "Rome", "Oslo", "Lima", None], dtype=object)


def mixed_columns(n: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n) * 4 + 10
    x1 = rng.exponential(size=n)
    x1[rng.choice(n, size=n // 10, replace=False)] = np.nan
    return {
        "x0": x0,
        "city": CITIES[rng.integers(0, 4, size=n)],
        "x1": x1,
        "count": rng.integers(0, 5, size=n),
        "size": np.array(["S", "M", "L"], dtype=object)[rng.integers(0, 3, size=n)],
        "y": 3 * x0 - np.nan_to_num(x1) + rng.normal(size=n),
    }


def reference_transformer(
    prep: PreprocessingSpec, numeric: list[int], categorical: list[int]
) -> ColumnTransformer:
    steps: list[Any] = []
    if prep.impute != "none":
        steps.append(SimpleImputer(strategy=prep.impute))
    if prep.scaling == "standard":
        steps.append(StandardScaler())
    transformers: list[tuple[str, Any, list[int]]] = [
        ("num", make_pipeline(*steps) if steps else "passthrough", numeric)
    ]
    if prep.categorical == "onehot" and categorical:
        transformers.append(
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)
        )
    return ColumnTransformer(transformers)


def as_object_matrix(columns: Columns, names: list[str]) -> np.ndarray:
    return np.column_stack([np.asarray(columns[name], dtype=object) for name in names])


@pytest.mark.parametrize("impute", ["mean", "median"])
@pytest.mark.parametrize("scaling", ["standard", "none"])
@pytest.mark.parametrize("categorical", ["onehot", "drop"])
def test_design_equals_column_transformer(impute: str, scaling: str, categorical: str) -> None:
    columns = mixed_columns()
    prep = PreprocessingSpec.model_validate(
        {"impute": impute, "scaling": scaling, "categorical": categorical}
    )
    layout = select_features(columns, target="y", features=None, prep=prep)
    assert layout.numeric == ("x0", "x1", "count")
    assert layout.categorical == (() if categorical == "drop" else ("city", "size"))
    assert layout.dropped == (("city", "size") if categorical == "drop" else ())

    train, test = np.arange(0, 90), np.arange(90, 120)
    design, X_train = build_design(columns, layout, prep, rows=train)

    inputs = ["x0", "city", "x1", "count", "size"]
    reference = reference_transformer(prep, [0, 2, 3], [1, 4])
    matrix = as_object_matrix(columns, inputs)
    # Equal up to summation order: on an object matrix SimpleImputer averages a
    # differently laid out copy (the parameters themselves are compared exactly below).
    np.testing.assert_allclose(
        X_train, reference.fit_transform(matrix[train]), rtol=1e-13, atol=1e-13
    )
    np.testing.assert_allclose(
        design.transform(columns, test), reference.transform(matrix[test]), rtol=1e-13, atol=1e-13
    )


def test_fitted_parameters_are_extracted() -> None:
    columns = mixed_columns()
    prep = PreprocessingSpec(impute="median")
    layout = select_features(columns, target="y", features=["x1", "city", "x0"], prep=prep)
    assert layout.features == ("x1", "city", "x0")
    assert layout.dtypes == {"x1": "float64", "city": "string", "x0": "float64"}
    design, _ = build_design(columns, layout, prep)

    matrix = np.column_stack([columns["x1"], columns["x0"]])
    imputer = SimpleImputer(strategy="median").fit(matrix)
    scaler = StandardScaler().fit(imputer.transform(matrix))
    assert design.numeric_parameters() == {
        "names": ["x1", "x0"],
        "impute": "median",
        "impute_values": imputer.statistics_.tolist(),
        "scaling": "standard",
        "means": scaler.mean_.tolist(),
        "scales": scaler.scale_.tolist(),
    }
    assert design.categories() == [["Lima", "Oslo", "Paris", "Rome"]]
    assert design.feature_names_out_ == [
        "x1",
        "x0",
        "city=Lima",
        "city=Oslo",
        "city=Paris",
        "city=Rome",
    ]


def test_missing_text_is_its_own_category_and_unseen_categories_are_zero() -> None:
    columns = {
        "city": np.array(["Paris", None, "Rome", "Paris", "Tokyo", None], dtype=object),
        "y": np.arange(6.0),
    }
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    design, X = build_design(columns, layout, prep, rows=np.arange(4))
    assert design.categories() == [["Paris", "Rome", None]]
    assert design.feature_names_out_ == ["city=Paris", "city=Rome", "city=<missing>"]
    np.testing.assert_array_equal(X, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(
        design.transform(columns, np.array([4, 5])), [[0, 0, 0], [0, 0, 1]]
    )


def test_feature_names_are_unique() -> None:
    names = transformed_feature_names(["a=b"], ["a"], [["b", None]])
    assert names == ["a=b", "a=b#2", "a=<missing>"]


def test_impute_none_rejects_missing_values_naming_column_and_count() -> None:
    columns = mixed_columns()
    n_missing = int(np.isnan(columns["x1"]).sum())
    with pytest.raises(FitError, match=rf"column 'x1' has {n_missing} missing value\(s\)"):
        select_features(columns, target="y", features=None, prep=PreprocessingSpec(impute="none"))
    # Without missing values, "none" is fine and the design has no imputer.
    prep = PreprocessingSpec(impute="none")
    layout = select_features(columns, target="y", features=["x0", "count"], prep=prep)
    design, _ = build_design(columns, layout, prep)
    assert design.imputer_ is None and design.numeric_parameters()["impute_values"] is None


def test_missing_target_values_are_rejected_naming_column_and_count() -> None:
    columns = mixed_columns()
    columns["y"][[5, 17, 40]] = np.nan
    with pytest.raises(
        FitError, match=r"target column 'y' has 3 missing value\(s\) \(rows 5, 17, 40\)"
    ):
        target_values(columns, "y")


@pytest.mark.parametrize(
    ("target", "features", "pattern"),
    [
        ("y", ["x0", "nope", "nada"], r"unknown column\(s\) 'nope', 'nada'"),
        ("why", None, r"unknown column\(s\) 'why'"),
        ("y", ["y", "x0"], "cannot also be a feature"),
    ],
)
def test_unknown_names_are_rejected(target: str, features: list[str] | None, pattern: str) -> None:
    with pytest.raises(FitError, match=pattern):
        select_features(mixed_columns(), target=target, features=features, prep=PreprocessingSpec())


def test_non_numeric_target_is_rejected() -> None:
    with pytest.raises(FitError, match="target column 'city' is not numeric"):
        target_values(mixed_columns(), "city")


def test_zero_usable_features() -> None:
    with pytest.raises(FitError, match=r"no usable feature columns.*'city', 'size' dropped"):
        select_features(
            mixed_columns(),
            target="y",
            features=["city", "size"],
            prep=PreprocessingSpec(categorical="drop"),
        )


def test_bad_columns_are_rejected() -> None:
    columns = mixed_columns(n=10)
    columns["x0"][2] = np.inf
    columns["city"] = np.array(["a", 1, "b", None, "c", "d", "e", "f", "g", "h"], dtype=object)
    with pytest.raises(FitError) as exc:
        select_features(columns, target="y", features=None, prep=PreprocessingSpec())
    assert "column 'x0' has 1 infinite value(s)" in exc.value.detail
    assert "column 'city' mixes text with non-text values (int)" in exc.value.detail


def test_a_column_without_observed_training_values_is_rejected() -> None:
    columns = mixed_columns(n=10)
    columns["x1"][:6] = np.nan
    prep = PreprocessingSpec()
    layout = select_features(columns, target="y", features=None, prep=prep)
    with pytest.raises(FitError, match="'x1' have no observed value in the training rows"):
        build_design(columns, layout, prep, rows=np.arange(6))


def test_columns_of_unequal_length_are_rejected() -> None:
    with pytest.raises(FitError, match="columns differ in length"):
        select_features(
            {"x": np.zeros(3), "y": np.zeros(4)},
            target="y",
            features=None,
            prep=PreprocessingSpec(),
        )


def test_a_kept_dataset_gives_the_same_designs_and_remembers_its_checks() -> None:
    # A worker's cached dataset (ColumnTable) gathers rows from a row-major matrix of its
    # numeric columns and remembers each column's checks; every result equals the one built
    # from the plain columns, to the bit.
    columns = mixed_columns(n=300, seed=4)
    prep = PreprocessingSpec()
    table = ColumnTable(columns, matrix_bytes=1 << 20)
    rows = np.random.default_rng(0).permutation(300)[:200]
    for source in (columns, table, table):
        layout = select_features(source, target="y", features=None, prep=prep)
        assert layout == select_features(columns, target="y", features=None, prep=prep)
        design, X = build_design(source, layout, prep, rows=rows)
        reference_design, reference = build_design(columns, layout, prep, rows=rows)
        np.testing.assert_array_equal(X, reference)
        assert design.numeric_parameters() == reference_design.numeric_parameters()
    matrix = table.row_matrix(layout.numeric)
    assert matrix is not None and not matrix.flags.writeable
    assert matrix.dtype == np.float64  # the integer column "count" too
    # The blocks handed out are new arrays the caller may change.
    block = design.numeric_blocks(table, [rows])[0]
    block[:] = 0.0
    np.testing.assert_array_equal(
        matrix[rows[0]], reference_design.numeric_blocks(columns, [rows])[0][0]
    )

    calls: list[str] = []
    assert table.fact("probe", "x0", lambda: calls.append("x0") or 1) == 1
    assert table.fact("probe", "x0", lambda: calls.append("x0") or 2) == 1
    assert calls == ["x0"]


def test_a_kept_dataset_over_its_matrix_budget_gathers_as_before() -> None:
    columns = mixed_columns(n=300, seed=4)
    table = ColumnTable(columns, matrix_bytes=8 * 300 * 3 - 1)  # three numeric columns
    assert table.row_matrix(("x0", "x1", "count")) is None
    assert table.row_matrix(("x0", "x1")) is not None
    layout = select_features(table, target="y", features=None, prep=PreprocessingSpec())
    _, X = build_design(table, layout, PreprocessingSpec())
    _, reference = build_design(columns, layout, PreprocessingSpec())
    np.testing.assert_array_equal(X, reference)
