"""A fit's result as the stored model: the portable document and the summary the API shows.

:func:`model_documents` turns the dataclasses of :mod:`service.ml` (a
:class:`~service.ml.fitted.FitResult` and its :class:`~service.ml.search.results.SearchResult`)
into the JSON stored with a model and returned by ``GET /v1/models/{id}`` and its ``path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.ml.classification_job import ClassifierJobResult
from service.ml.fitted import FitResult, RegularizationPath
from service.ml.metrics import finite_list, finite_or_none
from service.ml.search.results import SearchResult
from service.ml.spec import JobSpec, TuningSpec
from service.models import classifier_documents

ONE_SE_RULE = (
    "largest alpha of the best candidate's penalty whose mean score is at "
    "least the best mean minus its standard error (std_score/sqrt(folds - 1), "
    "glmnet's cvsd); equal alphas: fewest nonzero coefficients"
)


@dataclass
class ModelDocuments:
    """What a model row stores: the portable document, the summary, the job's final progress."""

    portable: dict[str, Any]
    summary: dict[str, Any]
    progress: tuple[int, int, str] = (1, 1, "done")


def model_documents(result: FitResult | ClassifierJobResult, spec: JobSpec) -> ModelDocuments:
    """The stored documents of a fit of ``spec`` (a regressor's or a classifier's)."""
    summary = (
        classifier_documents.classifier_summary(result, spec)
        if isinstance(result, ClassifierJobResult)
        else model_summary(result, spec)
    )
    return ModelDocuments(portable=result.document, summary=summary, progress=result.progress)


def model_summary(result: FitResult, spec: JobSpec) -> dict[str, Any]:
    """The model's summary: features, penalty, coefficients, metrics, tuning, path."""
    names = result.feature_names_out
    tuning = None
    if result.search is not None:
        assert spec.tuning is not None
        tuning = tuning_summary(result.search, spec.tuning, result.comparison_nonzero)
    return {
        "target": spec.target,
        "features": list(result.layout.features),
        "dropped_features": list(result.layout.dropped),
        "feature_names_out": list(names),
        "penalty": result.notations,
        "preprocessing": spec.preprocessing.model_dump(),
        "coefficients": {
            "original": _by_name(names, result.original_coef),
            "scaled": _by_name(names, result.coef),
        },
        "intercept": {
            "original": finite_or_none(result.original_intercept),
            "scaled": finite_or_none(result.intercept),
        },
        "n_nonzero": int(np.count_nonzero(result.coef)),
        "metrics": {
            "train": result.train_metrics,
            "test": result.test_metrics,
            "cv": None if result.search is None else _cv_metrics(result.search),
        },
        "tuning": tuning,
        "fit_seconds": result.fit_seconds,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "split": spec.split.model_dump(),
        "warnings": result.warnings,
        "path": path_body(result.path, names, spec.tuning, result.search),
        "plots": plot_data(result),
    }


def plot_data(result: FitResult) -> dict[str, Any]:
    """What the plots need beyond the summary (served only as plots: ``GET …/plots/{kind}``).

    The residuals are the test predictions made at fit time, stored here (not recomputed:
    the dataset may have been deleted since).
    """
    unregularized = None
    if result.unregularized_coef is not None:
        unregularized = _by_name(result.feature_names_out, result.unregularized_coef)
    test = None
    if result.test_actual is not None and result.test_predicted is not None:
        test = {
            "actual": finite_list(result.test_actual),
            "predicted": finite_list(result.test_predicted),
        }
    return {"unregularized": unregularized, "test": test}


