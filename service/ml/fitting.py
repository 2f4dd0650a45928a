"""Fit a training job: split, preprocess, fit the penalized estimator, score, export.

:func:`fit_job` is what a worker runs for a job. The result equals, on the same rows,

.. code-block:: python

    train, test = train_test_split(np.arange(n_rows), test_size=..., shuffle=...,
                                   random_state=...)
    pipeline = make_pipeline(<preprocessing of service.ml.preprocessing>, penalty.estimator())
    pipeline.fit(X[train], y[train])

with the coefficients, intercept and metrics of that pipeline, and the model as a
portable document (:mod:`service.ml.portable`). The result is a :class:`FitResult`; the
model's API body is made of it by :mod:`service.models.documents`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Literal

import numpy as np

from service.ml import estimators
from service.ml.classification_job import (
    ClassifierJobResult,
    count_classifier_candidates,
    fit_classification_job,
)
from service.ml.errors import FitCancelled, FitError
from service.ml.fitted import (
    FitResult,
    comparison_nonzero,
    original_units,
    plot_sample,
    portable_document,
    regularization_path,
    unregularized_coefficients,
)
from service.ml.metrics import regression_metrics
from service.ml.penalties import penalty_notations, resolve_penalty
from service.ml.preprocessing import (
    Columns,
    DesignTransformer,
    FeatureLayout,
    select_features,
    target_values,
)
from service.ml.search.candidates import count_candidates, searched_kinds
from service.ml.search.results import SearchResult
from service.ml.search.strategies import run_search
from service.ml.spec import JobSpec
from service.ml.split import split_rows

Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]


def _no_progress(done: int, total: int, message: str) -> None:
    return None


def _never() -> bool:
    return False


def _search_and_prepare(
    columns: Columns,
    layout: FeatureLayout,
    design: DesignTransformer,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    spec: JobSpec,
    progress: Progress,
    should_stop: StopCheck,
    n_jobs: int | None,
) -> tuple[SearchResult, tuple[np.ndarray, np.ndarray | None, float]]:
    """Run the search of ``spec.tuning``, and meanwhile prepare the refit's designs.

    The refit's preprocessing does not depend on the search's answer: it runs on a thread
    of its own, beside the search's. The training
    rows are gathered once for both (each gets its own copy: both work on theirs in place).
    """
    assert spec.tuning is not None
    train_numeric, test_numeric = design.numeric_blocks(columns, [train, test])
    search_numeric = train_numeric.copy()
    # The thread keeps the job's CPU priority: at nice 19 (below the search's threads) it
    # lost the cores to every other process of a shared machine, and the refit waited for
    # it (benchmarks/README.md, "The refit's preprocessing thread").
    with ThreadPoolExecutor(1, thread_name_prefix="regfit-prep") as pool:
        kinds = searched_kinds(spec.tuning, spec.penalty.type)
        prepared = pool.submit(
            _prepare, design, columns, train, test, (train_numeric, test_numeric), kinds
        )
        tuned = _tune(
            columns,
            layout,
            y,
            train,
            spec,
            progress,
            should_stop,
            train_numeric=search_numeric,
            n_jobs=n_jobs,
        )
    return tuned, prepared.result()


def _tune(
    columns: Columns,
    layout: FeatureLayout,
    y: np.ndarray,
    train: np.ndarray,
    spec: JobSpec,
    progress: Progress,
    should_stop: StopCheck,
    *,
    train_numeric: np.ndarray,
    n_jobs: int | None,
) -> SearchResult:
    """Run the cross-validated search of ``spec.tuning`` on the training rows."""
    assert spec.tuning is not None

    def search_progress(done: int, total: int, message: str) -> None:
        progress(done, total + 1, message)  # + 1: the final refit on the training split

    return run_search(
        columns,
        layout,
        spec.preprocessing,
        y,
        train,
        spec.tuning,
        spec.penalty,
        progress=search_progress,
        should_stop=should_stop,
        train_numeric=train_numeric,
        n_jobs=n_jobs,
    )


def _prepare(
    design: DesignTransformer,
    columns: Columns,
    train: np.ndarray,
    test: np.ndarray,
    numeric: tuple[np.ndarray, np.ndarray] | None,
    kinds: Iterable[str],
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Fit the preprocessing on the training rows; the training and test designs, seconds.

    ``numeric``: the training and test rows' numeric blocks when the caller gathered them
    (they may be transformed in place). ``kinds``: the estimator families the training
    design may be fitted with; it is made in the order their solvers want (C if any wants
    it: the order scikit-learn's own pipeline hands over).
    """
    started = time.perf_counter()
    if numeric is None:
        train_numeric, test_numeric = design.numeric_blocks(columns, [train, test])
    else:
        train_numeric, test_numeric = numeric
    orders = {estimators.get(kind).design_order for kind in kinds}
    order: Literal["C", "F"] = "C" if "C" in orders else "F"
    X_train = design.fit_transform(columns, train, numeric=train_numeric, order=order)
    X_test = design.transform(columns, test, numeric=test_numeric) if len(test) else None
    return X_train, X_test, time.perf_counter() - started


