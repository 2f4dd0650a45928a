"""``candidates[].fit_seconds``: each candidate's own measured share of the solver's time.

A path chunk is solved in one call; its measured time is split across its alphas by the
work the solver counts for each (coordinate descent's sweeps), the validation scoring's
evenly. So candidates that cost the solver more get more seconds, and the seconds of all
candidates add up to the time the folds' threads spent solving and scoring.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import enet_path
from support import fit_documents

from service.ml import estimators
from service.ml.paths.problem import PenalizedLeastSquares
from service.ml.search.evaluate import alpha_seconds
from service.ml.spec import JobSpec


def _columns(n: int = 300, p: int = 30, seed: int = 2) -> dict[str, np.ndarray]:
    X, y = make_regression(n_samples=n, n_features=p, n_informative=8, noise=5.0, random_state=seed)
    return {f"x{j}": X[:, j] for j in range(p)} | {"y": y}


def _summary(tuning: dict[str, object], penalty: dict[str, object]) -> dict[str, object]:
    columns = _columns()
    spec = JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": penalty, "tuning": tuning}
    )
    return fit_documents(columns, spec, training_sha256="x").summary


def test_alpha_seconds_split_the_solve_by_work_and_the_scoring_evenly() -> None:
    seconds = alpha_seconds(np.array([1.0, 3.0, 6.0]), 1.0, 0.3)
    np.testing.assert_allclose(seconds, [0.1 + 0.1, 0.3 + 0.1, 0.6 + 0.1])
    assert seconds.sum() == pytest.approx(1.3)
    np.testing.assert_allclose(alpha_seconds(np.zeros(2), 1.0, 0.0), [0.5, 0.5])


def test_coordinate_descent_work_is_scikit_learns_sweep_count_and_varies_along_a_path() -> None:
    X, y = make_regression(n_samples=200, n_features=20, noise=5.0, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    problem = PenalizedLeastSquares.from_design(X, y, fit_intercept=True, copy=True)
    lasso = estimators.get("l1")
    penalty = lasso.penalty(1.0, None, fit_intercept=True, max_iter=None, tol=1e-4, positive=False)
    alphas = list(np.geomspace(30.0, 0.01, 12))
    solution = lasso.solve_path(problem, penalty, None, alphas, None)
    *_, n_iter = enet_path(
        problem.X,
        problem.y,
        l1_ratio=1.0,
        alphas=np.asarray(alphas),
        precompute=problem.gram,
        Xy=problem.xy,
        tol=penalty.tol * 1e-4,
        return_n_iter=True,
    )
    np.testing.assert_array_equal(solution.work, n_iter)
    assert len(set(solution.work.tolist())) > 1  # the alphas' costs differ
    ridge = estimators.get("l2")
    same = ridge.solve_path(problem, penalty, None, alphas, None)
    np.testing.assert_array_equal(same.work, np.ones(len(alphas)))  # one product serves all


def test_a_lasso_paths_candidates_have_their_own_seconds() -> None:
    alphas = [float(a) for a in np.geomspace(10.0, 1e-3, 30)]
    summary = _summary({"space": {"alpha": alphas}, "cv": {"folds": 3}}, {"type": "l1"})
    tuning = summary["tuning"]
    assert isinstance(tuning, dict)
    seconds = [c["fit_seconds"] for c in tuning["candidates"]]
    assert all(s > 0 for s in seconds)
    # Not a chunk's average (a few values for 30 alphas): each alpha's share of its chunk
    # follows its own sweeps, equal only where the sweeps are on every fold.
    assert len(set(seconds)) > len(seconds) // 2
    # Shares of the folds' solver threads: together at most the search's wall time × threads.
    assert sum(seconds) <= tuning["seconds"] * 2 * 3


def test_a_random_search_over_a_continuous_l1_ratio_times_each_candidate() -> None:
    tuning = _summary(
        {
            "strategy": "random",
            "n_trials": 12,
            "random_state": 0,
            "space": {
                "alpha": {"low": 1e-3, "high": 1.0, "log": True},
                "l1_ratio": {"low": 0.1, "high": 0.9},
            },
            "cv": {"folds": 3},
        },
        {"type": "elasticnet"},
    )["tuning"]
    assert isinstance(tuning, dict)
    seconds = [c["fit_seconds"] for c in tuning["candidates"]]
    assert len(seconds) == 12 and all(s > 0 for s in seconds)
    assert len(set(seconds)) == len(seconds)
