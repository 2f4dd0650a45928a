"""Fit a classification job: labels, stratified split, LogisticRegression, metrics.

:func:`fit_classifier` equals, on the same rows,

.. code-block:: python

    train, test = train_test_split(np.arange(n_rows), test_size=..., shuffle=...,
                                   random_state=..., stratify=y if stratify else None)
    pipeline = make_pipeline(<preprocessing of service.ml.preprocessing>, LogisticRegression(...))
    pipeline.fit(X[train], y[train])

(the estimator of :mod:`service.ml.estimators.logistic`). Labels may be text, integers or
booleans; they come back as given (``classes`` keeps their JSON type).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split

from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.estimators.logistic import (
    CLASSIFICATION_KINDS,
    classification_kind_for_lambdas,
    logistic_family,
)
from service.ml.metrics import finite_or_none
from service.ml.penalties import penalty_notations
from service.ml.portable_classifier import make_classifier_document
from service.ml.preprocessing import Columns, DesignTransformer, FeatureLayout, select_features
from service.ml.spec import JobSpec, PenaltySpec, SplitSpec

Label = str | int | float | bool


def target_labels(columns: Columns, target: str, *, max_classes: int) -> np.ndarray:
    """The target column as an array of class labels (missing values refused).

    Raises
    ------
    FitError
        If the target is unknown, has missing values, fewer than two classes, or more than
        ``max_classes`` (REGFIT_MAX_CLASSES).
    """
    if target not in columns:
        raise FitError(f"unknown target column {target!r}; the dataset has {list(columns)[:50]}")
    values = np.asarray(columns[target])
    if values.dtype.kind in "fc":
        missing = np.isnan(values)
    elif values.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in values])
    else:
        missing = np.zeros(len(values), dtype=bool)
    if missing.any():
        raise FitError(
            f"the target column {target!r} has {int(missing.sum())} missing value(s); rows "
            f"with a missing label are not dropped silently"
        )
    if values.dtype.kind == "f" and np.all(values == np.round(values)):
        values = values.astype(np.int64)  # integer labels stored as float64 come back as ints
    if values.dtype.kind == "O":
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise FitError(
                f"the target column {target!r} mixes label types {sorted(map(str, kinds))}"
            )
    classes = np.unique(values)
    if len(classes) < 2:
        raise FitError(f"the target column {target!r} has one class only: nothing to classify")
    if len(classes) > max_classes:
        raise FitError(
            f"the target column {target!r} has {len(classes)} distinct values, more than "
            f"{max_classes} classes (REGFIT_MAX_CLASSES): is it a regression target?"
        )
    return values


def split_labels(y: np.ndarray, split: SplitSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices as ``train_test_split(..., stratify=y)`` draws them."""
    rows = np.arange(len(y))
    if split.test_size == 0:
        return rows, rows[:0]
    try:
        train, test = train_test_split(
            rows,
            test_size=split.test_size,
            shuffle=split.shuffle,
            random_state=split.random_state,
            stratify=y if split.stratify else None,
        )
    except ValueError as exc:
        raise FitError(
            f"cannot split {len(y)} rows with test_size={split.test_size}"
            f"{' stratified by the target' if split.stratify else ''}: {exc}"
        ) from exc
    return np.asarray(train), np.asarray(test)


def resolve_classifier(spec: PenaltySpec, n_train: int) -> Penalty:
    """The LogisticRegression penalty of a classification job's penalty spec."""
    if n_train < 1:
        raise FitError("there are no training rows to fit the penalty on")
    common: dict[str, Any] = {
        "fit_intercept": spec.fit_intercept,
        "max_iter": spec.max_iter,
        "tol": spec.tol,
        "class_weight": spec.class_weight,
    }
    if spec.uses_lambda_form:
        lambda1, lambda2 = spec.lambda1 or 0.0, spec.lambda2 or 0.0
        family = logistic_family(classification_kind_for_lambdas(lambda1, lambda2))
        C, l1_ratio = family.from_lambdas(lambda1, lambda2, n_train)
        return family.logistic_penalty(C, l1_ratio, lambdas=(lambda1, lambda2), **common)
    if spec.type is None:
        raise FitError("penalty.type is required: l1, l2 or elasticnet")
    family = logistic_family(CLASSIFICATION_KINDS[spec.type])
    return family.logistic_penalty(1.0 if spec.C is None else spec.C, spec.l1_ratio, **common)