def tuning_summary(
    search: SearchResult, tuning: TuningSpec, comparison_nonzero: dict[str, int]
) -> dict[str, Any]:
    """The model's ``tuning``: the candidates as ``GridSearchCV.cv_results_`` rows, the best."""
    rows = [
        {
            "params": c.params,
            "mean_score": finite_or_none(c.mean_score),
            "std_score": finite_or_none(c.std_score),
            "fold_scores": finite_list(c.fold_scores),
            "fit_seconds": c.fit_seconds,
            "rank": c.rank,
            "n_nonzero": c.n_nonzero,
        }
        for c in search.candidates
    ]
    summary: dict[str, Any] = {
        "strategy": tuning.strategy,
        "scoring": tuning.scoring,
        "cv": tuning.cv.model_dump(),
        "select": tuning.select,
        "best_params": rows[search.best_index]["params"],
        "best_score": rows[search.best_index]["mean_score"],
        "best_index": search.best_index,
        "candidates": rows,
        "timed_out": search.timed_out,
        "n_candidates": search.n_candidates,
        "n_candidates_finished": len(rows),
        "seconds": search.seconds,
    }
    if tuning.strategy != "grid":
        summary["random_state"] = tuning.random_state
    if search.one_se is not None:
        summary["one_se"] = {
            "threshold": finite_or_none(search.one_se.threshold),
            "max_score_index": search.one_se.max_score_index,
            "max_score": finite_or_none(search.one_se.max_score),
            "rule": ONE_SE_RULE,
        }
    if search.comparison is not None:
        summary["comparison"] = {
            best.kind: {
                "best_score": finite_or_none(best.best_score),
                "best_params": {"alpha": best.alpha, "l1_ratio": best.l1_ratio},
                "best_index": best.best_index,
                "n_nonzero": comparison_nonzero.get(best.kind),
            }
            for best in search.comparison
        }
    return summary


def path_body(
    path: RegularizationPath,
    feature_names: list[str],
    tuning: TuningSpec | None,
    search: SearchResult | None = None,
) -> dict[str, Any]:
    """The model's ``path`` (served by ``GET /v1/models/{id}/path``): the model's penalty
    along its alphas with the CV curve, each compared penalty's (``compared``), and the
    candidates of a random or Bayesian search as points (``cv.points``)."""
    body = penalty_path_body(path, feature_names, None if tuning is None else tuning.scoring)
    compared = None
    if path.compared:
        compared = {
            other.kind: penalty_path_body(other, feature_names, body["cv"]["scoring"])
            for other in path.compared
        }
    if body["cv"] is not None and search is not None and tuning is not None:
        body["cv"]["points"] = None if tuning.strategy == "grid" else candidate_points(search, path)
    return {**body, "compared": compared}


def penalty_path_body(
    path: RegularizationPath, feature_names: list[str], scoring: str | None
) -> dict[str, Any]:
    """One penalty's coefficients along its alphas, nonzero counts and CV curve."""
    cv = None
    if path.cv_mean is not None and path.cv_std is not None:
        cv = {
            "mean": [finite_or_none(v) for v in path.cv_mean],
            "std": [finite_or_none(v) for v in path.cv_std],
            "scoring": scoring,
            "points": None,
        }
    return {
        "penalty": path.kind,
        "l1_ratio": path.l1_ratio,
        "alpha": path.alpha,
        "alphas": list(path.alphas),
        "units": "scaled",
        "coefficients": {name: finite_list(path.coefs[j]) for j, name in enumerate(feature_names)},
        "n_nonzero": [int(n) for n in np.count_nonzero(path.coefs, axis=0)],
        "converged": path.converged,
        "cv": cv,
    }


def candidate_points(search: SearchResult, path: RegularizationPath) -> list[dict[str, Any]]:
    """Every finished candidate as a point: its penalty, ``alpha``, ``l1_ratio`` (searched
    or fixed) and CV mean and std, in search order."""
    kinds = {other.kind: other.l1_ratio for other in (path, *path.compared)}
    points = []
    for c in search.candidates:
        kind = c.params.get("penalty", path.kind)
        points.append(
            {
                "penalty": kind,
                "alpha": c.params.get("alpha", path.alpha),
                "l1_ratio": c.params.get("l1_ratio", kinds.get(kind)),
                "mean": finite_or_none(c.mean_score),
                "std": finite_or_none(c.std_score),
            }
        )
    return points


def _cv_metrics(search: SearchResult) -> dict[str, float | None]:
    return {name: finite_or_none(value) for name, value in search.cv_metrics.items()}


def _by_name(names: list[str], values: Any) -> dict[str, float | None]:
    return {name: finite_or_none(v) for name, v in zip(names, values, strict=True)}
