"""Selecting the candidate a search refits: ``GridSearchCV``'s ranking, or glmnet's 1se.

``mean_score`` and ``std_score`` are ``mean_test_score`` and ``std_test_score`` of the
same folds and scorer; candidates are ranked as ``GridSearchCV`` ranks them, and ``best``
is its ``best_index_`` (the first candidate of rank 1). ``1se`` takes, among the best
candidate's family, the largest alpha whose mean score is within one standard error.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning

from service.ml.errors import FitError
from service.ml.estimators import Penalty
from service.ml.estimators.base import Scorer
from service.ml.search.candidates import Candidate, SearchSpace, candidate_params
from service.ml.search.evaluate import CandidateScores, CrossValidation
from service.ml.search.results import (
    CandidateResult,
    FamilyBest,
    OneStandardError,
    SearchResult,
)
from service.ml.spec import TuningSpec


def fold_scores(scores: CandidateScores, scorer: Scorer) -> np.ndarray:
    """Every candidate's score on every fold (candidates × folds), greater is better."""
    return scorer.sign * scores.metrics[:, :, scorer.column]


def _rank(means: np.ndarray) -> np.ndarray:
    # GridSearchCV's ranking: NaN means tie with (below) the worst, method "min".
    if np.isnan(means).all():
        return np.ones(len(means), dtype=int)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(int)


@dataclass
class SearchRun:
    """What the evaluation loop leaves for selection."""

    cv: CrossValidation
    space: SearchSpace
    candidates: list[Candidate]
    planned: int  # candidates planned (a Bayesian search may find fewer distinct ones)
    stopped: str | None  # "timeout" when the deadline came first
    seconds: float
    caught: list[warnings.WarningMessage]


def select(run: SearchRun) -> SearchResult:
    """The search's result: the finished candidates ranked as ``GridSearchCV`` ranks them,
    the selected one (``best``, or the one-standard-error rule), the families compared.

    Raises
    ------
    FitError
        When no candidate finished every fold (the timeout came first).
    """
    tuning, common, scores = run.cv.tuning, run.cv.penalty, run.cv.scores
    finished = [i for i in range(len(run.candidates)) if scores.done[i].all()]
    if not finished:
        raise FitError(
            f"the search stopped at timeout_seconds={tuning.timeout_seconds} before any "
            f"candidate finished all {tuning.cv.folds} folds; allow more time or search less"
        )
    results = _format_results(run, finished)
    done = [run.candidates[i] for i in finished]
    chosen, one_se = _select_index(tuning, done, results, scores.nonzero[finished])
    path_alphas, by_alpha = _selected_chain(done, chosen)
    chosen_metrics = scores.metrics[finished[chosen]].mean(axis=0)
    return SearchResult(
        penalty=done[chosen].penalty(common, run.space.max_iter),
        candidates=results,
        best_index=chosen,
        one_se=one_se,
        comparison=(
            _comparison(run.space, common, done, results) if "penalty" in tuning.space else None
        ),
        n_candidates=run.planned,
        timed_out=run.stopped == "timeout",
        seconds=run.seconds,
        cv_metrics={
            name: float(v) for name, v in zip(common.family.metrics, chosen_metrics, strict=True)
        },
        path_alphas=path_alphas,
        path_mean=[results[by_alpha[a]].mean_score for a in path_alphas],
        path_std=[results[by_alpha[a]].std_score for a in path_alphas],
        fits_done=scores.fits_done,
        fits_total=(run.planned if run.stopped else len(run.candidates)) * tuning.cv.folds,
        warnings=_search_warnings(run, results, scores.unconverged[finished]),
        **_path_of(run.cv, done[chosen], path_alphas),
    )


def _format_results(run: SearchRun, finished: list[int]) -> list[CandidateResult]:
    """The finished candidates' rows of ``cv_results_``, ranked."""
    scores = run.cv.scores
    per_fold = fold_scores(scores, run.cv.penalty.family.scorers[run.cv.tuning.scorer])
    per_fold = per_fold[finished]
    means = per_fold.mean(axis=1)
    stds = per_fold.std(axis=1)
    ranks = _rank(means)
    return [
        CandidateResult(
            params=candidate_params(run.candidates[i], run.space.searched),
            fold_scores=per_fold[j],
            mean_score=float(means[j]),
            std_score=float(stds[j]),
            fit_seconds=float(scores.seconds[i]),
            rank=int(ranks[j]),
            n_nonzero=float(scores.nonzero[i].mean()),
        )
        for j, i in enumerate(finished)
    ]


def _select_index(
    tuning: TuningSpec,
    finished: list[Candidate],
    results: list[CandidateResult],
    nonzero: np.ndarray,
) -> tuple[int, OneStandardError | None]:
    """``best_index_`` (the first candidate of rank 1), or the 1se rule's choice."""
    best = min(range(len(results)), key=lambda j: (results[j].rank, j))
    if tuning.select != "1se":
        return best, None
    means = np.array([r.mean_score for r in results])
    stds = np.array([r.std_score for r in results])
    return _one_standard_error(finished, means, stds, nonzero, best)


