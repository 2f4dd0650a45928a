"""The portable classifier: one JSON document, and probabilities from it with numpy alone.

The document (``format: "regfit.logistic.v1"``) is a ``regfit.linear.v1`` document
(:mod:`service.ml.portable`: the same ``features``, ``numeric``, ``categorical``,
``feature_names_out``, ``penalty``, ``training_data_sha256``) whose ``coef`` is a matrix
and whose ``intercept`` a list, with the class labels::

    {
      "format": "regfit.logistic.v1",
      "task": "classification",
      "classes": ["benign", "malignant"],
      "coef": [[...]],        # one row for two classes, one row per class for more
      "intercept": [0.3],
      ...
    }

Row ``k`` of ``coef`` with ``intercept[k]`` is a linear model of the design (the
preprocessing of :mod:`service.ml.portable`); its value is the logit ``z_k``. As
``LogisticRegression.predict_proba``: two classes → ``[1 − σ(z), σ(z)]`` (the second
class is the positive one), three or more → ``softmax(z)``. A label is the class of the
highest probability (the first on a tie, as ``argmax``). Labels keep their JSON type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.ml import portable

FORMAT = "regfit.logistic.v1"


def make_classifier_document(
    *,
    classes: Sequence[Any],
    coef: np.ndarray,
    intercepts: np.ndarray,
    **linear: Any,
) -> dict[str, Any]:
    """Assemble a classifier document; ``linear``: :func:`service.ml.portable.make_document`'s
    other arguments (target, features, numeric, categorical, feature_names_out, penalty,
    training_data_sha256)."""
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercepts = np.ravel(np.asarray(intercepts, dtype=np.float64))
    base = portable.make_document(coef=coef[0], intercept=float(intercepts[0]), **linear)
    doc = {
        **base,
        "format": FORMAT,
        "task": "classification",
        "classes": list(classes),
        "coef": coef.tolist(),
        "intercept": intercepts.tolist(),
    }
    compile_classifier(doc)  # a document that cannot be compiled is never handed out
    return doc


class CompiledClassifier(portable.CompiledModel):
    """A classifier document compiled once: one linear model per logit.

    It is a :class:`~service.ml.portable.CompiledModel` for what a request is checked
    against (features, dtypes, imputation, categories: the same for every logit), so the
    request parsers serve both; its answers are :meth:`predict_proba` and
    :meth:`predict_labels` (``predict_matrix``, one value per row, is refused).

    Raises
    ------
    ValueError
        If the document is not a consistent ``regfit.logistic.v1`` model.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document: format {doc.get('format')!r}")
        classes = doc.get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise ValueError("classes must list at least two labels")
        coef, intercepts = doc.get("coef"), doc.get("intercept")
        if not isinstance(coef, list) or not isinstance(intercepts, list):
            raise ValueError("coef must be a matrix and intercept a list")
        n_rows = 1 if len(classes) == 2 else len(classes)
        if len(coef) != n_rows or len(intercepts) != n_rows:
            raise ValueError(
                f"{len(classes)} classes need {n_rows} coefficient row(s) and intercept(s)"
            )
        super().__init__(
            {**doc, "format": portable.FORMAT, "coef": coef[0], "intercept": intercepts[0]}
        )
        self.classes: list[Any] = list(classes)
        self.logits = [
            portable.compile_model(
                {**doc, "format": portable.FORMAT, "coef": row, "intercept": intercept}
            )
            for row, intercept in zip(coef, intercepts, strict=True)
        ]

    def predict_matrix(
        self,
        X_num: np.ndarray,
        X_cat: Sequence[Sequence[str | None]] | None = None,
        *,
        complete: bool = False,
    ) -> np.ndarray:
        raise TypeError("a classifier answers predict_labels or predict_proba, not one value")

    def decision_function(self, inputs: portable.PredictInputs) -> np.ndarray:
        """The logits, shape ``(n_rows, n_logits)`` (one column for two classes)."""
        return np.column_stack([portable.predict(model, inputs) for model in self.logits])

    def predict_proba(self, inputs: portable.PredictInputs) -> np.ndarray:
        """Class probabilities, shape ``(n_rows, n_classes)``, columns in ``classes`` order."""
        z = self.decision_function(inputs)
        if len(self.classes) == 2:
            positive = _sigmoid(z[:, 0])
            return np.column_stack([1.0 - positive, positive])
        z = z - z.max(axis=1, keepdims=True)
        exp = np.exp(z)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict_labels(self, inputs: portable.PredictInputs) -> list[Any]:
        """The most probable class of each row, as the label was given."""
        proba = self.predict_proba(inputs)
        return [self.classes[i] for i in np.argmax(proba, axis=1).tolist()]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """``1/(1 + e^−z)`` without overflow for large ``|z|`` (as scipy's ``expit``)."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def compile_classifier(doc: dict[str, Any]) -> CompiledClassifier:
    """Compile a classifier document (do it once per model and keep it)."""
    return CompiledClassifier(doc)


def is_classifier(doc: dict[str, Any]) -> bool:
    """Whether a portable document is a classifier's."""
    return doc.get("format") == FORMAT


def compile_document(doc: dict[str, Any]) -> portable.CompiledModel:
    """Compile any stored portable document: a classifier's or a regressor's."""
    return compile_classifier(doc) if is_classifier(doc) else portable.compile_model(doc)
