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
a null category is the "missing" category. ``categorical.infrequent`` (present when some
feature has one) flags the features whose rare values share a last one-hot column,
``"<column>=<infrequent>"``, after their ``categories``. A prediction is computed as
scikit-learn's pipeline does: impute NaN, ``(x - mean)/scale``, the one-hot block (a value
not among a feature's ``categories`` goes to its infrequent column, as
``OneHotEncoder(handle_unknown="infrequent_if_exist")``, and without one is all zeros, as
``handle_unknown="ignore"``), then ``X @ coef + intercept``.

Parsing a request's rows, records or CSV table into :class:`PredictInputs` is the API's
part (:mod:`service.models.predict_input`). This module imports only numpy and the
standard library (a test checks it): it is the prediction hot path, and a model can be
served by anything that can read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from service.ml.errors import InvalidModelInput

FORMAT = "regfit.linear.v1"
# An error lists at most this many bad rows or cells (and counts them all).
MAX_REPORTED_ERRORS = 20


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
            **(
                {"infrequent": [bool(flag) for flag in categorical["infrequent"]]}
                if categorical.get("infrequent") is not None
                else {}
            ),
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


def compile_model(doc: dict[str, Any]) -> CompiledModel:
    """Compile a portable document for prediction (do it once per model and keep it)."""
    return CompiledModel(doc)


def predict(model: CompiledModel, inputs: PredictInputs) -> np.ndarray:
    """Predict for validated inputs; the result is a float64 array, one value per row.

    Raises
    ------
    InvalidModelInput
        If a prediction overflows to a non-finite value.
    """
    predictions = model.predict_matrix(inputs.numeric, inputs.categorical, complete=inputs.complete)
    if np.isfinite(predictions).all():
        return predictions
    overflow = np.flatnonzero(~np.isfinite(predictions))
    raise InvalidModelInput(
        f"the prediction of {overflow.size} row(s) is not a finite number (inputs too large)",
        errors=[
            {"loc": f"/rows/{i}", "msg": f"row {i}: prediction overflows"}
            for i in overflow[:MAX_REPORTED_ERRORS].tolist()
        ],
    )
