"""The portable model predicts as the fitted scikit-learn pipeline, and rejects bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support import fit_documents

from service.errors import InvalidInput
from service.ml.portable import MAX_REPORTED_ERRORS, CompiledModel, compile_model, predict
from service.ml.spec import JobSpec
from service.models.predict_input import parse_records, parse_rows, parse_table

N_ROWS = 200
CITIES = np.array(["Paris", "Rome", "Oslo", None], dtype=object)


def columns_of(n_numeric: int, n_categorical: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    y = rng.normal(size=N_ROWS)
    for j in range(n_numeric):
        x = rng.normal(size=N_ROWS) * (j + 1) + j
        y += (j % 3 - 1) * x
        x[rng.choice(N_ROWS, size=5, replace=False)] = np.nan
        columns[f"x{j}"] = x
    for j in range(n_categorical):
        c = CITIES[rng.integers(0, 4, size=N_ROWS)]
        y += np.array([{"Paris": 1.0, "Rome": -1.0}.get(v, 0.0) for v in c]) * (j + 1)
        columns[f"c{j}"] = c
    columns["y"] = y
    return columns


def fitted(
    columns: dict[str, np.ndarray], penalty: dict[str, Any], estimator: Any, **prep: str
) -> tuple[CompiledModel, Pipeline, list[str]]:
    """Fit through fit_job and through scikit-learn on the same training rows."""
    spec = JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": penalty, "preprocessing": prep}
    )
    outcome = fit_documents(columns, spec, training_sha256="f" * 64)
    document = json.loads(json.dumps(outcome.portable, allow_nan=False))  # as the store keeps it
    features = [name for name in columns if name != "y"]
    numeric = [i for i, name in enumerate(features) if name.startswith("x")]
    categorical = [i for i, name in enumerate(features) if name.startswith("c")]
    steps: list[Any] = []
    if spec.preprocessing.impute != "none":
        steps.append(SimpleImputer(strategy=spec.preprocessing.impute))
    if spec.preprocessing.scaling == "standard":
        steps.append(StandardScaler())
    transformers: list[Any] = [("num", make_pipeline(*steps) if steps else "passthrough", numeric)]
    if categorical and spec.preprocessing.categorical == "onehot":
        transformers.append(
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)
        )
    train, _ = train_test_split(np.arange(N_ROWS), test_size=0.2, random_state=0)
    pipeline = make_pipeline(ColumnTransformer(transformers), estimator)
    pipeline.fit(matrix(columns, features)[train], columns["y"][train])
    return compile_model(document), pipeline, features


def matrix(columns: dict[str, np.ndarray], features: list[str]) -> np.ndarray:
    return np.column_stack([np.asarray(columns[name], dtype=object) for name in features])


def json_rows(X: np.ndarray) -> list[list[Any]]:
    """Rows as a JSON client sends them: NaN becomes null."""
    return [
        [None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in X.tolist()
    ]


def random_inputs(features: list[str], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.empty((n, len(features)), dtype=object)
    for j, name in enumerate(features):
        if name.startswith("x"):
            values = rng.normal(size=n) * 3
            values[rng.random(n) < 0.05] = np.nan
            X[:, j] = values
        else:  # "Tokyo" was never seen while training
            X[:, j] = np.array(["Paris", "Rome", "Oslo", None, "Tokyo"], dtype=object)[
                rng.integers(0, 5, size=n)
            ]
    return X


SHAPES = [(1, 0), (3, 0), (1, 1), (4, 2), (0, 2), (12, 3)]


@pytest.mark.parametrize(("n_numeric", "n_categorical"), SHAPES)
@pytest.mark.parametrize(
    ("penalty", "estimator"),
    [
        ({"type": "l1", "alpha": 0.05}, Lasso(alpha=0.05)),
        ({"type": "l2", "alpha": 2.0}, Ridge(alpha=2.0)),
        (
            {"type": "elasticnet", "alpha": 0.1, "l1_ratio": 0.3},
            ElasticNet(alpha=0.1, l1_ratio=0.3),
        ),
    ],
)
def test_predictions_equal_the_pipeline(
    n_numeric: int, n_categorical: int, penalty: dict[str, Any], estimator: Any
) -> None:
    model, pipeline, features = fitted(columns_of(n_numeric, n_categorical), penalty, estimator)
    assert list(model.feature_names) == features
    for n in (1, 7, 500):
        X = random_inputs(features, n, seed=n)
        expected = pipeline.predict(X)
        np.testing.assert_allclose(
            predict(model, parse_rows(model, json_rows(X))), expected, rtol=1e-9
        )
        records = [dict(zip(features, row, strict=True)) for row in json_rows(X)]
        np.testing.assert_allclose(
            predict(model, parse_records(model, records)), expected, rtol=1e-9
        )


@pytest.mark.parametrize(
    "prep",
    [
        {"impute": "median"},
        {"scaling": "none"},
        {"impute": "median", "scaling": "none"},
        {"categorical": "drop"},
    ],
)
def test_predictions_equal_the_pipeline_for_each_preprocessing(prep: dict[str, str]) -> None:
    model, pipeline, features = fitted(
        columns_of(3, 2), {"type": "l2", "alpha": 0.5}, Ridge(alpha=0.5), **prep
    )
    X = random_inputs(features, 300, seed=3)
    used = [j for j, name in enumerate(features) if name in model.feature_names]
    rows = [[row[j] for j in used] for row in json_rows(X)]
    np.testing.assert_allclose(
        predict(model, parse_rows(model, rows)), pipeline.predict(X), rtol=1e-9
    )


def test_ten_thousand_rows_fast_path() -> None:
    model, pipeline, _ = fitted(columns_of(8, 0), {"type": "l1", "alpha": 0.01}, Lasso(alpha=0.01))
    X = np.random.default_rng(5).normal(size=(10_000, 8)) * 4
    rows = X.tolist()
    started = time.perf_counter()
    predictions = predict(model, parse_rows(model, rows))
    elapsed = time.perf_counter() - started
    np.testing.assert_allclose(predictions, pipeline.predict(X), rtol=1e-9)
    assert elapsed < 1.0, f"10k rows took {elapsed:.3f}s"


def test_csv_table_with_extra_columns_and_any_order() -> None:
    model, pipeline, features = fitted(
        columns_of(2, 1), {"type": "l2", "alpha": 1.0}, Ridge(alpha=1.0)
    )
    X = random_inputs(features, 50, seed=9)
    header = ["id", "c0", "x1", "x0"]
    order = [features.index(name) for name in header[1:]]
    table = [
        [str(i)]
        + [
            "" if v is None else repr(v) if isinstance(v, float) else v
            for v in (row[j] for j in order)
        ]
        for i, row in enumerate(json_rows(X))
    ]
    predictions = predict(model, parse_table(model, header, table))
    np.testing.assert_allclose(predictions, pipeline.predict(X), rtol=1e-9)


def test_records_ignore_extra_keys() -> None:
    model, pipeline, _ = fitted(columns_of(2, 1), {"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1))
    record = {"x0": 1.5, "x1": -2, "c0": "Rome", "y": 99, "note": "ignored"}
    expected = pipeline.predict(np.array([[1.5, -2.0, "Rome"]], dtype=object))
    np.testing.assert_allclose(predict(model, parse_records(model, [record])), expected, rtol=1e-9)


def test_empty_input_predicts_nothing() -> None:
    model, _, _ = fitted(columns_of(2, 1), {"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1))
    assert predict(model, parse_rows(model, [])).shape == (0,)
    assert predict(model, parse_records(model, [])).shape == (0,)


# --- validation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> CompiledModel:
    """Features x0, x1 (numeric, imputed) and c0 (categorical)."""
    return fitted(columns_of(2, 1), {"type": "l2", "alpha": 1.0}, Ridge(alpha=1.0))[0]


@pytest.fixture(scope="module")
def strict_model() -> CompiledModel:
    """Like ``model`` but trained with impute "none" (so it cannot fill a null)."""
    columns = columns_of(2, 1)
    for name in ("x0", "x1"):
        columns[name] = np.nan_to_num(columns[name])
    return fitted(columns, {"type": "l2", "alpha": 1.0}, Ridge(alpha=1.0), impute="none")[0]


def errors_of(call: Any, *args: Any) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInput) as exc:
        call(*args)
    assert exc.value.status == 422
    assert exc.value.errors
    return exc.value.errors


def test_wrong_width_names_the_row_and_expected_width(model: CompiledModel) -> None:
    errors = errors_of(parse_rows, model, [[1.0, 2.0, "Paris"], [1.0, 2.0], "x", [1, 2, "a", 4]])
    assert [e["loc"] for e in errors] == ["/rows/1", "/rows/2", "/rows/3"]
    assert "row 1 has 2 values; expected 3 (features x0, x1, c0)" in errors[0]["msg"]
    assert "must be an array of 3 values" in errors[1]["msg"]


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("1.5", "expected a number, got the string '1.5'"),
        ("NaN", "expected a number, got the string 'NaN'"),
        (True, "expected a number, got a boolean"),
        (False, "expected a number, got a boolean"),
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        (-float("inf"), "-inf is not a finite number"),
        (10**400, "is not a finite number"),
        ([1.0], "expected a number, got an array"),
        ({"v": 1}, "expected a number, got an object"),
    ],
)
def test_bad_numeric_cells_name_row_and_column(
    model: CompiledModel, cell: Any, fragment: str
) -> None:
    errors = errors_of(parse_rows, model, [[0.0, 1.0, "Paris"], [0.0, cell, "Rome"]])
    assert len(errors) == 1 and errors[0]["loc"] == "/rows/1/1"
    assert errors[0]["msg"].startswith("row 1, column 'x1': ")
    assert fragment in errors[0]["msg"]


def test_bad_categorical_cells(model: CompiledModel) -> None:
    errors = errors_of(parse_rows, model, [[0.0, 1.0, 3], [0.0, 1.0, True]])
    assert [e["loc"] for e in errors] == ["/rows/0/2", "/rows/1/2"]
    assert (
        "column 'c0': expected a string (a category) or null, got the number 3" in errors[0]["msg"]
    )


def test_all_bad_cells_are_reported_up_to_a_cap(model: CompiledModel) -> None:
    rows = [["a", True, 1] for _ in range(30)]
    with pytest.raises(InvalidInput) as exc:
        parse_rows(model, rows)
    assert exc.value.detail.startswith("90 invalid value(s)")
    assert exc.value.errors is not None and len(exc.value.errors) == MAX_REPORTED_ERRORS
    assert [e["loc"] for e in exc.value.errors[:4]] == [
        "/rows/0/0",
        "/rows/0/1",
        "/rows/0/2",
        "/rows/1/0",
    ]


def test_missing_and_non_object_records(model: CompiledModel) -> None:
    errors = errors_of(parse_records, model, [{"x0": 1, "c0": "a"}, [1, 2, 3], {"x0": 1, "x1": 2}])
    assert errors == [
        {"loc": "/records/0/x1", "msg": "record 0 is missing the column 'x1'"},
        {"loc": "/records/1", "msg": "record 1 must be an object"},
        {"loc": "/records/2/c0", "msg": "record 2 is missing the column 'c0'"},
    ]
    errors = errors_of(parse_records, model, [{"x0": "1", "x1": 2, "c0": None}])
    assert errors[0]["loc"] == "/records/0/x0"


def test_null_is_imputed_with_an_imputer(model: CompiledModel) -> None:
    assert model.has_imputer
    filled = predict(model, parse_rows(model, [[None, None, None]]))
    assert model.impute_values is not None
    explicit = predict(model, parse_rows(model, [[*model.impute_values.tolist(), None]]))
    np.testing.assert_allclose(filled, explicit, rtol=1e-12)


def test_null_is_rejected_without_an_imputer(strict_model: CompiledModel) -> None:
    assert not strict_model.has_imputer
    errors = errors_of(parse_rows, strict_model, [[1.0, None, "Paris"]])
    assert errors[0]["loc"] == "/rows/0/1"
    assert "is missing, and this model has no imputer" in errors[0]["msg"]
    # A null category is still fine: it is a category (or unseen), never imputed.
    assert predict(strict_model, parse_rows(strict_model, [[1.0, 2.0, None]])).shape == (1,)
    table_errors = errors_of(parse_table, strict_model, ["x0", "x1", "c0"], [["1", "", "a"]])
    assert table_errors[0]["loc"] == "/rows/0/1"


def test_table_validation(model: CompiledModel) -> None:
    errors = errors_of(parse_table, model, ["x0", "c0", "c0"], [])
    assert {"loc": "/header/2", "msg": "duplicate column 'c0'"} in errors
    assert {"loc": "/header", "msg": "missing column 'x1'"} in errors
    errors = errors_of(
        parse_table,
        model,
        ["c0", "x0", "x1"],
        [["a", "1", "2"], ["a", "NaN", "Infinity"], ["b", "one", "2"], ["a", "1"]],
    )
    assert [e["loc"] for e in errors] == ["/rows/3"]
    errors = errors_of(
        parse_table,
        model,
        ["c0", "x0", "x1"],
        [["a", "1", "2"], ["a", "NaN", "Infinity"], ["b", "one", "2"]],
    )
    assert [e["loc"] for e in errors] == ["/rows/1/1", "/rows/1/2", "/rows/2/1"]
    assert "'NaN' is not a finite number" in errors[0]["msg"]
    assert "the string 'one' is not a number" in errors[2]["msg"]


def test_document_is_validated() -> None:
    with pytest.raises(ValueError, match=r"not a regfit\.linear\.v1"):
        compile_model({"format": "pickle"})
    model, _, _ = fitted(columns_of(2, 1), {"type": "l1", "alpha": 0.1}, Lasso(alpha=0.1))
    assert model.target == "y"


# --- the all-numeric fast path ------------------------------------------------------------


@pytest.fixture(scope="module")
def numeric_model() -> CompiledModel:
    """Features x0, x1, x2, all numeric and imputed: rows take the one-conversion path."""
    return fitted(columns_of(3, 0), {"type": "l2", "alpha": 1.0}, Ridge(alpha=1.0))[0]


def test_numeric_rows_predict_as_the_per_cell_path(numeric_model: CompiledModel) -> None:
    rng = np.random.default_rng(3)
    rows: list[list[Any]] = rng.normal(size=(50, 3)).tolist()
    rows[0] = [0, 1, 2]  # ints, and the 0/1 values a boolean would turn into
    rows[1] = [0.0, 1.0, -0.0]
    rows[2] = [2**62, -(2**62), 7]
    # The CSV path converts every cell on its own: the reference for the fast path.
    text_rows = [[repr(v) for v in row] for row in rows]
    reference = predict(numeric_model, parse_table(numeric_model, ["x0", "x1", "x2"], text_rows))
    np.testing.assert_array_equal(
        predict(numeric_model, parse_rows(numeric_model, rows)), reference
    )
    records = [dict(zip(["x0", "x1", "x2"], row, strict=True)) for row in rows]
    np.testing.assert_array_equal(
        predict(numeric_model, parse_records(numeric_model, records)), reference
    )


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("1.5", "expected a number, got the string '1.5'"),
        (True, "expected a number, got a boolean"),
        (False, "expected a number, got a boolean"),
        (None, None),  # imputed, not an error
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        (10**400, "is not a finite number"),
        (2**64, None),  # beyond 64 bits, still a finite number
        ([1.0], "expected a number, got an array"),
        ({"v": 1}, "expected a number, got an object"),
    ],
)
def test_numeric_model_rejects_the_same_cells(
    numeric_model: CompiledModel, cell: Any, fragment: str | None
) -> None:
    rows = [[0.0, 1.0, 2.0], [0.0, cell, 1.0]]
    if fragment is None:
        assert predict(numeric_model, parse_rows(numeric_model, rows)).shape == (2,)
        return
    for call, payload, loc in (
        (parse_rows, rows, "/rows/1/1"),
        (parse_records, [dict(zip(["x0", "x1", "x2"], r, strict=True)) for r in rows], None),
    ):
        errors = errors_of(call, numeric_model, payload)
        assert len(errors) == 1 and fragment in errors[0]["msg"]
        assert errors[0]["loc"] == (loc or "/records/1/x1")


def test_numeric_model_ragged_rows(numeric_model: CompiledModel) -> None:
    errors = errors_of(parse_rows, numeric_model, [[0.0, 1.0, 2.0], [0.0, 1.0], [[1, 2, 3]]])
    assert [e["loc"] for e in errors] == ["/rows/1", "/rows/2"]