def _plain(label: Any) -> Label:
    """A label as the JSON value it was given as."""
    return label.item() if isinstance(label, np.generic) else label


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, Any]:
    """scikit-learn's metrics of probabilities ``proba`` (a column per class of ``classes``).

    ``roc_auc`` is the binary ROC AUC, or the one-vs-rest macro average for three or more
    classes (None when a class is absent from ``y_true``); ``f1`` is binary (of the second
    class) or macro.
    """
    predicted = classes[np.argmax(proba, axis=1)]
    binary = len(classes) == 2
    present = np.isin(classes, y_true)
    auc: float | None = None
    if present.all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if binary:
                auc = float(roc_auc_score(y_true == classes[1], proba[:, 1]))
            else:
                auc = float(
                    roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
                )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision/recall are 0, as scikit-learn's
        precision = precision_score(
            y_true, predicted, labels=classes, average=None, zero_division=0
        )
        recall = recall_score(y_true, predicted, labels=classes, average=None, zero_division=0)
        f1 = (
            f1_score(y_true, predicted, pos_label=classes[1], zero_division=0)
            if binary
            else f1_score(y_true, predicted, labels=classes, average="macro", zero_division=0)
        )
        balanced = balanced_accuracy_score(y_true, predicted)
    counts = [int(np.sum(y_true == c)) for c in classes]
    return {
        "accuracy": finite_or_none(accuracy_score(y_true, predicted)),
        "balanced_accuracy": finite_or_none(balanced),
        "log_loss": finite_or_none(log_loss(y_true, proba, labels=classes)),
        "roc_auc": None if auc is None else finite_or_none(auc),
        "f1": finite_or_none(f1),
        "precision": {str(_plain(c)): float(p) for c, p in zip(classes, precision, strict=True)},
        "recall": {str(_plain(c)): float(r) for c, r in zip(classes, recall, strict=True)},
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=classes).tolist(),
        "class_counts": {str(_plain(c)): n for c, n in zip(classes, counts, strict=True)},
    }


@dataclass
class ClassifierFit:
    """A fitted classification job.

    ``coef`` has one row per coefficient set (one for a binary target, one per class
    otherwise) and one column per design column; ``intercepts`` one entry per row.
    """

    document: dict[str, Any]
    layout: FeatureLayout
    design: DesignTransformer
    feature_names_out: list[str]
    classes: list[Label]
    penalty: Penalty
    notations: dict[str, Any]
    coef: np.ndarray
    intercepts: np.ndarray
    train_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    n_train: int
    n_test: int
    warnings: list[str]
    estimator: Any
    X_train: np.ndarray | None = None
    fit_seconds: float = 0.0


def fit_classifier(
    columns: Columns,
    spec: JobSpec,
    *,
    max_classes: int,
    training_sha256: str = "",
    stored_dtypes: Mapping[str, str] | None = None,
) -> ClassifierFit:
    """Fit a ``task: "classification"`` job's penalty on its (stratified) training split.

    Raises
    ------
    FitError
        For a target that is not a set of labels, a split stratification cannot draw, or
        data the preprocessing refuses.
    """
    data = classification_data(columns, spec, max_classes=max_classes, stored_dtypes=stored_dtypes)
    penalty = resolve_classifier(spec.penalty, len(data.train))
    return fit_on_split(columns, data, penalty, spec, training_sha256=training_sha256)


@dataclass(frozen=True)
class ClassificationData:
    """A classification job's labels, feature layout and (stratified) split."""

    y: np.ndarray
    layout: FeatureLayout
    train: np.ndarray
    test: np.ndarray


