"""The portable model: one JSON document, and predictions from it with numpy alone.

A trained model is data, never a pickle. The document (``format: "regfit.linear.v1"``)::

    {
      "format": "regfit.linear.v1",
      "target": "y",
      "features": [{"name": "x0", "kind": "numeric", "dtype": "float64"},
                   {"name": "city", "kind": "categorical", "dtype": "string"}],
      "numeric": {"names": ["x0"], "impute": "mean", "impute_values": [0.1],
                  "scaling": "standard", "means": [0.1], "scales": [1.3]},
      "categorical": {"names": ["city"], "categories": [["Paris", "Rome", null]]},
      "coef": [...], "intercept": 2.5,
      "feature_names_out": ["x0", "city=Paris", "city=Rome", "city=<missing>"],
      "penalty": {...},
      "training_data_sha256": "…"
    }

``features`` is the order of a prediction row. ``impute_values`` is null when the model
has no imputer (``impute: "none"``); ``means``/``scales`` are null without scaling;
a null category is the "missing" category. A prediction is computed as scikit-learn's
pipeline does: impute NaN, ``(x - mean)/scale``, the one-hot block (unseen categories
are all zeros, as ``OneHotEncoder(handle_unknown="ignore")``), then
``X @ coef + intercept``.

A feature of ``dtype: "bool"`` takes JSON booleans (and numbers) and, in CSV, ``true``/``false``
in any of pyarrow's spellings or ``1``/``0``, as the dataset upload reads them.

Input validation: a wrong row width, a missing column, a non-number (strings, and
booleans for any dtype but ``bool``, included) or a non-finite number for a numeric
feature, a non-string for a categorical one, or a null for a numeric feature of a model
without an imputer is an :class:`~service.errors.InvalidInput` listing every bad cell (up to
:data:`MAX_REPORTED_ERRORS`) with a JSON pointer (``/rows/3/2``, ``/records/0/x5``).
Keys of a record that are not features are ignored, so records may carry ids or the
target along.

This module must not import scikit-learn: it is the prediction hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from service.errors import InvalidInput, field_error

FORMAT = "regfit.linear.v1"
MAX_REPORTED_ERRORS = 20

_NUMBER_TYPES = frozenset({float, int})
_NUMBER_OR_BOOL_TYPES = frozenset({float, int, bool})
_TEXT_TYPES = frozenset({str, type(None)})
# A bool feature's CSV spellings: those a dataset upload reads as booleans (pyarrow's).
_BOOL_WORDS = {"true": "1", "True": "1", "TRUE": "1", "false": "0", "False": "0", "FALSE": "0"}


def make_document(
    *,
    target: str,
    features: Sequence[dict[str, str]],
    numeric: dict[str, Any],
    categorical: dict[str, Any],
    coef: Sequence[float],
    intercept: float,
    feature_names_out: Sequence[str],
    penalty: dict[str, Any],
    training_data_sha256: str,
) -> dict[str, Any]:
    """Assemble a portable model document from plain values (see the module doc)."""
    doc = {
        "format": FORMAT,
        "target": target,
        "features": [dict(feature) for feature in features],
        "numeric": dict(numeric),
        "categorical": {
            "names": list(categorical["names"]),
            "categories": [list(cats) for cats in categorical["categories"]],
        },
        "coef": [float(c) for c in coef],
        "intercept": float(intercept),
        "feature_names_out": list(feature_names_out),
        "penalty": dict(penalty),
        "training_data_sha256": training_data_sha256,
    }
    compile_model(doc)  # a document that cannot be compiled is never handed out
    return doc


@dataclass(frozen=True)
class PredictInputs:
    """Validated prediction inputs, split by feature kind.

    Attributes
    ----------
    numeric : ndarray of shape (n_rows, n_numeric)
        float64; NaN marks a missing value to impute.
    categorical : list of sequences
        One sequence of ``str`` or None per categorical feature, each of length n_rows.
    """

    numeric: np.ndarray
    categorical: list[Sequence[str | None]]
    complete: bool = False  # known to hold no NaN (nothing to impute)

    @property
    def n_rows(self) -> int:
        return int(self.numeric.shape[0])


class CompiledModel:
    """A portable document compiled once into numpy arrays for fast prediction.

    Parameters
    ----------
    doc : dict
        A ``regfit.linear.v1`` document.

    Raises
    ------
    ValueError
        If the document is not a consistent ``regfit.linear.v1`` model.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model document")
        try:
            features = [(f["name"], f["kind"], f.get("dtype", "")) for f in doc["features"]]
            numeric, categorical = doc["numeric"], doc["categorical"]
            self.target: str = doc["target"]
            self.numeric_names: tuple[str, ...] = tuple(numeric["names"])
            self.categorical_names: tuple[str, ...] = tuple(categorical["names"])
            categories = [list(cats) for cats in categorical["categories"]]
            coef = np.asarray(doc["coef"], dtype=np.float64)
            self.intercept = float(doc["intercept"])
            impute_values, means, scales = (
                numeric.get(key) for key in ("impute_values", "means", "scales")
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {FORMAT} document: {exc!r}") from exc

        self.feature_names: tuple[str, ...] = tuple(name for name, _, _ in features)
        kinds = {name: kind for name, kind, _ in features}
        self.feature_dtypes = {name: dtype for name, _, dtype in features}
        n_numeric = len(self.numeric_names)
        if [n for n in self.feature_names if kinds[n] == "numeric"] != list(self.numeric_names) or [
            n for n in self.feature_names if kinds[n] == "categorical"
        ] != list(self.categorical_names):
            raise ValueError("features do not match the numeric and categorical names")
        if len(categories) != len(self.categorical_names):
            raise ValueError("one category list is needed per categorical feature")
        if coef.shape != (n_numeric + sum(map(len, categories)),):
            raise ValueError("coef does not match the numeric and one-hot columns")

        def vector(values: Any, what: str) -> np.ndarray | None:
            if values is None:
                return None
            array = np.asarray(values, dtype=np.float64)
            if array.shape != (n_numeric,):
                raise ValueError(f"{what} must have one value per numeric feature")
            return array

        self.impute_values = vector(impute_values, "impute_values")
        self.means = vector(means, "means")
        self.scales = vector(scales, "scales")
        self.numeric_coef = coef[:n_numeric]
        # Each categorical feature contributes the coefficient of its one-hot column,
        # or nothing for an unseen category.
        self.category_coef: list[dict[str | None, float]] = []
        offset = n_numeric
        for cats in categories:
            self.category_coef.append(
                {
                    cat: float(c)
                    for cat, c in zip(cats, coef[offset : offset + len(cats)], strict=True)
                }
            )
            offset += len(cats)
        self.numeric_index = tuple(self.feature_names.index(n) for n in self.numeric_names)
        self.categorical_index = tuple(self.feature_names.index(n) for n in self.categorical_names)

    @property
    def n_features(self) -> int:
        """The width of a prediction row."""
        return len(self.feature_names)

    @property
    def has_imputer(self) -> bool:
        """Whether a null numeric value is imputed (else it is rejected)."""
        return self.impute_values is not None

    def predict_matrix(
        self,
        X_num: np.ndarray,
        X_cat: Sequence[Sequence[str | None]] | None = None,
        *,
        complete: bool = False,
    ) -> np.ndarray:
        """Predict from a numeric block and the categorical columns.

        Parameters
        ----------
        X_num : ndarray of shape (n_rows, n_numeric)
            float64 numeric features in ``numeric_names`` order; NaN is imputed.
        X_cat : list of sequences, optional
            One sequence of ``str``/None per categorical feature.
        complete : bool, default False
            The caller knows ``X_num`` has no NaN, so the imputation check is skipped.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        X = np.asarray(X_num, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.numeric_names):
            raise InvalidInput(
                f"the numeric block must have shape (n_rows, {len(self.numeric_names)})"
            )
        missing = None if complete else np.isnan(X)
        if missing is not None and missing.any():
            if self.impute_values is None:
                raise InvalidInput("missing numeric values, and the model has no imputer")
            X = np.where(missing, self.impute_values, X)
        if self.means is not None and self.scales is not None:
            X = (X - self.means) / self.scales
        predictions = X @ self.numeric_coef
        X_cat = X_cat or []
        if len(X_cat) != len(self.category_coef):
            raise InvalidInput(f"expected {len(self.category_coef)} categorical column(s)")
        n_rows = X.shape[0]
        for values, coef_of in zip(X_cat, self.category_coef, strict=True):
            if len(values) != n_rows:
                raise InvalidInput("every categorical column needs one value per row")
            predictions += np.fromiter(map(coef_of.get, values, repeat(0.0)), np.float64, n_rows)
        return predictions + self.intercept


def compile_model(doc: dict[str, Any]) -> CompiledModel:
    """Compile a portable document for prediction (do it once per model and keep it)."""
    return CompiledModel(doc)


class _ErrorLog:
    """Collects bad cells; keeps the first ones by (row, column), counts them all."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, str, str]] = []
        self.total = 0

    def add(self, row: int, column: int, loc: str, msg: str) -> None:
        self.total += 1
        self.entries.append((row, column, loc, msg))
        if len(self.entries) > 4 * MAX_REPORTED_ERRORS:  # bound memory on huge bad inputs
            self.entries.sort()
            del self.entries[MAX_REPORTED_ERRORS:]

    def raise_if_any(self, what: str = "value") -> None:
        if not self.total:
            return
        self.entries.sort()
        shown = self.entries[:MAX_REPORTED_ERRORS]
        more = f"; the first {len(shown)} are listed" if self.total > len(shown) else ""
        raise InvalidInput(
            f"{self.total} invalid {what}(s) in the prediction input{more}",
            errors=[field_error(loc, msg) for _, _, loc, msg in shown],
        )


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"a value of type {type(value).__name__}"


LocOf = Callable[[int, int], str]


def _numeric_column(
    model: CompiledModel,
    feature: int,
    values: Sequence[Any],
    loc_of: LocOf,
    errors: _ErrorLog,
    *,
    from_text: bool,
) -> np.ndarray:
    """Convert one numeric feature's values to float64, logging every bad cell."""
    name = model.feature_names[feature]
    bools_ok = model.feature_dtypes.get(name) == "bool"
    if from_text and bools_ok:
        values = [_BOOL_WORDS.get(value, value) if value else value for value in values]
    types = set(map(type, values))
    parsed: np.ndarray | None = None
    if from_text:
        if types <= {str} and "" not in values:
            try:
                parsed = np.array(values, dtype=np.float64)
            except ValueError:
                parsed = None
    elif types <= (_NUMBER_OR_BOOL_TYPES if bools_ok else _NUMBER_TYPES):
        try:
            parsed = np.array(values, dtype=np.float64)
        except OverflowError:
            parsed = None
    if parsed is not None:
        bad = np.flatnonzero(~np.isfinite(parsed))
        for i in bad.tolist():
            errors.add(
                i,
                feature,
                loc_of(i, feature),
                f"row {i}, column {name!r}: {values[i]!r} is not a finite number "
                f"(NaN and Infinity are not allowed)",
            )
        return parsed

    # The slow path: a cell at a time, for inputs with missing or malformed values.
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        problem = None
        if value is None or (from_text and value == ""):
            out[i] = math.nan
            if not model.has_imputer:
                problem = "is missing, and this model has no imputer (trained with impute 'none')"
        elif from_text and isinstance(value, str):
            try:
                out[i] = float(value)
            except ValueError:
                problem = f"{_describe(value)} is not a number"
            else:
                if not math.isfinite(out[i]):
                    problem = f"{value!r} is not a finite number (NaN and Infinity are not allowed)"
        elif isinstance(value, bool) and not bools_ok:
            problem = "expected a number, got a boolean"
        elif isinstance(value, int | float | np.number) and not isinstance(value, np.bool_):
            try:
                out[i] = float(value)
            except OverflowError:
                out[i] = math.inf
            if not math.isfinite(out[i]):
                problem = f"{value!r} is not a finite number (NaN and Infinity are not allowed)"
        elif isinstance(value, bool | np.bool_):
            out[i] = float(value)
        else:
            problem = f"expected a number, got {_describe(value)}"
        if problem is not None:
            errors.add(i, feature, loc_of(i, feature), f"row {i}, column {name!r}: {problem}")
    return out


def _categorical_column(
    model: CompiledModel,
    feature: int,
    values: Sequence[Any],
    loc_of: LocOf,
    errors: _ErrorLog,
    *,
    from_text: bool,
) -> Sequence[str | None]:
    """Check one categorical feature's values (``str`` or None), logging every bad cell."""
    if from_text and "" in values:
        # An empty CSV cell is a missing value, as it is when a dataset is uploaded.
        values = [None if value == "" else value for value in values]
    if set(map(type, values)) <= _TEXT_TYPES:
        return values
    name = model.feature_names[feature]
    for i, value in enumerate(values):
        if value is not None and not isinstance(value, str):
            errors.add(
                i,
                feature,
                loc_of(i, feature),
                f"row {i}, column {name!r}: expected a string (a category) or null, "
                f"got {_describe(value)}",
            )
    return values


def _inputs_from_columns(
    model: CompiledModel,
    columns: Sequence[Sequence[Any]],
    n_rows: int,
    loc_of: LocOf,
    *,
    from_text: bool = False,
) -> PredictInputs:
    """Validate per-feature columns (in ``model.feature_names`` order) into inputs."""
    errors = _ErrorLog()
    numeric = np.empty((n_rows, len(model.numeric_index)), dtype=np.float64)
    for k, feature in enumerate(model.numeric_index):
        numeric[:, k] = _numeric_column(
            model, feature, columns[feature], loc_of, errors, from_text=from_text
        )
    categorical = [
        _categorical_column(model, feature, columns[feature], loc_of, errors, from_text=from_text)
        for feature in model.categorical_index
    ]
    errors.raise_if_any()
    return PredictInputs(numeric=numeric, categorical=categorical)


def _check_rows(rows: Any, width: int, pointer: str, what: str) -> None:
    """Reject anything but a list of arrays of ``width`` values, naming each bad row."""
    if not isinstance(rows, list):
        raise InvalidInput(
            f"{pointer} must be an array of rows", errors=[field_error(pointer, "must be an array")]
        )
    if set(map(type, rows)) <= {list, tuple} and set(map(len, rows)) <= {width}:
        return
    errors = _ErrorLog()
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple):
            errors.add(i, -1, f"{pointer}/{i}", f"row {i} must be an array of {width} values")
        elif len(row) != width:
            errors.add(
                i, -1, f"{pointer}/{i}", f"row {i} has {len(row)} values; expected {width} ({what})"
            )
    errors.raise_if_any("row")


