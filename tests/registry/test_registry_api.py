"""The model registry through the API: names, versions, aliases, references, roles."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")

ROWS = [[0.1, -0.2, 0.3], [1.0, 2.0, -1.0]]


def train(client: TestClient, dataset_id: str, alpha: float, **extra: Any) -> dict[str, Any]:
    body = {
        "dataset_id": dataset_id,
        "target": "y",
        "penalty": {"type": "l2", "alpha": alpha},
        **extra,
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture
def dataset(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/v1/datasets/synthetic",
        json={"n_samples": 60, "n_features": 3, "noise": 5.0, "random_state": 1},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def predict(client: TestClient, ref: str) -> Any:
    return client.post(f"/v1/models/{ref}/predict", json={"rows": ROWS})


def test_versions_aliases_and_references(client: TestClient, dataset: dict[str, Any]) -> None:
    first = train(client, dataset["id"], 1.0)["model_id"]
    second = train(client, dataset["id"], 100.0)["model_id"]

    created = client.post("/v1/registry", json={"name": "churn", "description": "d"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/registry/churn"
    assert client.post("/v1/registry", json={"name": "churn"}).status_code == 409
    bad = client.post("/v1/registry", json={"name": "no spaces"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/name"

    v1 = client.post("/v1/registry/churn/versions", json={"model_id": first, "tags": {"a": "b"}})
    assert v1.status_code == 201, v1.text
    assert v1.json()["version"] == 1
    v2 = client.post("/v1/registry/churn/versions", json={"model_id": second})
    assert v2.json()["version"] == 2
    missing = client.post("/v1/registry/churn/versions", json={"model_id": "mdl_nope"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == "/model_id"

    put = client.put("/v1/registry/churn/aliases/champion", json={"version": 1})
    assert put.status_code == 200, put.text
    assert put.json() == {"name": "churn", "alias": "champion", "version": 1, "model_id": first}
    for alias in ("123", "latest", "-x"):
        assert (
            client.put(f"/v1/registry/churn/aliases/{alias}", json={"version": 1}).status_code
            == 422
        )
    assert client.put("/v1/registry/churn/aliases/x", json={"version": 9}).status_code == 404

    by_id = [predict(client, first).json(), predict(client, second).json()]
    assert by_id[0]["model_id"] == first and by_id[0]["version"] is None
    assert by_id[0]["predictions"] != by_id[1]["predictions"]

    through_alias = predict(client, "churn@champion")
    assert through_alias.status_code == 200, through_alias.text
    body = through_alias.json()
    assert body["predictions"] == by_id[0]["predictions"]
    assert (body["model_id"], body["name"], body["version"]) == (first, "churn", 1)
    assert through_alias.headers["x-regfit-model-id"] == first
    assert through_alias.headers["x-regfit-model-version"] == "1"
    encoded = predict(client, quote("churn@champion", safe=""))
    assert encoded.json()["model_id"] == first
    assert predict(client, "churn/versions/2").json()["predictions"] == by_id[1]["predictions"]
    assert predict(client, "churn@latest").json()["version"] == 2
    assert predict(client, "churn@nobody").status_code == 404
    assert predict(client, "churn/versions/7").status_code == 404
    assert predict(client, "churn/versions/x").status_code == 422
    assert predict(client, "nobody@champion").status_code == 404

    # Export, path and the model itself through a reference.
    assert (
        client.get("/v1/models/churn@champion/export").json()
        == client.get(f"/v1/models/{first}/export").json()
    )
    assert client.get("/v1/models/churn/versions/2").json()["id"] == second
    assert client.get("/v1/models/churn/versions/2/path").status_code == 200

    got = client.get("/v1/registry/churn").json()
    assert got["latest_version"] == 2 and got["aliases"] == {"champion": 1}
    assert [v["version"] for v in got["versions"]] == [2, 1]
    assert got["versions"][1]["aliases"] == ["champion"] and got["versions"][1]["tags"] == {
        "a": "b"
    }
    listed = client.get("/v1/registry").json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "churn"

    patched = client.patch("/v1/registry/churn", json={"description": "new", "tags": {"t": "1"}})
    assert patched.json()["description"] == "new" and patched.json()["tags"] == {"t": "1"}
    patched_version = client.patch("/v1/registry/churn/versions/2", json={"description": "v2"})
    assert patched_version.json()["description"] == "v2"

    # A registered model cannot be deleted until its versions are.
    refused = client.delete(f"/v1/models/{first}")
    assert refused.status_code == 409, refused.text
    assert "churn/versions/1" in refused.json()["detail"]
    assert client.delete("/v1/registry/churn/versions/1").status_code == 204
    assert client.get("/v1/registry/churn").json()["aliases"] == {}  # the alias went with it
    assert client.delete(f"/v1/models/{first}").status_code == 204

    # Version numbers are never reused.
    again = client.post("/v1/registry/churn/versions", json={"model_id": second})
    assert again.json()["version"] == 3
    assert client.delete("/v1/registry/churn/aliases/champion").status_code == 404
    client.put("/v1/registry/churn/aliases/champion", json={"version": 3})
    assert client.delete("/v1/registry/churn/aliases/champion").status_code == 204

    # Deleting the name keeps its models.
    assert client.delete("/v1/registry/churn").status_code == 204
    assert client.get("/v1/registry/churn").status_code == 404
    assert predict(client, second).status_code == 200


def test_a_version_must_match_the_features(client: TestClient, dataset: dict[str, Any]) -> None:
    model = train(client, dataset["id"], 1.0)["model_id"]
    fewer = train(client, dataset["id"], 1.0, features=["x0", "x1"])["model_id"]
    client.post("/v1/registry", json={"name": "prices"})
    assert client.post("/v1/registry/prices/versions", json={"model_id": model}).status_code == 201
    refused = client.post("/v1/registry/prices/versions", json={"model_id": fewer})
    assert refused.status_code == 422
    assert "missing feature(s) 'x2'" in refused.json()["detail"]


def test_a_job_registers_its_model(client: TestClient, dataset: dict[str, Any]) -> None:
    job = train(client, dataset["id"], 1.0, register={"name": "auto", "alias": "champion"})
    got = client.get("/v1/registry/auto").json()
    assert got["aliases"] == {"champion": 1}
    assert got["versions"][0]["model_id"] == job["model_id"]
    second = train(client, dataset["id"], 2.0, register={"name": "auto", "alias": "champion"})
    assert predict(client, "auto@champion").json()["model_id"] == second["model_id"]
    assert job["spec"]["register"]["name"] == "auto"

    bad = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset["id"],
            "target": "y",
            "penalty": {"type": "l2"},
            "register": {"name": "bad name"},
        },
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == "/register/name"

    # A registration that cannot happen fails the job, and no model is stored.
    n_models = client.get("/v1/models").json()["total"]
    failed = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset["id"],
            "target": "y",
            "features": ["x0"],
            "penalty": {"type": "l2"},
            "register": {"name": "auto"},
        },
    )
    job = wait_for_job(client, failed.json()["id"])
    assert job["status"] == "failed" and "x1" in job["error"]["detail"]
    assert client.get("/v1/models").json()["total"] == n_models
    assert np.isfinite(predict(client, "auto/versions/2").json()["predictions"]).all()