def _selected_chain(finished: list[Candidate], chosen: int) -> tuple[list[float], dict[float, int]]:
    """The searched alphas (descending) of the chosen candidate's chain, and the index of
    the first finished candidate at each."""
    by_alpha: dict[float, int] = {}
    for j, candidate in enumerate(finished):
        if candidate.chain == finished[chosen].chain:
            by_alpha.setdefault(candidate.alpha, j)
    return sorted(by_alpha, reverse=True), by_alpha


def _chain_curve(
    finished: list[Candidate], results: list[CandidateResult], member: int
) -> dict[str, list[float]]:
    """The CV curve of candidate ``member``'s chain: ``path_alphas`` (descending),
    ``path_mean`` and ``path_std``."""
    alphas, by_alpha = _selected_chain(finished, member)
    return {
        "path_alphas": alphas,
        "path_mean": [results[by_alpha[a]].mean_score for a in alphas],
        "path_std": [results[by_alpha[a]].std_score for a in alphas],
    }


def _one_standard_error(
    finished: list[Candidate],
    means: np.ndarray,
    stds: np.ndarray,
    nonzero: np.ndarray,
    best: int,
) -> tuple[int, OneStandardError]:
    """glmnet's one-standard-error rule: the index it selects, and its numbers."""
    # glmnet's cvsd: the standard error of the mean of the fold scores, the sample standard
    # deviation over √folds (= the population std_score over √(folds − 1)).
    threshold = means[best] - stds[best] / math.sqrt(nonzero.shape[1] - 1)
    kind = finished[best].kind
    eligible = [
        j for j in range(len(finished)) if finished[j].kind == kind and means[j] >= threshold
    ]
    chosen = min(eligible, key=lambda j: (-finished[j].alpha, nonzero[j].mean(), j))
    return chosen, OneStandardError(float(threshold), best, float(means[best]))


def _comparison(
    space: SearchSpace, common: Penalty, finished: list[Candidate], results: list[CandidateResult]
) -> list[FamilyBest]:
    """Per searched family, its best finished candidate and its chain's CV curve."""
    out: list[FamilyBest] = []
    for kind in space.kinds:
        of_kind = [j for j, c in enumerate(finished) if c.kind == kind]
        if not of_kind:
            continue
        top = min(of_kind, key=lambda j: (results[j].rank, j))
        c = finished[top]
        out.append(
            FamilyBest(
                kind=kind,
                best_index=top,
                best_score=results[top].mean_score,
                alpha=c.alpha,
                l1_ratio=c.l1_ratio,
                penalty=c.penalty(common, space.max_iter),
                **_chain_curve(finished, results, top),
            )
        )
    return out


def _search_warnings(
    run: SearchRun, results: list[CandidateResult], unconverged: np.ndarray
) -> list[str]:
    """The search's warnings: unconverged fits (judged by the gaps), undefined scores, timeout."""
    tuning, common = run.cv.tuning, run.cv.penalty
    out: list[str] = []
    bad = [j for j in range(len(results)) if unconverged[j].any()]
    if bad:
        out.append(
            f"ConvergenceWarning: {len(bad)} candidate(s) did not converge on every "
            f"fold within max_iter={common.max_iter} at tol={common.tol} (e.g. "
            f"{results[bad[0]].params}); increase max_iter or tol"
        )
    for record in run.caught:
        if issubclass(record.category, ConvergenceWarning):
            continue  # judged from the gaps above, at the job's tol
        text = f"{record.category.__name__}: {record.message}"
        if text not in out:
            out.append(text)
    undefined = sum(1 for r in results if math.isnan(r.mean_score))
    if undefined:
        out.append(
            f"{undefined} of {len(results)} candidate(s) have no finite mean CV score "
            f"({tuning.scoring} is undefined on some fold, e.g. r2 on fewer than two "
            f"validation rows); they rank last, as in GridSearchCV"
            + (
                "; every candidate is affected, so the first was selected"
                if undefined == len(results)
                else ""
            )
        )
    if run.stopped == "timeout":
        out.append(
            f"tuning stopped at timeout_seconds={tuning.timeout_seconds}: {len(results)} of "
            f"{run.planned} candidates finished every fold; the best of those was selected"
        )
    return out


def _path_of(search_: CrossValidation, chosen: Candidate, alphas: list[float]) -> dict[str, Any]:
    """The outcome's ``path_problem`` and, when the search solved it, ``path_coefficients``."""
    if search_.full_path is not None:
        segment, problem, coefs, gaps = search_.full_path
        if (segment.kind, segment.l1_ratio) == chosen.chain and segment.alphas == alphas:
            converged = bool(np.all(gaps <= search_.penalty.tol))
            return {"path_problem": problem, "path_coefficients": (coefs, converged)}
    if search_.moments is None:
        return {"path_problem": None}
    return {"path_problem": search_.moments.fold(None).problem}
