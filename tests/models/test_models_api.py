"""Models through the API: export, delete, a deleted dataset, a missing target, categories."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")


def fit(client: TestClient, dataset_id: str, target: str = "y", **extra: Any) -> dict[str, Any]:
    body = {"dataset_id": dataset_id, "target": target, "penalty": {"type": "l2", "alpha": 1.0}}
    response = client.post("/v1/jobs", json={**body, **extra})
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"])


def test_export_delete_and_deleted_dataset(client: TestClient) -> None:
    dataset = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 80, "n_features": 4, "random_state": 7}
    ).json()
    job = fit(client, dataset["id"])
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    exported = client.get(f"/v1/models/{model_id}/export").json()
    assert exported["format"] == "regfit.linear.v1"
    assert exported["training_data_sha256"] == dataset["sha256"]
    assert [f["name"] for f in exported["features"]] == ["x0", "x1", "x2", "x3"]

    rows = [[0.1, -0.2, 0.3, 0.5], [1.0, 2.0, -1.0, 0.0]]
    before = client.post(f"/v1/models/{model_id}/predict", json={"rows": rows}).json()
    # A portable export predicts the same with numpy alone.
    x = np.array(rows)
    numeric = exported["numeric"]
    manual = ((x - numeric["means"]) / numeric["scales"]) @ exported["coef"] + exported["intercept"]
    np.testing.assert_allclose(before["predictions"], manual, rtol=1e-12)

    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    after = client.post(f"/v1/models/{model_id}/predict", json={"rows": rows}).json()
    assert after == before  # models outlive their dataset
    assert client.get(f"/v1/models/{model_id}").json()["dataset_id"] == dataset["id"]

    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    assert client.get(f"/v1/models/{model_id}").status_code == 404
    gone = client.post(f"/v1/models/{model_id}/predict", json={"rows": rows})
    assert gone.status_code == 404


def test_missing_target_fails_the_job_naming_column_and_count(client: TestClient) -> None:
    rows = [[float(i), float(i % 3), (None if i in (3, 8, 11) else 2.0 * i)] for i in range(30)]
    dataset = client.post(
        "/v1/datasets", json={"name": "gaps", "columns": ["a", "b", "price"], "rows": rows}
    ).json()
    job = fit(client, dataset["id"], target="price")
    assert job["status"] == "failed", job
    detail = job["error"]["detail"]
    assert "price" in detail and "3" in detail
    assert job["model_id"] is None
    assert client.get("/v1/models").json()["total"] == 0


def test_categorical_and_imputed_features_match_sklearn(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    n = 120
    cities = rng.choice(["Seoul", "Busan", "Incheon"], size=n)
    size = rng.normal(80, 20, size=n)
    size[rng.choice(n, 10, replace=False)] = np.nan
    rooms = rng.integers(1, 5, size=n).astype(float)
    price = (
        3 * np.nan_to_num(size, nan=80)
        + 10 * rooms
        + (cities == "Seoul") * 50
        + rng.normal(0, 5, n)
    )
    records = [
        {
            "city": str(c),
            "size": None if np.isnan(s) else float(s),
            "rooms": float(r),
            "price": float(p),
        }
        for c, s, r, p in zip(cities, size, rooms, price, strict=True)
    ]
    dataset = client.post("/v1/datasets", json={"name": "homes", "records": records}).json()
    job = fit(client, dataset["id"], target="price", preprocessing={"impute": "median"})
    assert job["status"] == "succeeded", job
    model = client.get(f"/v1/models/{job['model_id']}").json()
    # The list item is the model's compact form, read by the database from its summary.
    (item,) = client.get("/v1/models").json()["items"]
    compact = ("id", "name", "job_id", "dataset_id", "target", "created_at", "fit_seconds")
    compact += ("penalty", "n_nonzero", "n_train", "n_test", "metrics", "tuning")
    assert item == {key: model[key] for key in compact}

    X = np.empty((n, 3), dtype=object)
    X[:, 0], X[:, 1], X[:, 2] = cities, size, rooms
    X_train, X_test, y_train, y_test = train_test_split(X, price, test_size=0.2, random_state=0)
    reference = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [1, 2]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), [0]),
            ]
        ),
        Ridge(alpha=1.0),
    ).fit(X_train, y_train)
    assert model["metrics"]["test"]["r2"] == pytest.approx(
        reference.score(X_test, y_test), rel=1e-9
    )

    records_in = [
        {"city": "Seoul", "size": 90.0, "rooms": 3.0},
        {"city": "Daegu", "size": None, "rooms": 2.0},  # unseen city, imputed size
    ]
    got = client.post(f"/v1/models/{job['model_id']}/predict", json={"records": records_in})
    assert got.status_code == 200, got.text
    expected = reference.predict(
        np.array([["Seoul", 90.0, 3.0], ["Daegu", np.nan, 2.0]], dtype=object)
    )
    np.testing.assert_allclose(got.json()["predictions"], expected, rtol=1e-9)