def _plain_number_matrix(model: CompiledModel, rows: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """``rows`` as one float64 matrix when every cell is a finite JSON number, else None.

    The fast path of :func:`parse_rows` and :func:`parse_records` for all-numeric models: one
    numpy conversion instead of a type check per cell. numpy turns lists of ints and floats
    into an int or float array, and anything else (a string, a null, an object, a ragged or
    nested row, an integer beyond 64 bits) into another dtype or an error; None then sends
    the input to the per-cell path, which names every bad cell. The one value numpy lets
    through is a boolean (as 0 or 1), so the cells equal to 0 or 1 are checked one by one.
    """
    if model.categorical_names:
        return None
    try:
        matrix = np.array(rows)
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.dtype.kind not in "fi" or matrix.shape != (len(rows), model.n_features):
        return None
    matrix = matrix.astype(np.float64, copy=False)
    if not np.isfinite(matrix).all():
        return None
    zero_or_one = np.flatnonzero((matrix == 0.0) | (matrix == 1.0))
    if zero_or_one.size:
        rows_of, columns_of = divmod(zero_or_one, model.n_features)
        for i, j in zip(rows_of.tolist(), columns_of.tolist(), strict=True):
            if type(rows[i][j]) is bool:
                return None
    return matrix


def _transpose(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


def parse_rows(model: CompiledModel, rows: list[list[Any]]) -> PredictInputs:
    """Validate ``{"rows": [[...], ...]}``: one array per row, in ``model.feature_names`` order.

    Raises
    ------
    InvalidInput
        Naming every bad row (``/rows/3``) or cell (``/rows/3/2``), up to a cap.
    """
    if isinstance(rows, list) and (matrix := _plain_number_matrix(model, rows)) is not None:
        return PredictInputs(numeric=matrix, categorical=[], complete=True)
    width = model.n_features
    _check_rows(rows, width, "/rows", "features " + ", ".join(model.feature_names))
    return _inputs_from_columns(
        model, _transpose(rows, width), len(rows), lambda i, j: f"/rows/{i}/{j}"
    )


def parse_records(model: CompiledModel, records: list[dict[str, Any]]) -> PredictInputs:
    """Validate ``{"records": [{name: value}, ...]}``; keys that are not features are ignored.

    Raises
    ------
    InvalidInput
        Naming every bad record, missing column (``/records/0/x5``) or cell, up to a cap.
    """
    names = model.feature_names
    if not isinstance(records, list):
        raise InvalidInput(
            "/records must be an array of objects",
            errors=[field_error("/records", "must be an array of objects")],
        )
    getter = itemgetter(*names)
    try:
        picked = list(map(getter, records)) if set(map(type, records)) <= {dict} else None
    except KeyError:
        picked = None
    if picked is None:
        errors = _ErrorLog()
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                errors.add(i, -1, f"/records/{i}", f"record {i} must be an object")
                continue
            for j, name in enumerate(names):
                if name not in record:
                    errors.add(
                        i, j, f"/records/{i}/{name}", f"record {i} is missing the column {name!r}"
                    )
        errors.raise_if_any("record")
        raise AssertionError("unreachable: records failed to parse without an error")
    rows = [(value,) for value in picked] if len(names) == 1 else picked
    if (matrix := _plain_number_matrix(model, rows)) is not None:
        return PredictInputs(numeric=matrix, categorical=[], complete=True)
    return _inputs_from_columns(
        model, _transpose(rows, len(names)), len(rows), lambda i, j: f"/records/{i}/{names[j]}"
    )


def parse_table(
    model: CompiledModel, header: list[str], rows: list[list[str | None]]
) -> PredictInputs:
    """Validate a CSV-like table: a header and rows of strings (None or "" = missing).

    Numeric cells are parsed as floats; columns not among the features are ignored.

    Raises
    ------
    InvalidInput
        For a missing or duplicated column (``/header``), a row of the wrong width
        (``/rows/3``) or a bad cell (``/rows/3/2``, the index into the header).
    """
    if not isinstance(header, list) or not all(isinstance(name, str) for name in header):
        raise InvalidInput(
            "the header must be a list of column names",
            errors=[field_error("/header", "must be a list of column names")],
        )
    position: dict[str, int] = {}
    problems = []
    for j, name in enumerate(header):
        if name in position:
            problems.append(field_error(f"/header/{j}", f"duplicate column {name!r}"))
        position.setdefault(name, j)
    problems.extend(
        field_error("/header", f"missing column {name!r}")
        for name in model.feature_names
        if name not in position
    )
    if problems:
        raise InvalidInput(
            f"the header does not match the model's features ({', '.join(model.feature_names)})",
            errors=problems[:MAX_REPORTED_ERRORS],
        )
    _check_rows(rows, len(header), "/rows", "one per header column")
    all_columns = _transpose(rows, len(header))
    columns = [all_columns[position[name]] for name in model.feature_names]
    header_index = [position[name] for name in model.feature_names]
    return _inputs_from_columns(
        model, columns, len(rows), lambda i, j: f"/rows/{i}/{header_index[j]}", from_text=True
    )


def predict(model: CompiledModel, inputs: PredictInputs) -> np.ndarray:
    """Predict for validated inputs; the result is a float64 array, one value per row.

    Raises
    ------
    InvalidInput
        If a prediction overflows to a non-finite value.
    """
    predictions = model.predict_matrix(inputs.numeric, inputs.categorical, complete=inputs.complete)
    if np.isfinite(predictions).all():
        return predictions
    overflow = np.flatnonzero(~np.isfinite(predictions))
    raise InvalidInput(
        f"the prediction of {overflow.size} row(s) is not a finite number (inputs too large)",
        errors=[
            field_error(f"/rows/{i}", f"row {i}: prediction overflows")
            for i in overflow[:MAX_REPORTED_ERRORS].tolist()
        ],
    )
