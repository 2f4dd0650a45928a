"""A classification job from start to end: labels, split, the optional search, the refit, the path.

:func:`fit_classification_job` is what a worker runs for ``task: "classification"`` (through
:func:`service.ml.fitting.fit_model`, the one place that chooses by task). Without ``tuning``
it is :func:`~service.ml.classification.fit_classifier`; with it, the cross-validated search
of :func:`service.ml.classification_search.search_classifier` (``GridSearchCV`` with
``StratifiedKFold``) picks the penalty, which is then refit on the training split exactly as
an untuned job's. The regularization path (:func:`~service.ml.classification_search.
classifier_path`) runs on the refit's training design, over the tuned candidates' ``C`` of the
selected penalty (with their CV curve), or over :data:`DEFAULT_PATH_DECADES` around ``C``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.ml.classification import (
    ClassificationData,
    ClassifierFit,
    classification_data,
    fit_on_split,
    resolve_classifier,
)
from service.ml.classification_search import (
    ClassifierPath,
    ClassifierSearch,
    classifier_path,
    search_classifier,
)
from service.ml.errors import FitCancelled
from service.ml.estimators import Penalty
from service.ml.preprocessing import Columns
from service.ml.spec import JobSpec, TuningSpec

Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]

# An untuned model's path: C·10^k for k in [-2, 2], two points per decade (C itself included).
DEFAULT_PATH_DECADES = np.linspace(-2.0, 2.0, 9)


@dataclass
class ClassifierJobResult:
    """What a classification job produces: the refit, the search, the path along ``C``.

    ``path_mean``/``path_std`` are the CV scores at ``path.Cs`` (tuned jobs only).
    """

    fit: ClassifierFit
    search: ClassifierSearch | None
    path: ClassifierPath
    path_mean: list[float] | None
    path_std: list[float] | None
    fit_seconds: float
    progress: tuple[int, int, str]

    @property
    def document(self) -> dict[str, Any]:
        """The portable classifier (:mod:`service.ml.portable_classifier`)."""
        return self.fit.document


def count_classifier_candidates(tuning: TuningSpec) -> int:
    """The candidates a classifier's search scores: every combination of a grid's lists,
    ``n_trials`` draws otherwise (a bound for progress and the operator's caps)."""
    if tuning.strategy != "grid":
        return tuning.n_trials
    return math.prod(len(values) for values in tuning.space.values() if isinstance(values, list))


def _quiet(done: int, total: int, message: str) -> None:
    return None


def _never() -> bool:
    return False


def fit_classification_job(
    columns: Columns,
    spec: JobSpec,
    *,
    max_classes: int,
    training_sha256: str = "",
    stored_dtypes: Mapping[str, str] | None = None,
    progress: Progress = _quiet,
    should_stop: StopCheck = _never,
) -> ClassifierJobResult:
    """Fit (and with ``spec.tuning``, tune) a classification job.

    Raises
    ------
    FitError
        As :func:`~service.ml.classification.fit_classifier` and
        :func:`~service.ml.classification_search.search_classifier`.
    FitCancelled
        When ``should_stop()`` turns true between the steps.
    """
    started = time.perf_counter()
    data = classification_data(columns, spec, max_classes=max_classes, stored_dtypes=stored_dtypes)
    base = _base_penalty(spec, len(data.train))
    search = None
    total = 1
    if spec.tuning is not None:
        folds = spec.tuning.cv.folds
        planned = count_classifier_candidates(spec.tuning) * folds + 1
        progress(0, planned, f"cross-validating the candidates on {folds} stratified folds")
        search = search_classifier(
            columns, data.layout, spec.preprocessing, data.y, data.train, spec.tuning, base
        )
        total = len(search.candidates) * folds + 1
        penalty = search.penalty
    else:
        penalty = base
    _check(should_stop)
    progress(total - 1, total, "refitting the selected candidate on the training split")
    fit = fit_on_split(columns, data, penalty, spec, training_sha256=training_sha256)
    _check(should_stop)
    path, mean, std = _path(fit, data, search)
    _check(should_stop)
    final = (total, total, "done")
    progress(*final)
    return ClassifierJobResult(
        fit=fit,
        search=search,
        path=path,
        path_mean=mean,
        path_std=std,
        fit_seconds=time.perf_counter() - started,
        progress=final,
    )


def _check(should_stop: StopCheck) -> None:
    if should_stop():
        raise FitCancelled("the job was asked to stop")


def _base_penalty(spec: JobSpec, n_train: int) -> Penalty:
    """The job's penalty; with ``penalty`` searched and no type given, the first searched."""
    penalty = spec.penalty
    if penalty.type is None and spec.tuning is not None:
        kinds = spec.tuning.space.get("penalty")
        if isinstance(kinds, list) and kinds:
            penalty = penalty.model_copy(update={"type": str(kinds[0])})
    return resolve_classifier(penalty, n_train)


def _path(
    fit: ClassifierFit, data: ClassificationData, search: ClassifierSearch | None
) -> tuple[ClassifierPath, list[float] | None, list[float] | None]:
    """The refit penalty's coefficients along ``C``, and the CV curve at those ``C``."""
    assert fit.X_train is not None
    chosen = fit.penalty
    mean = std = None
    if search is not None:
        same = [
            c
            for c in search.candidates
            if (c.penalty.kind, c.penalty.l1_ratio) == (chosen.kind, chosen.l1_ratio)
        ]
        by_c = {float(c.penalty.C or 0.0): c for c in same}
        Cs = np.array(sorted(by_c))
        mean = [by_c[float(c)].mean_score for c in Cs]
        std = [by_c[float(c)].std_score for c in Cs]
    else:
        Cs = float(chosen.C or 1.0) * 10.0**DEFAULT_PATH_DECADES
    path = classifier_path(fit.X_train, data.y[data.train], chosen, Cs)
    return path, mean, std
