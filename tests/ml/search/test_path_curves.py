"""The path as data for plots: every compared penalty's curve, and a random search's
candidates as points with a path for the selected ``l1_ratio``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support import fit_documents

from service.ml.spec import JobSpec

N, P = 150, 8


def _data() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    X, y = make_regression(n_samples=N, n_features=P, n_informative=4, noise=8.0, random_state=6)
    return X, y, {f"x{j}": X[:, j] for j in range(P)} | {"y": y}


def _summary(penalty: dict[str, Any], tuning: dict[str, Any]) -> dict[str, Any]:
    _, _, columns = _data()
    spec = JobSpec.model_validate(
        {"dataset_id": "d", "target": "y", "penalty": penalty, "tuning": tuning}
    )
    return fit_documents(columns, spec, training_sha256="x").summary


def _training_rows() -> tuple[np.ndarray, np.ndarray]:
    X, y, _ = _data()
    train, _ = train_test_split(np.arange(N), test_size=0.2, shuffle=True, random_state=0)
    return X[train], y[train]


def _reference(kind: str, alpha: float, l1_ratio: float | None) -> np.ndarray:
    X, y = _training_rows()
    estimator: Any
    if kind == "l1":
        estimator = Lasso(alpha=alpha, tol=1e-10, max_iter=100_000)
    elif kind == "l2":
        estimator = Ridge(alpha=alpha)
    else:
        estimator = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, max_iter=100_000)
    return np.asarray(make_pipeline(StandardScaler(), estimator).fit(X, y)[-1].coef_)


def test_a_comparison_gives_every_compared_penalty_its_curve() -> None:
    alphas = [0.01, 0.1, 1.0, 10.0]
    summary = _summary(
        {"type": "l1"},
        {"space": {"alpha": alphas, "penalty": ["l1", "l2", "elasticnet"], "l1_ratio": [0.3, 0.7]}},
    )
    path, tuning = summary["path"], summary["tuning"]
    assert list(path["compared"]) == ["l1", "l2", "elasticnet"]
    own = path["compared"][summary["penalty"]["type"]]
    assert {k: v for k, v in path.items() if k != "compared"} == own  # the model's curve
    names = summary["feature_names_out"]
    for kind, curve in path["compared"].items():
        best = tuning["comparison"][kind]["best_params"]
        assert curve["penalty"] == kind
        assert curve["alpha"] == best["alpha"] and curve["l1_ratio"] == best["l1_ratio"]
        assert curve["alphas"] == sorted(alphas, reverse=True)
        scores = {
            c["params"]["alpha"]: c["mean_score"]
            for c in tuning["candidates"]
            if c["params"]["penalty"] == kind and c["params"].get("l1_ratio") == best["l1_ratio"]
        }
        assert curve["cv"]["mean"] == [scores[a] for a in curve["alphas"]]
        assert curve["cv"]["scoring"] == "r2" and curve["cv"]["points"] is None
        for j, alpha in enumerate(curve["alphas"]):
            expected = _reference(kind, alpha, curve["l1_ratio"])
            got = [curve["coefficients"][name][j] for name in names]
            np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_a_random_search_over_a_continuous_l1_ratio_gives_points_and_a_path() -> None:
    summary = _summary(
        {"type": "elasticnet"},
        {
            "strategy": "random",
            "n_trials": 10,
            "random_state": 1,
            "space": {
                "alpha": {"low": 1e-3, "high": 1.0, "log": True},
                "l1_ratio": {"low": 0.1, "high": 0.9},
            },
        },
    )
    path, tuning, penalty = summary["path"], summary["tuning"], summary["penalty"]
    points = path["cv"]["points"]
    assert [(p["alpha"], p["l1_ratio"], p["mean"], p["std"]) for p in points] == [
        (c["params"]["alpha"], c["params"]["l1_ratio"], c["mean_score"], c["std_score"])
        for c in tuning["candidates"]
    ]
    assert {p["penalty"] for p in points} == {"elasticnet"}
    # A path for the selected l1_ratio, not a single point: 30 alphas around the model's.
    assert path["l1_ratio"] == penalty["l1_ratio"] and path["alpha"] == penalty["alpha"]
    assert len(path["alphas"]) == 30 and penalty["alpha"] in path["alphas"]
    at = path["alphas"].index(penalty["alpha"])
    assert path["cv"]["mean"][at] == tuning["best_score"]
    assert sum(m is not None for m in path["cv"]["mean"]) == 1  # scored only where searched
    names = summary["feature_names_out"]
    for j in (0, at, len(path["alphas"]) - 1):
        expected = _reference("elasticnet", path["alphas"][j], penalty["l1_ratio"])
        got = [path["coefficients"][name][j] for name in names]
        np.testing.assert_allclose(got, expected, atol=1e-5 * max(np.abs(expected).max(), 1.0))
    assert path["n_nonzero"][0] == 0  # from the alpha that zeroes every coefficient
    assert path["compared"] is None
