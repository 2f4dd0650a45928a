"""Fit a training job: split, preprocess, fit the penalized estimator, score, export.

:func:`fit_job` is what a worker runs for a job. The result equals, on the same rows,

.. code-block:: python

    train, test = train_test_split(np.arange(n_rows), test_size=..., shuffle=...,
                                   random_state=...)
    pipeline = make_pipeline(<preprocessing of service.ml.pipeline>, penalty.estimator())
    pipeline.fit(X[train], y[train])

with the coefficients, intercept and metrics of that pipeline, and the model as a
portable document (:mod:`service.models.portable`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import train_test_split

from service.errors import FitError, RegfitError
from service.ml import tuning
from service.ml.metrics import finite_list, finite_or_none, regression_metrics
from service.ml.penalties import Penalty, penalty_notations, resolve_penalty
from service.ml.pipeline import (
    Columns,
    DesignTransformer,
    FeatureLayout,
    select_features,
    target_values,
)
from service.ml.spec import JobSpec, SplitSpec
from service.models import portable

Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]


class FitCancelled(RegfitError):
    """Raised when ``should_stop`` asks a fit to stop (the job was cancelled or taken over)."""

    status = 409
    slug = "cancelled"
    title = "Job cancelled"


@dataclass
class FitOutcome:
    """What a fit produces: the portable model document, the model summary, and the job's
    final ``progress`` as ``(done, total, message)``."""

    portable: dict[str, Any]
    summary: dict[str, Any]
    progress: tuple[int, int, str] = (1, 1, "done")


def _no_progress(done: int, total: int, message: str) -> None:
    return None


def _never() -> bool:
    return False


def split_rows(n_rows: int, split: SplitSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train, test)`` row indices exactly as ``train_test_split`` picks them.

    ``test_size`` 0 trains on every row (in order) with an empty test set.

    Raises
    ------
    FitError
        If the split leaves no training row, or ``test_size`` exceeds the rows.
    """
    rows = np.arange(n_rows)
    if split.test_size == 0:
        return rows, rows[:0]
    try:
        train, test = train_test_split(
            rows, test_size=split.test_size, shuffle=split.shuffle, random_state=split.random_state
        )
    except ValueError as exc:
        raise FitError(
            f"cannot split {n_rows} rows with test_size={split.test_size}: {exc}"
        ) from exc
    return np.asarray(train), np.asarray(test)


def split_sizes(n_rows: int, split: SplitSpec) -> tuple[int, int]:
    """``(n_train, n_test)`` of :func:`split_rows`, without drawing the rows.

    ``train_test_split``'s arithmetic: a fractional ``test_size`` takes ``ceil(test_size·n)``
    test rows, an integer one that many.

    Raises
    ------
    FitError
        If the split leaves no training row, or ``test_size`` exceeds the rows.
    """
    if split.test_size == 0:
        return n_rows, 0
    if isinstance(split.test_size, int):
        n_test = split.test_size
        if n_test >= n_rows:
            raise FitError(
                f"cannot split {n_rows} rows with test_size={n_test}: it must be less than "
                f"the number of rows"
            )
    else:
        n_test = math.ceil(split.test_size * n_rows)
    n_train = n_rows - n_test
    if n_train < 1:
        raise FitError(
            f"cannot split {n_rows} rows with test_size={split.test_size}: no training row "
            f"would be left"
        )
    return n_train, n_test


def _tune(
    columns: Columns,
    layout: FeatureLayout,
    y: np.ndarray,
    train: np.ndarray,
    spec: JobSpec,
    *,
    progress: Progress,
    should_stop: StopCheck,
    train_numeric: np.ndarray,
) -> tuning.TuningOutcome:
    """Run the cross-validated search of ``spec.tuning`` on the training rows."""
    assert spec.tuning is not None

    def search_progress(done: int, total: int, message: str) -> None:
        progress(done, total + 1, message)  # + 1: the final refit on the training split

    try:
        return tuning.search(
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
        )
    except tuning.TuningCancelled as exc:
        raise FitCancelled("the job was asked to stop") from exc


def coefficient_tables(
    design: DesignTransformer, coef: np.ndarray, intercept: float
) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """Express the fitted model in scaled units (as fitted) and in the original units.

    A numeric feature's original-unit coefficient is ``coef/scale``; the intercept absorbs
    the centring, ``b - Σ coef_j·mean_j/scale_j``. One-hot columns are the same in both.
    """
    names = design.feature_names_out_
    n_numeric = len(design.layout.numeric)
    scaler = design.scaler_
    original = coef.astype(np.float64).copy()
    original_intercept = float(intercept)
    if scaler is not None:
        original[:n_numeric] = coef[:n_numeric] / scaler.scale_
        original_intercept = float(intercept - np.sum(original[:n_numeric] * scaler.mean_))
    return (
        {
            "original": {n: finite_or_none(c) for n, c in zip(names, original, strict=True)},
            "scaled": {n: finite_or_none(c) for n, c in zip(names, coef, strict=True)},
        },
        {"original": finite_or_none(original_intercept), "scaled": finite_or_none(intercept)},
    )


