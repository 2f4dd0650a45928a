"""Open Inference Protocol v2 over REST: health, metadata, readiness, infer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")

ROWS = [[0.1, -0.2, 0.3], [1.0, 2.0, -1.0], [0.0, 0.5, 0.25]]


def _train(client: TestClient, body: dict[str, Any]) -> str:
    job = wait_for_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    return str(job["model_id"])


@pytest.fixture
def prices(client: TestClient) -> list[str]:
    """Two versions of "prices"; no champion yet."""
    dataset = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 50, "n_features": 3, "random_state": 4}
    ).json()
    ids = []
    for alpha in (1.0, 50.0):
        spec = {
            "dataset_id": dataset["id"],
            "target": "y",
            "penalty": {"type": "l2", "alpha": alpha},
        }
        ids.append(_train(client, {**spec, "register": {"name": "prices"}}))
    return ids


def _tensor(rows: list[list[float]]) -> dict[str, Any]:
    return {
        "name": "input-0",
        "shape": [len(rows), len(rows[0])],
        "datatype": "FP64",
        "data": [v for row in rows for v in row],
    }


def test_health_metadata_and_default_version(client: TestClient, prices: list[str]) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}

    meta = client.get("/v2/models/prices").json()
    assert meta["name"] == "prices" and meta["versions"] == ["1", "2"]
    assert meta["platform"] == "regfit-linear"
    assert meta["inputs"] == [
        {"name": f"x{j}", "datatype": "FP64", "shape": [-1]} for j in range(3)
    ]
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    # Without a champion, the latest version answers; with one, the champion does.
    assert meta["parameters"]["model_version"] == "2"
    assert client.get("/v2/models/prices/ready").json() == {"name": "prices", "ready": True}
    client.put("/v1/registry/prices/aliases/champion", json={"version": 1})
    first = client.get("/v2/models/prices/versions/1").json()
    assert first["parameters"]["model_id"] == prices[0]

    missing = client.get("/v2/models/nobody")
    assert missing.status_code == 404
    assert "nobody" in missing.json()["error"] and missing.json()["status"] == 404
    assert client.get("/v2/models/prices/versions/9/ready").status_code == 404


def test_infer_matches_predict(client: TestClient, prices: list[str]) -> None:
    client.put("/v1/registry/prices/aliases/champion", json={"version": 1})
    expected = [
        client.post(f"/v1/models/{model_id}/predict", json={"rows": ROWS}).json()["predictions"]
        for model_id in prices
    ]
    answer = client.post("/v2/models/prices/infer", json={"id": "req-7", "inputs": [_tensor(ROWS)]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "prices" and body["model_version"] == "1"
    assert body["id"] == "req-7"
    assert body["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [3], "data": expected[0]}
    ]
    assert answer.headers["x-regfit-model-version"] == "1"

    nested = {**_tensor(ROWS), "data": ROWS}
    by_version = client.post(
        "/v2/models/prices/versions/2/infer",
        json={"inputs": [nested], "outputs": [{"name": "predict"}]},
    ).json()
    assert by_version["outputs"][0]["data"] == expected[1]
    assert by_version["model_version"] == "2"

    columns = [
        {"name": f"x{j}", "shape": [3, 1], "datatype": "FP64", "data": [r[j] for r in ROWS]}
        for j in (2, 0, 1)
    ]
    per_column = client.post("/v2/models/prices/infer", json={"inputs": columns}).json()
    assert per_column["outputs"][0]["data"] == expected[0]


def test_infer_errors(client: TestClient, prices: list[str]) -> None:
    url = "/v2/models/prices/infer"
    wrong_width = client.post(url, json={"inputs": [_tensor([[1.0, 2.0], [3.0, 4.0]])]})
    assert wrong_width.status_code == 422
    assert "3 features" in wrong_width.json()["error"]
    short = client.post(url, json={"inputs": [{**_tensor(ROWS), "data": [1.0, 2.0]}]})
    assert short.status_code == 422 and short.json()["errors"][0]["loc"] == "/inputs/0/data"
    text = client.post(url, json={"inputs": [{**_tensor(ROWS), "data": [1.0] * 8 + ["x"]}]})
    assert text.status_code == 422 and text.json()["errors"][0]["loc"] == "/inputs/0/data/2/2"
    missing = client.post(
        url, json={"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    )
    assert missing.status_code == 422 and "x1" in missing.json()["error"]
    assert (
        client.post(url, json={"inputs": [{**_tensor(ROWS), "datatype": "FP128"}]}).status_code
        == 422
    )
    assert client.post(url, json={"nothing": []}).status_code == 422
    assert (
        client.post(url, content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )


def test_text_features_as_bytes(client: TestClient) -> None:
    rows = [[["a", "b", "c"][i % 3], float(i), 2.0 * i + (i % 3)] for i in range(30)]
    dataset = client.post(
        "/v1/datasets", json={"name": "t", "columns": ["kind", "n", "y"], "rows": rows}
    ).json()
    model_id = _train(
        client,
        {
            "dataset_id": dataset["id"],
            "target": "y",
            "penalty": {"type": "l2"},
            "register": {"name": "kinds"},
        },
    )
    meta = client.get("/v2/models/kinds").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("kind", "BYTES"),
        ("n", "FP64"),
    ]
    query = [["b", 4.0], ["z", 1.5]]
    expected = client.post(f"/v1/models/{model_id}/predict", json={"rows": query}).json()
    inputs = [
        {"name": "kind", "shape": [2], "datatype": "BYTES", "data": ["b", "z"]},
        {"name": "n", "shape": [2], "datatype": "FP64", "data": [4.0, 1.5]},
    ]
    body = client.post("/v2/models/kinds/infer", json={"inputs": inputs}).json()
    assert body["outputs"][0]["data"] == expected["predictions"]
    wrong = client.post(
        "/v2/models/kinds/infer", json={"inputs": [{**inputs[0], "datatype": "FP64"}, inputs[1]]}
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == "/inputs/0/datatype"