def classification_data(
    columns: Columns,
    spec: JobSpec,
    *,
    max_classes: int,
    stored_dtypes: Mapping[str, str] | None = None,
) -> ClassificationData:
    """The job's labels, layout and split (see :func:`target_labels`, :func:`split_labels`)."""
    if spec.task != "classification":
        raise FitError(f"fit_classifier fits classification jobs, not {spec.task!r}")
    y = target_labels(columns, spec.target, max_classes=max_classes)
    if (stored_dtypes or {}).get(spec.target) == "bool":
        y = y.astype(bool)  # a bool column arrives as 0/1; its labels come back as booleans
    layout = select_features(
        columns, target=spec.target, features=spec.features, prep=spec.preprocessing
    )
    if stored_dtypes:
        layout = _with_stored_dtypes(layout, stored_dtypes)
    train, test = split_labels(y, spec.split)
    return ClassificationData(y, layout, train, test)


def fit_on_split(
    columns: Columns,
    data: ClassificationData,
    penalty: Penalty,
    spec: JobSpec,
    *,
    training_sha256: str = "",
) -> ClassifierFit:
    """Fit ``penalty`` on the training rows of ``data``; metrics on both splits, the document."""
    started = time.perf_counter()
    y, layout, train, test = data.y, data.layout, data.train, data.test
    design = DesignTransformer(layout, spec.preprocessing)
    X_train = design.fit_transform(columns, train, order="C")
    X_test = design.transform(columns, test) if len(test) else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # convergence warnings are results to report
        estimator = penalty.estimator().fit(X_train, y[train])
    fit_seconds = time.perf_counter() - started
    classes = np.asarray(estimator.classes_)
    train_metrics = classification_metrics(y[train], estimator.predict_proba(X_train), classes)
    test_metrics = None
    if X_test is not None:
        test_metrics = classification_metrics(y[test], estimator.predict_proba(X_test), classes)
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercepts = np.asarray(estimator.intercept_, dtype=np.float64)
    if not (np.isfinite(coef).all() and np.isfinite(intercepts).all()):
        raise FitError("the fit produced non-finite coefficients; try a smaller C or scaling")
    labels = [_plain(c) for c in classes]
    notations = {**penalty_notations(penalty, len(train)), **_classifier_echo(penalty)}
    kinds = {name: "numeric" for name in layout.numeric}
    kinds.update({name: "categorical" for name in layout.categorical})
    document = make_classifier_document(
        classes=labels,
        coef=coef,
        intercepts=intercepts,
        target=layout.target,
        features=[
            {"name": name, "kind": kinds[name], "dtype": layout.dtypes[name]}
            for name in layout.features
        ],
        numeric=design.numeric_parameters(),
        categorical=design.categorical_parameters(),
        feature_names_out=design.feature_names_out_,
        penalty=notations,
        training_data_sha256=training_sha256,
    )
    messages: list[str] = []
    for record in caught:
        text = f"{record.category.__name__}: {record.message}"
        if text not in messages:
            messages.append(text)
    return ClassifierFit(
        document=document,
        layout=layout,
        design=design,
        feature_names_out=list(design.feature_names_out_),
        classes=labels,
        penalty=penalty,
        notations=notations,
        coef=coef,
        intercepts=intercepts,
        train_metrics=train_metrics,
        test_metrics=test_metrics,
        n_train=len(train),
        n_test=len(test),
        warnings=messages,
        estimator=estimator,
        X_train=X_train,
        fit_seconds=fit_seconds,
    )


def _classifier_echo(penalty: Penalty) -> dict[str, Any]:
    """The classifier's own arguments in the penalty echo (``alpha`` is not one of them)."""
    family = logistic_family(penalty.kind)
    return {
        "type": family.penalty_type,
        "alpha": None,
        "C": penalty.C,
        "class_weight": penalty.class_weight,
        "solver": family.solver,
    }


def _with_stored_dtypes(layout: FeatureLayout, stored: Mapping[str, str]) -> FeatureLayout:
    return replace(
        layout,
        dtypes={
            name: stored.get(name, dtype) if dtype != "string" else dtype
            for name, dtype in layout.dtypes.items()
        },
    )
