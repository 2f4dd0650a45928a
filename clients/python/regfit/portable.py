"""Offline predictions from a portable model document (``regfit.linear.v1``, or a
classifier's ``regfit.logistic.v1``), numpy only.

``regfit.portable.load(doc).predict(rows)`` predicts without a server, to the bit as the
service does: :class:`CompiledModel` below is the server's (``service/ml/portable.py``)
verbatim, and a test (tests/client/test_portable_load.py) asserts the two class sources are
identical, so there is one predictor. Needs the ``numpy`` extra (``pip install regfit[numpy]``);
a pandas DataFrame is taken too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from os import PathLike
from typing import Any

import numpy as np

FORMAT = "regfit.linear.v1"
CLASSIFIER_FORMAT = "regfit.logistic.v1"


class InvalidModelInput(ValueError):
    """Inputs the model cannot take (wrong width, a missing value without an imputer, …)."""


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
            infrequent = [
                bool(f) for f in categorical.get("infrequent") or [False] * len(categories)
            ]
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
        if len(categories) != len(self.categorical_names) or len(infrequent) != len(categories):
            raise ValueError("one category list is needed per categorical feature")
        if coef.shape != (n_numeric + sum(map(len, categories)) + sum(infrequent),):
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
        # Each categorical feature contributes the coefficient of its one-hot column; any
        # other value that of its infrequent column, or nothing when it has none.
        self.category_coef: list[dict[str | None, float]] = []
        self.other_coef: list[float] = []
        offset = n_numeric
        for cats, grouped in zip(categories, infrequent, strict=True):
            self.category_coef.append(
                {
                    cat: float(c)
                    for cat, c in zip(cats, coef[offset : offset + len(cats)], strict=True)
                }
            )
            offset += len(cats)
            self.other_coef.append(float(coef[offset]) if grouped else 0.0)
            offset += grouped
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
            raise InvalidModelInput(
                f"the numeric block must have shape (n_rows, {len(self.numeric_names)})"
            )
        missing = None if complete else np.isnan(X)
        if missing is not None and missing.any():
            if self.impute_values is None:
                raise InvalidModelInput("missing numeric values, and the model has no imputer")
            X = np.where(missing, self.impute_values, X)
        if self.means is not None and self.scales is not None:
            X = (X - self.means) / self.scales
        predictions = X @ self.numeric_coef
        X_cat = X_cat or []
        if len(X_cat) != len(self.category_coef):
            raise InvalidModelInput(f"expected {len(self.category_coef)} categorical column(s)")
        n_rows = X.shape[0]
        for values, coef_of, other in zip(X_cat, self.category_coef, self.other_coef, strict=True):
            if len(values) != n_rows:
                raise InvalidModelInput("every categorical column needs one value per row")
            predictions += np.fromiter(map(coef_of.get, values, repeat(other)), np.float64, n_rows)
        return predictions + self.intercept


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class PortableModel:
    """A loaded portable model: ``predict`` rows, records or a DataFrame, offline."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.document = dict(doc)
        self.compiled = CompiledModel(self.document)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.compiled.feature_names

    @property
    def target(self) -> str:
        return self.compiled.target

    def predict(self, data: Any) -> Any:
        """Predictions (float64, one per row) for a pandas DataFrame (columns by name), a
        list of records (dicts by feature name) or a list of rows (in ``feature_names``
        order). A missing value is None or NaN."""
        return self.compiled.predict_matrix(*self._inputs(data))

    def _inputs(self, data: Any) -> tuple[np.ndarray, list[list[str | None]]]:
        """The numeric block and the categorical columns of ``data`` (see :meth:`predict`)."""
        names = self.compiled.feature_names
        if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a pandas DataFrame
            missing = [name for name in names if name not in data.columns]
            if missing:
                raise InvalidModelInput(f"missing column(s): {missing}")
            columns = {name: data[name].tolist() for name in names}
        else:
            rows = list(data)
            if rows and isinstance(rows[0], Mapping):
                columns = {name: [row.get(name) for row in rows] for name in names}
            else:
                for i, row in enumerate(rows):
                    if len(row) != len(names):
                        raise InvalidModelInput(
                            f"row {i} has {len(row)} values; expected {len(names)} ({names})"
                        )
                columns = {name: [row[j] for row in rows] for j, name in enumerate(names)}
        n_rows = len(next(iter(columns.values()), []))
        numeric = np.empty((n_rows, len(self.compiled.numeric_names)), dtype=np.float64)
        for j, name in enumerate(self.compiled.numeric_names):
            numeric[:, j] = [math.nan if _is_missing(v) else float(v) for v in columns[name]]
        categorical = [
            [None if _is_missing(v) else str(v) for v in columns[name]]
            for name in self.compiled.categorical_names
        ]
        return numeric, categorical


class PortableClassifier(PortableModel):
    """A loaded portable classifier (``regfit.logistic.v1``): labels and probabilities offline.

    Row ``k`` of the document's ``coef`` with ``intercept[k]`` is the logit ``z_k`` (the
    preprocessing of ``regfit.linear.v1``); two classes: ``[1 − σ(z), σ(z)]``, more:
    ``softmax(z)`` — scikit-learn's ``predict_proba``. Labels keep their JSON type.
    """

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.document = dict(doc)
        if self.document.get("format") != CLASSIFIER_FORMAT:
            raise ValueError(f"not a {CLASSIFIER_FORMAT} model document")
        self.classes: list[Any] = list(self.document["classes"])
        self.logits = [
            CompiledModel({**self.document, "format": FORMAT, "coef": row, "intercept": b})
            for row, b in zip(self.document["coef"], self.document["intercept"], strict=True)
        ]
        self.compiled = self.logits[0]

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_rows, n_classes)``, columns in ``classes`` order."""
        numeric, categorical = self._inputs(data)
        z = np.column_stack([m.predict_matrix(numeric, categorical) for m in self.logits])
        if len(self.classes) == 2:
            positive = np.empty_like(z[:, 0])
            above = z[:, 0] >= 0
            positive[above] = 1.0 / (1.0 + np.exp(-z[above, 0]))
            e = np.exp(z[~above, 0])
            positive[~above] = e / (1.0 + e)
            return np.column_stack([1.0 - positive, positive])
        z = z - z.max(axis=1, keepdims=True)
        exp = np.exp(z)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, data: Any) -> list[Any]:
        """The most probable class of each row, as the label was given."""
        return [self.classes[i] for i in np.argmax(self.predict_proba(data), axis=1).tolist()]


def load(source: Mapping[str, Any] | str | bytes | PathLike[str]) -> PortableModel:
    """Load a portable model: the exported document (a dict), its JSON text, or a path to it.

    A classifier's document (``regfit.logistic.v1``) loads as a :class:`PortableClassifier`.
    """
    if isinstance(source, Mapping):
        doc = dict(source)
    elif isinstance(source, bytes) or (isinstance(source, str) and source.lstrip().startswith("{")):
        doc = json.loads(source)
    else:
        with open(source, encoding="utf-8") as handle:
            doc = json.load(handle)
    if isinstance(doc, dict) and doc.get("format") == CLASSIFIER_FORMAT:
        return PortableClassifier(doc)
    return PortableModel(doc)


__all__ = ["CompiledModel", "InvalidModelInput", "PortableClassifier", "PortableModel", "load"]
