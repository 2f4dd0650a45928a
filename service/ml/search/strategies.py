"""Cross-validated tuning of ``alpha``, ``l1_ratio`` and the family, at regularization-path speed.

A search gives the answers of

.. code-block:: python

    GridSearchCV(pipeline, param_grid, cv=KFold(folds, shuffle=..., random_state=...),
                 scoring=scoring).fit(X[train], y[train])

(or ``RandomizedSearchCV``), where ``pipeline`` is the job's preprocessing
(:mod:`service.ml.preprocessing`) followed by the estimator of each candidate, and ``train`` the
job's training split: the same folds, the preprocessing refit on each fold's training rows,
the same scorer, ``mean_score`` and ``std_score`` as ``mean_test_score`` and
``std_test_score``, the same ranking and the same ``best_params``.

It reads as scikit-learn's ``BaseSearchCV``: each strategy generates its candidates
(:mod:`.candidates`: grid and random up front; Bayesian, one at a time from Optuna's TPE,
here), one evaluation loop scores them on every fold (:mod:`.evaluate`, at the cost of one
regularization path per chain instead of ``len(grid) × folds`` cold fits), :mod:`.select`
picks the candidate to refit, and :mod:`.results` holds what comes out.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from service.ml import estimators
from service.ml.errors import FitCancelled
from service.ml.penalties import resolve_penalty
from service.ml.preprocessing import Columns, FeatureLayout
from service.ml.search.candidates import (
    Candidate,
    SearchSpace,
    count_candidates,
    grid_candidates,
    random_candidates,
)
from service.ml.search.evaluate import CrossValidation, Progress
from service.ml.search.results import SearchResult
from service.ml.search.schedule import StopCheck, StopSearch
from service.ml.search.select import SearchRun, fold_scores, select
from service.ml.spec import PenaltySpec, PreprocessingSpec, RangeSpec, TuningSpec
from service.ml.threads import n_threads, threadpool_controller

# Bayesian search asks Optuna at most this many times the target number of distinct candidates.
MAX_ASKS_FACTOR = 10


def _none_up_front(tuning: TuningSpec, penalty: PenaltySpec, n_train: int) -> list[Candidate]:
    return []  # Bayesian: each candidate comes from the ones before (bayesian_search)


# Each strategy's candidates known before the first evaluation.
STRATEGIES: dict[str, Callable[[TuningSpec, PenaltySpec, int], list[Candidate]]] = {
    "grid": grid_candidates,
    "random": random_candidates,
    "bayesian": _none_up_front,
}


def bayesian_search(
    search_: CrossValidation,
    tuning: TuningSpec,
    space: SearchSpace,
    target: int,
    candidates: list[Candidate],
) -> None:
    """Optuna TPE (seeded by ``tuning.random_state``); appends each new candidate it tries."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=tuning.random_state)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen: dict[Candidate, int] = {}

    scorer = search_.penalty.family.scorers[tuning.scorer]

    def suggest(trial: Any, name: str, dimension: Any) -> float:
        if isinstance(dimension, RangeSpec):
            return float(
                trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
            )
        return float(trial.suggest_categorical(name, list(dimension)))

    asks = 0
    while len(candidates) < target and asks < MAX_ASKS_FACTOR * target:
        asks += 1
        trial = study.ask()
        kind = space.kinds[0]
        if "penalty" in tuning.space:
            kind = estimators.get(str(trial.suggest_categorical("penalty", list(space.kinds)))).kind
        alpha = (
            suggest(trial, "alpha", tuning.space["alpha"])
            if "alpha" in tuning.space
            else space.alpha
        )
        ratio = None
        if "l1_ratio" in estimators.get(kind).searchable:
            ratio = (
                suggest(trial, "l1_ratio", tuning.space["l1_ratio"])
                if "l1_ratio" in tuning.space
                else space.l1_ratio
            )
        candidate = Candidate(kind, alpha, ratio)
        if candidate in seen:  # TPE may propose a point again: answer from the record
            value = float(np.mean(fold_scores(search_.scores, scorer)[seen[candidate]]))
            study.tell(
                trial,
                value if math.isfinite(value) else None,
                state=None if math.isfinite(value) else optuna.trial.TrialState.FAIL,
            )
            continue
        index = len(candidates)
        candidates.append(candidate)
        seen[candidate] = index
        search_.scores.grow(len(candidates))
        try:
            search_.run_one(index, candidate)
        except StopSearch:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        value = float(np.mean(fold_scores(search_.scores, scorer)[index]))
        if math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def run_search(
    columns: Columns,
    layout: FeatureLayout,
    prep: PreprocessingSpec,
    y: np.ndarray,
    train: np.ndarray,
    tuning: TuningSpec,
    penalty_spec: PenaltySpec,
    *,
    progress: Progress,
    should_stop: StopCheck,
    n_jobs: int | None = None,
    train_numeric: np.ndarray | None = None,
) -> SearchResult:
    """Run the cross-validated search of ``tuning`` on the ``train`` rows.

    ``train_numeric``, when given, is the numeric block of the training rows (as
    :class:`DesignTransformer` builds it); the search takes it over and changes it.

    Returns
    -------
    SearchResult
        The selected candidate and every finished candidate's scores.

    Raises
    ------
    FitCancelled
        When ``should_stop()`` turns true.
    FitError
        When the folds cannot be built, or the timeout came before any candidate finished.
    """
    started = time.perf_counter()  # ``seconds`` covers preparing the folds too
    n_train = len(train)
    space = SearchSpace.of(tuning, penalty_spec, n_train)
    common = resolve_penalty(
        penalty_spec.model_copy(update={"type": penalty_spec.type or space.kinds[0]}), n_train
    )
    common = replace(common, lambda1=None, lambda2=None)
    planned = count_candidates(tuning, penalty_spec)
    candidates = STRATEGIES[tuning.strategy](tuning, penalty_spec, n_train)
    stopped: str | None = None
    # Each pool thread is one core's worth of work: multi-threaded BLAS inside them would
    # oversubscribe the cores (measured 4-6x slower at 20000×500 on 2 cores).
    blas = (
        threadpool_controller().limit(limits=1, user_api="blas")
        if n_threads(tuning.cv.folds, n_jobs) > 1
        else contextlib.nullcontext()
    )
    with warnings.catch_warnings(record=True) as caught, blas:
        # Solver warnings from the pool's threads land here too (the filters are global);
        # convergence is judged from the duality gaps instead (service.ml.paths.enet).
        warnings.simplefilter("always")
        search_ = CrossValidation(
            columns,
            layout,
            prep,
            y,
            train,
            tuning,
            common,
            n_candidates=len(candidates),
            progress=progress,
            should_stop=should_stop,
            n_jobs=n_jobs,
            train_numeric=train_numeric,
        )
        search_.total = planned * tuning.cv.folds
        search_.message = (
            f"{tuning.strategy} search: {planned} candidates × {tuning.cv.folds} folds"
        )
        try:
            search_.report()
            if tuning.strategy == "bayesian":
                bayesian_search(search_, tuning, space, planned, candidates)
            else:
                search_.run_batch(candidates)
        except StopSearch as stop:
            stopped = stop.reason
        finally:
            search_.scheduler.close()
    seconds = time.perf_counter() - started
    if stopped == "cancelled":
        raise FitCancelled("the job was asked to stop")
    return select(SearchRun(search_, space, candidates, planned, stopped, seconds, caught))