def planned_candidates(spec: JobSpec) -> int:
    """The candidates a job's search scores (each on every fold), for either task."""
    assert spec.tuning is not None
    if spec.task == "classification":
        return count_classifier_candidates(spec.tuning)
    return count_candidates(spec.tuning, spec.penalty)


def fit_model(
    columns: Columns,
    spec: JobSpec,
    *,
    training_sha256: str,
    max_classes: int,
    stored_dtypes: Mapping[str, str] | None = None,
    progress: Progress = _no_progress,
    should_stop: StopCheck = _never,
    n_jobs: int | None = None,
) -> FitResult | ClassifierJobResult:
    """Fit a job of either task: the one place a job's ``task`` chooses what is fitted.

    ``task: "classification"`` is :func:`service.ml.classification_job.fit_classification_job`
    (at most ``max_classes`` labels); a regression is :func:`fit_job`. The other arguments
    are :func:`fit_job`'s.
    """
    if spec.task == "classification":
        return fit_classification_job(
            columns,
            spec,
            max_classes=max_classes,
            training_sha256=training_sha256,
            stored_dtypes=stored_dtypes,
            progress=progress,
            should_stop=should_stop,
        )
    return fit_job(
        columns,
        spec,
        training_sha256=training_sha256,
        stored_dtypes=stored_dtypes,
        progress=progress,
        should_stop=should_stop,
        n_jobs=n_jobs,
    )


