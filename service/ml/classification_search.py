"""A cross-validated grid search of a classifier, as ``GridSearchCV`` runs it.

:func:`grid_search_classifier` equals

.. code-block:: python

    GridSearchCV(make_pipeline(<preprocessing>, LogisticRegression(...)), grid,
                 cv=StratifiedKFold(folds, shuffle=shuffle, random_state=random_state),
                 scoring=scoring).fit(X[train], y[train])

(``StratifiedKFold`` is what ``GridSearchCV(cv=folds)`` uses for a classifier): the
preprocessing is fitted on each fold's training rows, every candidate is a cold fit, the
candidates are ranked as ``GridSearchCV`` ranks them. ``select="1se"`` takes the smallest
``C`` (the most regularized) of the best candidate's penalty and ``l1_ratio`` whose mean
score is at least the best mean minus its standard error (``std_score/sqrt(folds − 1)``,
glmnet's ``cvsd``, as the regressors' 1se). Warm-started paths over ``C`` are the speed
lever still to come; this is the reference the fast search must equal.

A fold whose training rows lack a class is scikit-learn's behaviour: its estimator knows
fewer classes and the scorer fails, or scores it as scikit-learn does (``StratifiedKFold``
warns when a class has fewer members than folds).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold

from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.estimators.logistic import CLASSIFICATION_KINDS, logistic_family
from service.ml.preprocessing import Columns, DesignTransformer, FeatureLayout
from service.ml.search.select import _rank
from service.ml.spec import CLASSIFICATION_SCORERS, PreprocessingSpec, TuningSpec
from service.ml.spec import DEFAULT_SCORING as _DEFAULT_SCORING

DEFAULT_SCORING = _DEFAULT_SCORING["classification"]


@dataclass
class ClassifierCandidate:
    """One candidate's cross-validated scores (``GridSearchCV.cv_results_`` columns)."""

    params: dict[str, Any]
    penalty: Penalty
    fold_scores: np.ndarray
    mean_score: float
    std_score: float
    rank: int = 0


@dataclass
class ClassifierSearch:
    """The candidates in grid order, and the selected one's index."""

    candidates: list[ClassifierCandidate]
    best_index: int
    selected_index: int

    @property
    def penalty(self) -> Penalty:
        """The selected candidate's penalty, to refit on the training split."""
        return self.candidates[self.selected_index].penalty


def candidate_penalty(params: dict[str, Any], base: Penalty) -> Penalty:
    """``base`` with a candidate's ``C``, ``l1_ratio`` and ``penalty`` (a spec type)."""
    kind = CLASSIFICATION_KINDS[params["penalty"]] if "penalty" in params else base.kind
    family = logistic_family(kind)
    ratio = params.get("l1_ratio", base.l1_ratio if kind == base.kind else None)
    return family.logistic_penalty(
        float(params.get("C", base.C if base.C is not None else 1.0)),
        ratio if kind == CLASSIFICATION_KINDS["elasticnet"] else None,
        fit_intercept=base.fit_intercept,
        max_iter=base.max_iter,
        tol=base.tol,
        class_weight=base.class_weight,
    )


