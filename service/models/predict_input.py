"""Prediction input: a request's rows, records or CSV table, validated into model inputs.

A feature of ``dtype: "bool"`` takes JSON booleans (and numbers) and, in CSV, ``true``/``false``
in any of pyarrow's spellings or ``1``/``0``, as the dataset upload reads them.

Input validation: a wrong row width, a missing column, a non-number (strings, and
booleans for any dtype but ``bool``, included) or a non-finite number for a numeric
feature, a non-string for a categorical one, or a null for a numeric feature of a model
without an imputer is an :class:`~service.errors.InvalidInput` listing every bad cell (up to
:data:`~service.ml.portable.MAX_REPORTED_ERRORS`) with a JSON pointer (``/rows/3/2``,
``/records/0/x5``). Keys of a record that are not features are ignored, so records may
carry ids or the target along. The result is a :class:`~service.ml.portable.PredictInputs`
for :func:`service.ml.portable.predict`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from service.errors import InvalidInput, field_error
from service.ml import portable
from service.ml.errors import InvalidModelInput
from service.ml.portable import MAX_REPORTED_ERRORS, CompiledModel, PredictInputs
from service.ml.portable_classifier import CompiledClassifier

_NUMBER_TYPES = frozenset({float, int})
_NUMBER_OR_BOOL_TYPES = frozenset({float, int, bool})
_TEXT_TYPES = frozenset({str, type(None)})
# A bool feature's CSV spellings: those a dataset upload reads as booleans (pyarrow's).
_BOOL_WORDS = {"true": "1", "True": "1", "TRUE": "1", "false": "0", "False": "0", "FALSE": "0"}


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


def predict(model: CompiledModel, inputs: PredictInputs) -> np.ndarray | list[Any]:
    """The model's predictions for validated inputs: a regressor's values, a classifier's
    labels (as uploaded); inputs the model cannot take are a 422.

    The one place a served model's task chooses its answer (with :func:`probabilities`).
    """
    try:
        if isinstance(model, CompiledClassifier):
            return model.predict_labels(inputs)
        return portable.predict(model, inputs)
    except InvalidModelInput as exc:
        raise InvalidInput(exc.detail, errors=exc.errors) from exc


def probabilities(
    model: CompiledModel, inputs: PredictInputs, *, loc: str = "/output"
) -> tuple[list[Any], np.ndarray]:
    """A classifier's ``(classes, probabilities)`` (one column per class); a 422 naming
    ``loc`` for a regressor, which has no probabilities."""
    model = require_classifier(model, loc=loc)
    try:
        return model.classes, model.predict_proba(inputs)
    except InvalidModelInput as exc:
        raise InvalidInput(exc.detail, errors=exc.errors) from exc


def require_classifier(model: CompiledModel, *, loc: str) -> CompiledClassifier:
    """``model`` when it is a classifier; else a 422 naming ``loc`` (a regressor has no
    class probabilities)."""
    if not isinstance(model, CompiledClassifier):
        raise InvalidInput(
            "output 'proba' is for classifiers; this model is a regressor (its predictions "
            "are values)",
            errors=[field_error(loc, "the model is a regressor: no class probabilities")],
        )
    return model


def is_classifier(model: CompiledModel) -> bool:
    """Whether a served model answers with class labels."""
    return isinstance(model, CompiledClassifier)
