"""?explain=true: per-row feature contributions that add up (with the intercept) to the
prediction, and the model body's importance ranking by |standardized coefficient|."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.preprocessing import StandardScaler
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite")

CITIES = ["Paris", "Rome", "Oslo", None]


@pytest.fixture
def trained(client: TestClient) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    n = 150
    size = rng.normal(10, 3, n)
    age = rng.normal(40, 12, n)
    city = [CITIES[i] for i in rng.integers(0, len(CITIES), size=n)]
    y = 0.5 * size - 0.02 * age + np.array([c == "Rome" for c in city]) + rng.normal(0, 0.1, n)
    rows: list[list[Any]] = [
        [float(s), float(a), c, float(t)] for s, a, c, t in zip(size, age, city, y, strict=True)
    ]
    rows[3][0] = None
    dataset = client.post(
        "/v1/datasets",
        json={"name": "explain", "columns": ["size", "age", "city", "y"], "rows": rows},
    ).json()
    spec = {
        "dataset_id": dataset["id"],
        "target": "y",
        "penalty": {"type": "l2", "alpha": 1.0},
        "split": {"test_size": 0},
    }
    job = wait_for_job(client, client.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    return {"model_id": job["model_id"], "rows": rows, "size": size, "age": age}


def test_contributions_plus_intercept_equal_the_prediction(
    client: TestClient, trained: dict[str, Any]
) -> None:
    model_id = trained["model_id"]
    rows = [[12.0, 30.0, "Rome"], [None, 55.0, "Paris"], [7.5, None, None], [9.0, 41.0, "Lima"]]
    plain = client.post(f"/v1/models/{model_id}/predict", json={"rows": rows}).json()
    assert "contributions" not in plain
    response = client.post(
        f"/v1/models/{model_id}/predict", params={"explain": "true"}, json={"rows": rows}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == plain["predictions"]
    assert len(body["contributions"]) == len(rows)
    for row, prediction in zip(body["contributions"], body["predictions"], strict=True):
        assert list(row) == ["size", "age", "city"]
        np.testing.assert_allclose(
            sum(row.values()) + body["intercept"], prediction, rtol=1e-12, atol=1e-12
        )
    # An unseen city contributes nothing (its one-hot block is all zeros).
    assert body["contributions"][3]["city"] == 0.0

    # A numeric contribution is the coefficient times the standardized value, as scikit-learn's
    # StandardScaler scales the training column.
    model = client.get(f"/v1/models/{model_id}").json()
    scaler = StandardScaler().fit(trained["age"].reshape(-1, 1))
    standardized = (30.0 - scaler.mean_[0]) / scaler.scale_[0]
    np.testing.assert_allclose(
        body["contributions"][0]["age"],
        model["coefficients"]["scaled"]["age"] * standardized,
        rtol=1e-9,
    )


def test_explain_records_and_csv(client: TestClient, trained: dict[str, Any]) -> None:
    model_id = trained["model_id"]
    csv = "city,age,size\nOslo,20,8\n,60,\n"
    body = client.post(
        f"/v1/models/{model_id}/predict?explain=1",
        content=csv,
        headers={"content-type": "text/csv"},
    ).json()
    for row, prediction in zip(body["contributions"], body["predictions"], strict=True):
        np.testing.assert_allclose(sum(row.values()) + body["intercept"], prediction, rtol=1e-12)


def test_bad_explain_value_is_a_422(client: TestClient, trained: dict[str, Any]) -> None:
    response = client.post(
        f"/v1/models/{trained['model_id']}/predict?explain=maybe", json={"rows": [[1, 2, "Oslo"]]}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "/query/explain"


def test_importance_ranks_standardized_coefficients(
    client: TestClient, trained: dict[str, Any]
) -> None:
    model = client.get(f"/v1/models/{trained['model_id']}").json()
    importance = model["importance"]
    scaled = model["coefficients"]["scaled"]
    assert {item["feature"] for item in importance} == set(model["feature_names_out"])
    assert all(item["coef_norm"] == scaled[item["feature"]] for item in importance)
    magnitudes = [abs(item["coef_norm"]) for item in importance]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert importance[0]["feature"] == "size"  # 0.5 per unit at sd 3: the strongest effect