def fit_job(
    columns: Columns,
    spec: JobSpec,
    *,
    training_sha256: str,
    stored_dtypes: Mapping[str, str] | None = None,
    progress: Progress = _no_progress,
    should_stop: StopCheck = _never,
    n_jobs: int | None = None,
) -> FitResult:
    """Fit the job's penalized linear model on its training split.

    Parameters
    ----------
    columns : mapping of str to ndarray
        The dataset's columns, rows in upload order (see :mod:`service.ml.preprocessing`).
    spec : JobSpec
        The validated job.
    training_sha256 : str
        The dataset's digest, recorded in the portable model.
    stored_dtypes : mapping of str to str, optional
        The dtype each column was uploaded with (``bool``, ``int64``, …), recorded in the
        portable model in place of the arrays' own: columns arrive as float64, and a model
        must accept the values its columns were uploaded with (``true`` for a bool column).
    progress : callable, optional
        Called as ``progress(done, total, message)``.
    should_stop : callable, optional
        Polled between steps; when it returns True the fit raises :class:`FitCancelled`.
    n_jobs : int, optional
        Threads a search runs its folds on (at most the folds); default: the cores.

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        For data the job cannot use (see :mod:`service.ml.preprocessing`) or a bad split.
    FitCancelled
        When ``should_stop()`` turns true.
    """
    if spec.task != "regression":
        raise FitError(
            f"fit_job fits regression jobs; task {spec.task!r} is fitted by "
            f"service.ml.classification.fit_classifier"
        )
    layout = select_features(
        columns, target=spec.target, features=spec.features, prep=spec.preprocessing
    )
    if stored_dtypes:
        layout = replace(
            layout,
            dtypes={
                name: stored_dtypes.get(name, dtype) if dtype != "string" else dtype
                for name, dtype in layout.dtypes.items()
            },
        )
    y = target_values(columns, spec.target)
    train, test = split_rows(len(y), spec.split)
    design = DesignTransformer(layout, spec.preprocessing)
    tuned: SearchResult | None = None
    fits_done, fits_total, message = 0, 1, "fitting"
    with warnings.catch_warnings(record=True) as caught:
        # Convergence and similar warnings are results to report, not failures.
        warnings.simplefilter("always")
        if spec.tuning is not None:
            tuned, (X_train, X_test, prep_seconds) = _search_and_prepare(
                columns, layout, design, y, train, test, spec, progress, should_stop, n_jobs
            )
            penalty = tuned.penalty
            fits_done, fits_total = tuned.fits_done, tuned.fits_total + 1
            message = "refitting the selected candidate on the training split"
        else:
            penalty = resolve_penalty(spec.penalty, len(train))
            X_train, X_test, prep_seconds = _prepare(
                design, columns, train, test, None, [penalty.kind]
            )
        if should_stop():
            raise FitCancelled("the job was asked to stop")

        progress(fits_done, fits_total, message)
        estimator = penalty.estimator()
        started = time.perf_counter()
        estimator.fit(X_train, y[train])
        fit_seconds = prep_seconds + time.perf_counter() - started
    if should_stop():
        raise FitCancelled("the job was asked to stop")

    train_metrics = regression_metrics(y[train], estimator.predict(X_train))
    test_metrics = None
    test_actual = test_predicted = None
    if X_test is not None:
        test_predictions = estimator.predict(X_test)
        test_metrics = regression_metrics(y[test], test_predictions)
        test_actual, test_predicted = plot_sample(
            np.asarray(y[test], dtype=np.float64), np.asarray(test_predictions, dtype=np.float64)
        )

    coef = np.asarray(estimator.coef_, dtype=np.float64).ravel()
    intercept = float(np.ravel(estimator.intercept_)[0])  # 0.0 when fit_intercept is False
    notations = penalty_notations(penalty, len(train))
    original_coef, original_intercept = original_units(design, coef, intercept)
    fit_warnings = _warning_messages(caught)
    final = _final_progress(spec, tuned, fits_done, fits_total)
    result = FitResult(
        document=portable_document(layout, design, coef, intercept, notations, training_sha256),
        layout=layout,
        feature_names_out=list(design.feature_names_out_),
        penalty=penalty,
        notations=notations,
        coef=coef,
        intercept=intercept,
        original_coef=original_coef,
        original_intercept=original_intercept,
        train_metrics=train_metrics,
        test_metrics=test_metrics,
        search=tuned,
        comparison_nonzero=comparison_nonzero(tuned, penalty, coef, X_train, y[train]),
        path=regularization_path(penalty, X_train, y[train], tuned),
        fit_seconds=fit_seconds,
        n_train=len(train),
        n_test=len(test),
        warnings=fit_warnings if tuned is None else [*tuned.warnings, *fit_warnings],
        progress=final,
        unregularized_coef=unregularized_coefficients(X_train, y[train]),
        test_actual=test_actual,
        test_predicted=test_predicted,
    )
    progress(*final)
    return result


def _final_progress(
    spec: JobSpec, tuned: SearchResult | None, fits_done: int, fits_total: int
) -> tuple[int, int, str]:
    """The job's last ``progress``: every fit done, or how far a timed-out search got."""
    if tuned is None or spec.tuning is None or not tuned.timed_out:
        return (fits_total, fits_total, "done")
    return (
        fits_done + 1,
        fits_total,
        f"done: the search stopped at timeout_seconds={spec.tuning.timeout_seconds} "
        f"(tuning.timed_out) with {len(tuned.candidates)} of {tuned.n_candidates} "
        f"candidates finished on every fold; the best of those was refit",
    )


def _warning_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    messages: list[str] = []
    for record in caught:
        text = f"{record.category.__name__}: {record.message}"
        if text not in messages:
            messages.append(text)
    return messages