def grid_search_classifier(
    columns: Columns,
    layout: FeatureLayout,
    prep: PreprocessingSpec,
    y: np.ndarray,
    train: np.ndarray,
    grid: list[dict[str, Any]],
    base: Penalty,
    *,
    folds: int = 5,
    shuffle: bool = False,
    random_state: int | None = None,
    scoring: str = DEFAULT_SCORING,
    select: str = "best",
) -> ClassifierSearch:
    """Score every candidate of ``grid`` on stratified folds of the ``train`` rows.

    Raises
    ------
    FitError
        For an unknown scorer, folds stratification cannot cut, or a scorer that cannot
        score these labels (``f1`` of text labels, as in scikit-learn).
    """
    if scoring not in CLASSIFICATION_SCORERS:
        raise FitError(f"scoring {scoring!r} is not one of {', '.join(CLASSIFICATION_SCORERS)}")
    if not grid:
        raise FitError("the grid has no candidate")
    scorer = get_scorer(scoring)
    y_train = y[train]
    splitter = StratifiedKFold(folds, shuffle=shuffle, random_state=random_state)
    try:
        splits = list(splitter.split(np.zeros((len(train), 1)), y_train))
    except ValueError as exc:
        raise FitError(
            f"cannot cut the training rows into {folds} stratified folds: {exc}"
        ) from exc
    designs = []
    for fit_rows, score_rows in splits:
        design = DesignTransformer(layout, prep)
        X_fit = design.fit_transform(columns, train[fit_rows], order="C")
        designs.append((X_fit, design.transform(columns, train[score_rows])))
    penalties = [candidate_penalty(params, base) for params in grid]
    scores = np.empty((len(grid), folds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is the refit's to report
        for i, penalty in enumerate(penalties):
            for j, ((fit_rows, score_rows), (X_fit, X_score)) in enumerate(
                zip(splits, designs, strict=True)
            ):
                estimator = penalty.estimator().fit(X_fit, y_train[fit_rows])
                try:
                    scores[i, j] = scorer(estimator, X_score, y_train[score_rows])
                except ValueError as exc:
                    raise FitError(f"scoring {scoring!r} cannot score this target: {exc}") from exc
    means, stds = scores.mean(axis=1), scores.std(axis=1)
    ranks = _rank(means)
    candidates = [
        ClassifierCandidate(dict(p), penalties[i], scores[i], float(means[i]), float(stds[i]))
        for i, p in enumerate(grid)
    ]
    for candidate, rank in zip(candidates, ranks.tolist(), strict=True):
        candidate.rank = rank
    best = int(np.flatnonzero(ranks == 1)[0])
    selected = best if select == "best" else _one_standard_error(candidates, best, folds)
    return ClassifierSearch(candidates, best, selected)


def _one_standard_error(candidates: list[ClassifierCandidate], best: int, folds: int) -> int:
    """The smallest ``C`` of the best candidate's kind and ``l1_ratio`` within one SE."""
    top = candidates[best]
    threshold = top.mean_score - top.std_score / math.sqrt(folds - 1)
    chosen = best
    for i, candidate in enumerate(candidates):
        same = (candidate.penalty.kind, candidate.penalty.l1_ratio) == (
            top.penalty.kind,
            top.penalty.l1_ratio,
        )
        chosen_c = candidates[chosen].penalty.C or 0.0
        if same and candidate.mean_score >= threshold and (candidate.penalty.C or 0.0) < chosen_c:
            chosen = i
    return chosen


def search_classifier(
    columns: Columns,
    layout: FeatureLayout,
    prep: PreprocessingSpec,
    y: np.ndarray,
    train: np.ndarray,
    tuning: TuningSpec,
    base: Penalty,
) -> ClassifierSearch:
    """Run a job's ``tuning`` for a classifier: the seam the worker calls.

    A grid search scores the product of ``tuning.space``'s lists in the order
    ``ParameterGrid`` walks them (keys sorted).

    Raises
    ------
    FitError
        For a strategy not served for classifiers yet, and as :func:`grid_search_classifier`.
    """
    if tuning.strategy != "grid":
        raise FitError(
            f"strategy {tuning.strategy!r} is not served for classification yet; use 'grid'"
        )
    keys = sorted(tuning.space)
    lists = [tuning.space[key] for key in keys]
    grid = [dict(zip(keys, values, strict=True)) for values in itertools.product(*lists)]
    return grid_search_classifier(
        columns,
        layout,
        prep,
        y,
        train,
        grid,
        base,
        folds=tuning.cv.folds,
        shuffle=tuning.cv.shuffle,
        random_state=tuning.cv.random_state,
        scoring=tuning.scoring or DEFAULT_SCORING,
        select=tuning.select,
    )


@dataclass
class ClassifierPath:
    """Coefficients along ``C`` (ascending) refitted on the training rows.

    ``coef[k]`` is ``LogisticRegression(C=Cs[k], ...).fit(X_train, y_train).coef_`` (one row
    for two classes, one per class otherwise), ``intercept[k]`` its ``intercept_``.
    """

    Cs: np.ndarray
    classes: list[Any]
    coef: np.ndarray  # (len(Cs), n_rows, n_features_out)
    intercept: np.ndarray  # (len(Cs), n_rows)


def classifier_path(
    X_train: np.ndarray, y_train: np.ndarray, base: Penalty, Cs: Any
) -> ClassifierPath:
    """The converged coefficients of ``base`` at each ``C`` of ``Cs`` (the design is given).

    The reference implementation: one fit per ``C``, each to ``base``'s tolerance.
    """
    grid = np.sort(np.asarray(Cs, dtype=np.float64))
    coefs, intercepts = [], []
    classes: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is the refit's to report
        for c in grid:
            penalty = candidate_penalty({"C": float(c)}, base)
            estimator = penalty.estimator().fit(X_train, y_train)
            coefs.append(np.asarray(estimator.coef_, dtype=np.float64))
            intercepts.append(np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64)))
            classes = list(estimator.classes_)
    return ClassifierPath(grid, classes, np.stack(coefs), np.stack(intercepts))