def _behind_the_search() -> None:
    """Lower this thread's CPU priority below the search threads' (Linux: nice per thread).

    The refit's preprocessing is needed only once the search has ended, so where both want
    a core the search should have it; the preprocessing fills the gaps.
    """
    if sys.platform == "linux":  # elsewhere PRIO_PROCESS takes a process id, not a thread's
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


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
    (they may be transformed in place). ``kinds``: the estimator kinds the training design
    may be fitted with. Coordinate descent (Lasso, ElasticNet) works on a Fortran-ordered
    copy of it, which the design is then made as; Ridge keeps the C order that
    scikit-learn's own pipeline hands it.
    """
    started = time.perf_counter()
    if numeric is None:
        train_numeric, test_numeric = design.numeric_blocks(columns, [train, test])
    else:
        train_numeric, test_numeric = numeric
    order: Literal["C", "F"] = "C" if "l2" in kinds else "F"
    X_train = design.fit_transform(columns, train, numeric=train_numeric, order=order)
    X_test = design.transform(columns, test, numeric=test_numeric) if len(test) else None
    return X_train, X_test, time.perf_counter() - started


def fit_job(
    columns: Columns,
    spec: JobSpec,
    *,
    training_sha256: str,
    stored_dtypes: Mapping[str, str] | None = None,
    progress: Progress = _no_progress,
    should_stop: StopCheck = _never,
) -> FitOutcome:
    """Fit the job's penalized linear model on its training split.

    Parameters
    ----------
    columns : mapping of str to ndarray
        The dataset's columns, rows in upload order (see :mod:`service.ml.pipeline`).
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

    Returns
    -------
    FitOutcome

    Raises
    ------
    FitError
        For data the job cannot use (see :mod:`service.ml.pipeline`) or a bad split.
    FitCancelled
        When ``should_stop()`` turns true.
    """
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
    tuned: tuning.TuningOutcome | None = None
    fits_done, fits_total, message = 0, 1, "fitting"
    with warnings.catch_warnings(record=True) as caught:
        # Convergence and similar warnings are results to report, not failures.
        warnings.simplefilter("always")
        if spec.tuning is not None:
            # The refit's preprocessing does not depend on the search's answer: it runs on
            # a thread of its own meanwhile, filling the cores the search leaves idle
            # between its steps. The training rows are gathered once for both (each gets its
            # own copy: both work on theirs in place).
            train_numeric, test_numeric = design.numeric_blocks(columns, [train, test])
            search_numeric = train_numeric.copy()
            with ThreadPoolExecutor(
                1, thread_name_prefix="regfit-prep", initializer=_behind_the_search
            ) as pool:
                kinds = tuning.searched_kinds(spec.tuning, spec.penalty.type)
                prepared = pool.submit(
                    _prepare, design, columns, train, test, (train_numeric, test_numeric), kinds
                )
                tuned = _tune(
                    columns,
                    layout,
                    y,
                    train,
                    spec,
                    progress=progress,
                    should_stop=should_stop,
                    train_numeric=search_numeric,
                )
            X_train, X_test, prep_seconds = prepared.result()
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
    if X_test is not None:
        test_metrics = regression_metrics(y[test], estimator.predict(X_test))

    coef = np.asarray(estimator.coef_, dtype=np.float64).ravel()
    intercept = float(np.ravel(estimator.intercept_)[0])  # 0.0 when fit_intercept is False
    notations = penalty_notations(penalty, len(train))
    coefficients, intercepts = coefficient_tables(design, coef, intercept)
    summary: dict[str, Any] = {
        "target": spec.target,
        "features": list(layout.features),
        "dropped_features": list(layout.dropped),
        "feature_names_out": list(design.feature_names_out_),
        "penalty": notations,
        "preprocessing": spec.preprocessing.model_dump(),
        "coefficients": coefficients,
        "intercept": intercepts,
        "n_nonzero": int(np.count_nonzero(coef)),
        "metrics": {"train": train_metrics, "test": test_metrics, "cv": None},
        "tuning": None,
        "fit_seconds": fit_seconds,
        "n_train": len(train),
        "n_test": len(test),
        "split": spec.split.model_dump(),
        "warnings": _warning_messages(caught),
        "path": None,
    }
    if tuned is not None:
        summary["tuning"] = tuned.summary
        summary["metrics"]["cv"] = tuned.cv_metrics
        summary["warnings"] = [*tuned.warnings, *summary["warnings"]]
        _fill_comparison(tuned, penalty, summary, X_train, y[train])
    summary["path"] = _regularization_path(design, penalty, X_train, y[train], tuned)
    document = _portable_document(layout, design, coef, intercept, notations, training_sha256)
    final = (fits_total, fits_total, "done")
    if tuned is not None and spec.tuning is not None and tuned.summary["timed_out"]:
        t = tuned.summary
        final = (
            fits_done + 1,
            fits_total,
            f"done: the search stopped at timeout_seconds={spec.tuning.timeout_seconds} "
            f"(tuning.timed_out) with {t['n_candidates_finished']} of {t['n_candidates']} "
            f"candidates finished on every fold; the best of those was refit",
        )
    progress(*final)
    return FitOutcome(portable=document, summary=summary, progress=final)


def _fill_comparison(
    tuned: tuning.TuningOutcome,
    chosen: Penalty,
    summary: dict[str, Any],
    X_train: np.ndarray,
    y_train: np.ndarray,
) -> None:
    """Refit each compared penalty's best candidate on the training split for ``n_nonzero``."""
    comparison = tuned.summary.get("comparison")
    if comparison is None:
        return
    for kind, penalty in tuned.comparison_penalties.items():
        if penalty == chosen:
            comparison[kind]["n_nonzero"] = summary["n_nonzero"]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only the count is kept from this fit
            fitted = penalty.estimator().fit(X_train, y_train)
        comparison[kind]["n_nonzero"] = int(np.count_nonzero(fitted.coef_))


