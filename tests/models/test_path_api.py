"""A tuning job through the HTTP API, and the regularization path of its model."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support import wait_for_job

SEED_ALPHAS = [0.001, 0.01, 0.1, 1, 10, 100]


def test_tuned_model_and_its_path(client: TestClient) -> None:
    params = {"n_samples": 100, "n_features": 20, "noise": 0.1, "random_state": 42}
    response = client.post("/v1/datasets/synthetic", json=params)
    assert response.status_code == 201, response.text
    dataset = response.json()

    body = {
        "dataset_id": dataset["id"],
        "target": "y",
        "penalty": {"type": "l2"},
        "tuning": {"strategy": "grid", "space": {"alpha": SEED_ALPHAS}, "cv": {"folds": 5}},
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["progress"]["total"] == 6 * 5 + 1
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["done"] == job["progress"]["total"] == 31

    model = client.get(f"/v1/models/{job['model_id']}").json()
    tuning = model["tuning"]
    assert tuning["strategy"] == "grid"
    assert tuning["n_candidates"] == len(tuning["candidates"]) == 6
    assert tuning["timed_out"] is False

    X, y = make_regression(**params)
    train, _ = train_test_split(np.arange(100), test_size=0.2, shuffle=True, random_state=0)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": SEED_ALPHAS}, cv=KFold(5)
    ).fit(X[train], y[train])
    means = [c["mean_score"] for c in tuning["candidates"]]
    np.testing.assert_allclose(means, search.cv_results_["mean_test_score"], rtol=0, atol=1e-8)
    assert tuning["best_params"] == {"alpha": search.best_params_["ridge__alpha"]}
    assert model["penalty"]["alpha"] == search.best_params_["ridge__alpha"]
    assert set(model["metrics"]["cv"]) == {"r2", "mse", "rmse", "mae"}
    assert "path" not in model  # served by its own route

    response = client.get(f"/v1/models/{job['model_id']}/path")
    assert response.status_code == 200, response.text
    path = response.json()
    assert path["alphas"] == sorted(SEED_ALPHAS, reverse=True)
    assert path["penalty"] == "l2" and path["l1_ratio"] is None
    assert set(path["coefficients"]) == {f"x{j}" for j in range(20)}
    assert all(len(v) == 6 for v in path["coefficients"].values())
    assert path["n_nonzero"] == [20] * 6
    by_alpha = {c["params"]["alpha"]: c["mean_score"] for c in tuning["candidates"]}
    assert path["cv"]["mean"] == [by_alpha[a] for a in path["alphas"]]
    assert len(path["cv"]["std"]) == 6

    missing = client.get("/v1/models/mdl_nope/path")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_too_many_candidates_is_a_422(client: TestClient) -> None:
    response = client.post("/v1/datasets/synthetic", json={"n_samples": 30, "n_features": 3})
    assert response.status_code == 201, response.text
    body = {
        "dataset_id": response.json()["id"],
        "target": "y",
        "penalty": {},
        "tuning": {
            "space": {
                "penalty": ["l1", "l2", "elasticnet"],
                "alpha": [float(a) for a in np.geomspace(1e-3, 1e3, 100)],
                "l1_ratio": [float(r) for r in np.linspace(0.01, 0.99, 99)],
            }
        },
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    # 100 (l1) + 100 (l2) + 100 × 99 (elasticnet) > the default limit of 10000
    assert "10100 candidates" in response.json()["detail"]


def test_a_timed_out_search_says_so_in_the_job(client: TestClient) -> None:
    params = {"n_samples": 600, "n_features": 40, "noise": 10.0, "random_state": 9}
    dataset = client.post("/v1/datasets/synthetic", json=params).json()
    body = {
        "dataset_id": dataset["id"],
        "target": "y",
        "penalty": {"type": "elasticnet"},
        "tuning": {
            "strategy": "random",
            "space": {
                "alpha": {"low": 1e-4, "high": 1.0, "log": True},
                "l1_ratio": {"low": 0.05, "high": 0.95},
            },
            "n_trials": 5000,
            "timeout_seconds": 1.0,
        },
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    tuning = client.get(f"/v1/models/{job['model_id']}").json()["tuning"]
    assert tuning["timed_out"] is True
    finished = tuning["n_candidates_finished"]
    progress = job["progress"]
    assert progress["total"] == 5000 * 5 + 1
    assert finished * 5 + 1 <= progress["done"] < progress["total"]
    assert "timeout_seconds=1.0" in progress["message"]
    assert f"{finished} of 5000 candidates" in progress["message"]
