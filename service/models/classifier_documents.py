"""A classification job's result as the stored model: the portable classifier and its summary.

The summary (:class:`service.models.classifier_schemas.ClassifierModelOut` without the
model's identity) holds the classes, the coefficient table (one row per logit: the positive
class's for a binary target, one per class otherwise), the intercepts, the metrics of both
splits, the penalty in both notations, the tuning summary and the path along ``C``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.ml.classification_job import ClassifierJobResult
from service.ml.classification_search import ClassifierSearch
from service.ml.fitted import original_units
from service.ml.metrics import finite_list, finite_or_none
from service.ml.spec import JobSpec, TuningSpec

ONE_SE_RULE_C = (
    "smallest C (the most regularized) of the best candidate's penalty and l1_ratio whose "
    "mean score is at least the best mean minus its standard error "
    "(std_score/sqrt(folds - 1), glmnet's cvsd)"
)


def classifier_summary(result: ClassifierJobResult, spec: JobSpec) -> dict[str, Any]:
    """The classifier's summary: classes, coefficient table, metrics, tuning, path."""
    fit = result.fit
    names = fit.feature_names_out
    rows = coefficient_rows(fit.classes)
    original = [
        original_units(fit.design, row, float(b))
        for row, b in zip(fit.coef, fit.intercepts, strict=True)
    ]
    tuning = None
    cv = None
    if result.search is not None:
        assert spec.tuning is not None
        tuning = classifier_tuning(result.search, spec.tuning)
        selected = result.search.candidates[result.search.selected_index]
        cv = {
            "scoring": spec.tuning.scoring,
            "mean_score": finite_or_none(selected.mean_score),
            "std_score": finite_or_none(selected.std_score),
        }
    return {
        "task": "classification",
        "target": spec.target,
        "classes": list(fit.classes),
        "features": list(fit.layout.features),
        "dropped_features": list(fit.layout.dropped),
        "feature_names_out": list(names),
        "penalty": fit.notations,
        "preprocessing": spec.preprocessing.model_dump(),
        "coefficients": {
            "rows": rows,
            "columns": list(names),
            "scaled": [finite_list(row) for row in fit.coef],
            "original": [finite_list(coef) for coef, _ in original],
        },
        "intercepts": {
            "rows": rows,
            "scaled": finite_list(fit.intercepts),
            "original": [finite_or_none(b) for _, b in original],
        },
        "n_nonzero": int(np.count_nonzero(np.any(fit.coef != 0, axis=0))),
        "metrics": {"train": fit.train_metrics, "test": fit.test_metrics, "cv": cv},
        "tuning": tuning,
        "fit_seconds": result.fit_seconds,
        "n_train": fit.n_train,
        "n_test": fit.n_test,
        "split": spec.split.model_dump(),
        "warnings": fit.warnings,
        "path": classifier_path_body(result, None if spec.tuning is None else spec.tuning.scoring),
        "plots": {"unregularized": None, "test": None},
    }


def coefficient_rows(classes: list[Any]) -> list[Any]:
    """The class each coefficient row is the logit of (the positive class for two classes)."""
    return [classes[1]] if len(classes) == 2 else list(classes)


def _params(candidate_params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: candidate_params[key]
        for key in ("C", "l1_ratio", "penalty")
        if key in candidate_params
    }


def classifier_tuning(search: ClassifierSearch, tuning: TuningSpec) -> dict[str, Any]:
    """The search as ``GridSearchCV.cv_results_`` rows, the best and the selected candidate."""
    rows = [
        {
            "params": _params(c.params),
            "mean_score": finite_or_none(c.mean_score),
            "std_score": finite_or_none(c.std_score),
            "fold_scores": finite_list(c.fold_scores),
            "rank": c.rank,
        }
        for c in search.candidates
    ]
    best = search.candidates[search.best_index]
    summary: dict[str, Any] = {
        "strategy": tuning.strategy,
        "scoring": tuning.scoring,
        "cv": tuning.cv.model_dump(),
        "select": tuning.select,
        "best_params": rows[search.best_index]["params"],
        "best_score": rows[search.best_index]["mean_score"],
        "best_index": search.best_index,
        "selected_index": search.selected_index,
        "selected_params": rows[search.selected_index]["params"],
        "candidates": rows,
        "n_candidates": len(rows),
        "one_se": None,
        "comparison": None,
    }
    if tuning.select == "1se":
        folds = len(best.fold_scores)
        summary["one_se"] = {
            "threshold": finite_or_none(best.mean_score - best.std_score / np.sqrt(folds - 1)),
            "rule": ONE_SE_RULE_C,
        }
    if isinstance(tuning.space.get("penalty"), list):
        comparison: dict[str, Any] = {}
        for index, candidate in enumerate(search.candidates):
            kind = str(candidate.params.get("penalty"))
            seen = comparison.get(kind)
            if seen is None or candidate.rank < search.candidates[seen["best_index"]].rank:
                comparison[kind] = {
                    "best_score": finite_or_none(candidate.mean_score),
                    "best_params": rows[index]["params"],
                    "best_index": index,
                }
        summary["comparison"] = comparison
    return summary


def classifier_path_body(result: ClassifierJobResult, scoring: str | None) -> dict[str, Any]:
    """The classifier's ``path``: coefficients (scaled units) of each row along ``C``."""
    path, fit = result.path, result.fit
    names = fit.feature_names_out
    rows = coefficient_rows(fit.classes)
    cv = None
    if result.path_mean is not None and result.path_std is not None:
        cv = {
            "mean": [finite_or_none(v) for v in result.path_mean],
            "std": [finite_or_none(v) for v in result.path_std],
            "scoring": scoring,
        }
    return {
        "task": "classification",
        "penalty": fit.notations["type"],
        "l1_ratio": fit.penalty.l1_ratio,
        "C": fit.penalty.C,
        "Cs": [float(c) for c in path.Cs],
        "units": "scaled",
        "rows": rows,
        "coefficients": {
            str(label): {name: finite_list(path.coef[:, r, j]) for j, name in enumerate(names)}
            for r, label in enumerate(rows)
        },
        "intercepts": {
            str(label): finite_list(path.intercept[:, r]) for r, label in enumerate(rows)
        },
        "n_nonzero": [int(n) for n in np.count_nonzero(np.any(path.coef != 0, axis=1), axis=1)],
        "cv": cv,
    }