def _regularization_path(
    design: DesignTransformer,
    penalty: Penalty,
    X_train: np.ndarray,
    y_train: np.ndarray,
    tuned: tuning.TuningOutcome | None,
) -> dict[str, Any]:
    """The fitted penalty's coefficients (scaled units) along a range of alphas.

    A tuned model's path runs over the searched alphas of the selected penalty and
    ``l1_ratio``, with their CV scores; an untuned model's over
    :func:`service.ml.tuning.default_path_alphas`.
    """
    if tuned is not None:
        alphas = tuned.path_alphas
    else:
        alphas = tuning.default_path_alphas(X_train, y_train, penalty)
    if tuned is not None and tuned.path_coefficients is not None:
        coefs, converged = tuned.path_coefficients  # the search solved it on an idle thread
    else:
        coefs, converged = tuning.coefficient_path(
            X_train, y_train, penalty, alphas, problem=None if tuned is None else tuned.path_problem
        )
    names = design.feature_names_out_
    return {
        "penalty": penalty.kind,
        "l1_ratio": penalty.l1_ratio,
        "alpha": penalty.alpha,
        "alphas": list(alphas),
        "units": "scaled",
        "coefficients": {name: finite_list(coefs[j]) for j, name in enumerate(names)},
        "n_nonzero": [int(n) for n in np.count_nonzero(coefs, axis=0)],
        "converged": converged,
        "cv": None
        if tuned is None
        else {"mean": tuned.path_mean, "std": tuned.path_std, "scoring": tuned.summary["scoring"]},
    }


def _warning_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    messages: list[str] = []
    for record in caught:
        text = f"{record.category.__name__}: {record.message}"
        if text not in messages:
            messages.append(text)
    return messages


def _portable_document(
    layout: FeatureLayout,
    design: DesignTransformer,
    coef: np.ndarray,
    intercept: float,
    notations: dict[str, Any],
    training_sha256: str,
) -> dict[str, Any]:
    if not (np.all(np.isfinite(coef)) and np.isfinite(intercept)):
        raise FitError("the fit produced non-finite coefficients; try a larger alpha or scaling")
    kinds = {name: "numeric" for name in layout.numeric}
    kinds.update({name: "categorical" for name in layout.categorical})
    return portable.make_document(
        target=layout.target,
        features=[
            {"name": name, "kind": kinds[name], "dtype": layout.dtypes[name]}
            for name in layout.features
        ],
        numeric=design.numeric_parameters(),
        categorical={"names": list(layout.categorical), "categories": design.categories()},
        coef=coef.tolist(),
        intercept=intercept,
        feature_names_out=design.feature_names_out_,
        penalty=notations,
        training_data_sha256=training_sha256,
    )
